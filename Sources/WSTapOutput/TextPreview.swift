import WSTap
import WSTapCore
/// `text` (a file name, a message that quotes one) made safe to print on a terminal, escaped as the
/// timeline escapes what a capture holds.
public func terminalSafe(_ text: String) -> String {
    let buffer = OutputBuffer()
    buffer.terminalText(text)
    return buffer.withBytes { String(decoding: $0, as: UTF8.self) }
}

/// Terminal text rendered straight into an output buffer. Untrusted bytes are made safe: printable
/// text as is, everything else escaped, so a capture can never inject terminal control sequences.
extension OutputBuffer {
    /// Up to `limit` characters of `bytes` in quotes, with `…` when cut; bytes that are not text
    /// as hex (`limit / 3` bytes).
    func quotedPreview(_ bytes: UnsafeRawBufferPointer, limit: Int = 60, asText: Bool) {
        guard asText else { return hexPreview(bytes, limit: limit / 3) }
        append(UInt8(ascii: "\""))
        terminalText(bytes, limit: limit)
        append(UInt8(ascii: "\""))
    }

    /// The preview of a payload the capture lacks bytes of: each missing stretch shown where it
    /// belongs (`…brow[1448 bytes not captured]the lazy…`), never spliced over.
    func quotedPreview(
        _ bytes: UnsafeRawBufferPointer, gaps: UnsafeBufferPointer<PayloadGap>, limit: Int = 60, asText: Bool
    ) {
        guard !gaps.isEmpty else { return quotedPreview(bytes, limit: limit, asText: asText) }
        guard asText else {
            hexPreview(bytes, limit: limit / 3)
            for gap in gaps {
                raw(" ["); number(gap.length); raw(" bytes not captured at "); number(gap.offset); raw("]")
            }
            return
        }
        append(UInt8(ascii: "\""))
        var start = 0
        var shown = 0
        var missingBefore: UInt64 = 0
        for gap in gaps {
            let at = gap.offset &- missingBefore
            let end = at < UInt64(bytes.count) ? Int(at) : bytes.count
            shown += terminalText(UnsafeRawBufferPointer(rebasing: bytes[start..<max(start, end)]), limit: limit - shown)
            if shown >= limit { return append(UInt8(ascii: "\"")) }
            raw("["); number(gap.length); raw(" bytes not captured]")
            missingBefore &+= gap.length
            start = max(start, end)
        }
        terminalText(UnsafeRawBufferPointer(rebasing: bytes[start...]), limit: limit - shown)
        append(UInt8(ascii: "\""))
    }

