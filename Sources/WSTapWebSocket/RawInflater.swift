import WSTapCore
private import CZlib

/// A raw DEFLATE decompressor (zlib, no header) whose window can persist across messages.
///
/// The only file that calls zlib. Inflating always uses the largest window (15 bits): a
/// window at least as large as the compressor's decodes any stream correctly.
final class RawInflater {
    enum Outcome: Equatable {
        case finished
        /// Output passed the limit; the rest was inflated and discarded to keep the window right.
        case limitExceeded(produced: UInt64)
        case failed(String)
    }

    private let stream: UnsafeMutablePointer<z_stream>
    /// The last message's output, up to its limit; allocated on the first message.
    private var outputStart: UnsafeMutableRawPointer?
    private var outputCapacity = 0
    private var outputCount = 0
    /// Where output past the limit is inflated and dropped (the window still needs it).
    private var discard: UnsafeMutableRawBufferPointer?
    private static let chunkSize = 32 * 1024

    /// The bytes the last `inflateMessage` produced (at most its limit); valid until the next call.
    var output: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: outputStart, count: outputCount) }

    init?() {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        guard wstap_inflate_init_raw(stream, 15) == Z_OK else {
            stream.deallocate()
            return nil
        }
    }

    deinit {
        outputStart?.deallocate()
        discard?.deallocate()
        joinedInput?.deallocate()
        inflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    /// Forgets the window: the next message starts a fresh context.
    func reset() { inflateReset(stream) }

    /// Inflates `input` followed by the `00 00 ff ff` tail RFC 7692 §7.2.2 strips, appending at
    /// most `limit` bytes to `output`.
    func inflateMessage(_ input: UnsafeRawBufferPointer, limit: Int) -> Outcome {
        var produced: UInt64 = 0
        outputCount = 0
        if input.count <= Self.joinedInputLimit {
            // One call to zlib instead of two: message and tail copied side by side.
            let joined = joinedInput ?? UnsafeMutableRawBufferPointer.allocate(
                byteCount: Self.joinedInputLimit + Self.tail.count, alignment: 16)
            joinedInput = joined
            if let source = input.baseAddress { joined.baseAddress!.copyMemory(from: source, byteCount: input.count) }
            (joined.baseAddress! + input.count).storeBytes(of: Self.tailWord, as: UInt32.self)
            let whole = UnsafeRawBufferPointer(rebasing: joined[0..<(input.count + Self.tail.count)])
            if let failure = run(whole, limit: limit, produced: &produced) { return .failed(failure) }
        } else {
            if let failure = run(input, limit: limit, produced: &produced) { return .failed(failure) }
            if let failure = Self.tail.withUnsafeBytes({ run($0, limit: limit, produced: &produced) }) {
                return .failed(failure)
            }
        }
        return produced > UInt64(limit) ? .limitExceeded(produced: produced) : .finished
    }

    /// The empty stored block a sender strips from every message (RFC 7692 §7.2.1).
    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
    private static let tailWord = UInt32(0xFFFF_0000).littleEndian
    /// Messages up to this size are copied next to their tail and inflated in one call.
    private static let joinedInputLimit = 16 * 1024
    private var joinedInput: UnsafeMutableRawBufferPointer?

    /// Gives back the output memory if one message made it larger than a frame's payload buffer
    /// may stay between frames (`FrameDecoder.keptCapacity`): idle connections hold little.
    func releaseLargeOutput(above limit: Int = FrameDecoder.keptCapacity) {
        guard outputCapacity > limit else { return }
        outputStart?.deallocate()
        outputStart = nil
        outputCapacity = 0
        outputCount = 0
    }

    /// Inflates straight into the output buffer, growing it up to `limit`; what lies past the
    /// limit is inflated into a scratch chunk and only counted.
    private func run(_ input: UnsafeRawBufferPointer, limit: Int, produced: inout UInt64) -> String? {
        guard let base = input.baseAddress, !input.isEmpty else { return nil }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        while true {
            let keeping = outputCount < limit
            let destination: UnsafeMutableRawPointer
            let room: Int
            if keeping {
                room = min(Self.chunkSize, limit - outputCount)
                growOutput(toHold: outputCount + room)
                destination = outputStart! + outputCount
            } else {
                let scratch = discard ?? UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
                discard = scratch
                destination = scratch.baseAddress!
                room = scratch.count
            }
            stream.pointee.next_out = destination.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(room)
            let status = inflate(stream, Z_SYNC_FLUSH)
            let written = room - Int(stream.pointee.avail_out)
            if keeping { outputCount += written }
            produced &+= UInt64(written)
            switch status {
            case Z_OK:
                if stream.pointee.avail_in == 0, written < room { return nil }
            case Z_STREAM_END:
                // The sender ended the DEFLATE stream (BFINAL); the next message starts a new one.
                inflateReset(stream)
                if stream.pointee.avail_in == 0 { return nil }
            case Z_BUF_ERROR:
                return nil
            default:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                return message
            }
        }
    }

    private func growOutput(toHold needed: Int) {
        guard needed > outputCapacity else { return }
        var capacity = max(outputCapacity * 2, 16 * 1024)
        while capacity < needed { capacity *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        if let old = outputStart {
            bigger.copyMemory(from: old, byteCount: outputCount)
            old.deallocate()
        }
        outputStart = bigger
        outputCapacity = capacity
    }
}
