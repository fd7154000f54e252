/// Walks a `Transfer-Encoding: chunked` body (RFC 9112 §7.1) to find where it ends.
/// Linear: chunk data is skipped by count, and each byte of a size line is looked at once (a
/// line longer than 4,096 bytes ends the walk).
struct ChunkedBodyDecoder {
    private enum State {
        case sizeLine
        case data(remaining: UInt64)
        case dataLineEnd
        case trailerLine(empty: Bool)
        case done
    }

    enum Step {
        /// All given bytes were consumed and the body continues.
        case needMoreData
        /// The body ended after `consumed` of the given bytes.
        case finished(consumed: Int)
        case invalid
    }

    private var state = State.sizeLine
    private var line: [UInt8] = []
    private static let maxLineLength = 4096

    /// Walks `bytes`; the chunks' data (without the chunk framing) goes to `data`.
    mutating func consume(_ bytes: UnsafeRawBufferPointer, data: (UnsafeRawBufferPointer) -> Void = { _ in }) -> Step {
        var index = 0
        while index < bytes.count {
            switch state {
            case .sizeLine:
                let byte = bytes[index]
                index += 1
                if byte == 0x0A {
                    guard let size = parseChunkSize() else { return .invalid }
                    line.removeAll(keepingCapacity: true)
                    state = size == 0 ? .trailerLine(empty: true) : .data(remaining: size)
                } else {
                    line.append(byte)
                    if line.count > Self.maxLineLength { return .invalid }
                }
            case .data(let remaining):
                let take = Int(min(remaining, UInt64(bytes.count - index)))
                data(UnsafeRawBufferPointer(rebasing: bytes[index..<(index + take)]))
                index += take
                let left = remaining - UInt64(take)
                state = left == 0 ? .dataLineEnd : .data(remaining: left)
            case .dataLineEnd:
                let byte = bytes[index]
                index += 1
                if byte == 0x0A { state = .sizeLine } else if byte != 0x0D { return .invalid }
            case .trailerLine(let empty):
                let byte = bytes[index]
                index += 1
                if byte == 0x0A {
                    if empty {
                        state = .done
                        return .finished(consumed: index)
                    }
                    state = .trailerLine(empty: true)
                } else if byte != 0x0D {
                    state = .trailerLine(empty: false)
                }
            case .done:
                return .finished(consumed: 0)
            }
        }
        return .needMoreData
    }

    /// Skips `count` bytes lost inside chunk data; false if the hole is not inside chunk data.
    mutating func skip(_ count: UInt64) -> Bool {
        guard case .data(let remaining) = state, count <= remaining else { return false }
        state = remaining == count ? .dataLineEnd : .data(remaining: remaining - count)
        return true
    }

    /// The hex size before any `;` extension, trimmed.
    private func parseChunkSize() -> UInt64? {
        var digits = line.prefix { $0 != 0x3B }
        while let last = digits.last, last == 0x0D || last == 0x20 || last == 0x09 { digits.removeLast() }
        while let first = digits.first, first == 0x20 || first == 0x09 { digits.removeFirst() }
        guard !digits.isEmpty, digits.count <= 16 else { return nil }
        return UInt64(String(decoding: digits, as: UTF8.self), radix: 16)
    }
}