    /// Text wstap itself wrote (a name, a number, an address): nothing to escape.
    func text(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// `text`, `binary`, `reserved-3`, …
    @inline(__always)
    func opcodeName(_ opcode: WebSocketOpcode) {
        withRoom(.opcodeName) { $0.opcodeName(opcode) }
    }

    /// Text from the capture (a header value, an issue's detail) made safe to print.
    func terminalText(_ text: String) {
        var text = text
        text.withUTF8 { _ = terminalText(UnsafeRawBufferPointer($0)) }
    }

    /// Each whole UTF-8 character kept or escaped, any other byte (a fragment may split a
    /// character) shown as `\xNN`; after `limit` characters, `…`.
    /// Returns the characters shown (`limit` when it cut the text). `quoted`: the text is shown
    /// between quotes, so `"` and `\` are escaped too.
    @discardableResult
    func terminalText(_ bytes: UnsafeRawBufferPointer, limit: Int = .max, quoted: Bool = true) -> Int {
        var index = 0
        var shown = 0
        while index < bytes.count {
            if shown >= limit {
                raw("…")
                return limit
            }
            let length = Self.scalarLength(bytes, at: index)
            if length == 0 {
                hexEscape(bytes[index])
                index += 1
            } else {
                escapedScalar(UnsafeRawBufferPointer(rebasing: bytes[index..<(index + length)]), quoted: quoted)
                index += length
            }
            shown += 1
        }
        return shown
    }

    /// The length of the whole, well-formed UTF-8 character at `index`, 0 if there is none.
    private static func scalarLength(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int {
        if bytes[index] < 0x80 { return 1 }
        guard let character = UTF8Validation.character(at: index, in: bytes), character.present == character.length else {
            return 0
        }
        return character.length
    }

    /// One well-formed character, kept or escaped.
    private func escapedScalar(_ character: UnsafeRawBufferPointer, quoted: Bool) {
        var value = UInt32(character[0])
        if character.count > 1 {
            value &= 0xFF >> UInt32(character.count + 1)
            for byte in character.dropFirst() { value = value << 6 | UInt32(byte & 0x3F) }
        }
        switch value {
        case 0x0A: raw("\\n")
        case 0x0D: raw("\\r")
        case 0x09: raw("\\t")
        case 0x22 where quoted: raw("\\\"")
        case 0x5C where quoted: raw("\\\\")
        // C0 and C1 controls and DEL.
        case 0..<0x20, 0x7F...0x9F: hexEscape(UInt8(value))
        // Bidirectional marks, overrides and isolates reorder what the terminal shows; the line and
        // paragraph separators break a line where the timeline has none.
        case 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
            raw("\\u{")
            for shift in stride(from: 12, through: 0, by: -4) {
                append(Self.hexDigit(UInt8(truncatingIfNeeded: value >> UInt32(shift)) & 0x0F))
            }
            append(UInt8(ascii: "}"))
        default: append(character)
        }
    }

    /// `\xNN`.
    private func hexEscape(_ byte: UInt8) {
        raw("\\x")
        hexByte(byte)
    }

    func hexByte(_ byte: UInt8) {
        append(Self.hexDigit(byte >> 4))
        append(Self.hexDigit(byte & 0x0F))
    }

    /// Hex bytes separated by spaces: `81 05 48 65`, with `…` when more than `limit`.
    func hexPreview(_ bytes: UnsafeRawBufferPointer, limit: Int) {
        for (index, byte) in bytes.prefix(limit).enumerated() {
            if index > 0 { append(UInt8(ascii: " ")) }
            hexByte(byte)
        }
        if bytes.count > limit { raw(limit > 0 ? " …" : "…") }
    }

    /// A byte count for people: `512 B`, `6.2 KB`, `1.0 MB`.
    func byteCount<Count: BinaryInteger>(_ count: Count) {
        let value = UInt64(clamping: count)
        if value < 1000 {
            number(value)
            return raw(" B")
        }
        let (divisor, unit): (Double, StaticString) =
            value < 1_000_000 ? (1000, " KB") : value < 1_000_000_000 ? (1_000_000, " MB") : (1_000_000_000, " GB")
        let tenths = UInt64((Double(value) / divisor * 10).rounded())
        number(tenths / 10)
        append(UInt8(ascii: "."))
        number(tenths % 10)
        raw(unit)
    }

    /// Seconds since the capture started, with microseconds (`12.000345`), right-aligned in ten
    /// columns when `aligned`.
    func relativeTime(_ time: CaptureTimestamp?, since start: CaptureTimestamp?, aligned: Bool = true) {
        guard let time, let start else { return raw("         -") }
        let micro = UInt64(max(0, time.nanoseconds(since: start)) / 1000)
        let seconds = micro / 1_000_000
        if aligned {
            for _ in 0..<(seconds < 10 ? 2 : seconds < 100 ? 1 : 0) { append(UInt8(ascii: " ")) }
        }
        number(seconds)
        append(UInt8(ascii: "."))
        number(micro % 1_000_000, width: 6)
    }
}

extension ReservedRoom {
    /// The opcode's name (at most `RoomSize.opcodeName` bytes), as `WebSocketOpcode.description`
    /// spells it, without making a string.
    @inline(__always)
    mutating func opcodeName(_ opcode: WebSocketOpcode) {
        switch opcode {
        case .continuation: raw("continuation")
        case .text: raw("text")
        case .binary: raw("binary")
        case .close: raw("close")
        case .ping: raw("ping")
        case .pong: raw("pong")
        default: raw("reserved-"); number(opcode.rawValue)
        }
    }
}
