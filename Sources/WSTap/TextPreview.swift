/// Renders untrusted bytes for a terminal: printable text as is, everything else escaped, so a
/// capture can never inject terminal control sequences.
enum TextPreview {
    /// Up to `limit` characters of `bytes`, quoted, with `…` when cut.
    static func quoted(_ bytes: UnsafeRawBufferPointer, limit: Int = 60, asText: Bool) -> String {
        guard asText else { return hex(bytes, limit: limit / 3) }
        var output = "\""
        var shown = 0
        var index = 0
        while index < bytes.count {
            if shown >= limit {
                output += "…"
                break
            }
            // Bytes that are not a whole UTF-8 character (a fragment may split one) are shown as \xNN.
            let lead = bytes[index]
            let length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0
            if length > 0, index + length <= bytes.count,
               let character = String(validating: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + length)]), as: UTF8.self),
               let scalar = character.unicodeScalars.first {
                output += escaped(scalar)
                index += length
            } else {
                output += "\\x" + hexByte(lead)
                index += 1
            }
            shown += 1
        }
        return output + "\""
    }

    /// One Unicode scalar made safe to print.
    static func escaped(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        case "\"": return "\\\""
        case "\\": return "\\\\"
        default:
            let value = scalar.value
            // C0 and C1 controls, DEL, bidirectional overrides and isolates, and U+FFFD stand-ins.
            if value < 0x20 || (0x7F...0x9F).contains(value) || (0x202A...0x202E).contains(value)
                || (0x2066...0x2069).contains(value) || value == 0x200E || value == 0x200F {
                return value <= 0xFF ? "\\x" + hexByte(UInt8(value)) : "\\u{" + String(value, radix: 16) + "}"
            }
            return String(scalar)
        }
    }

    /// Hex bytes separated by spaces: `81 05 48 65`.
    static func hex(_ bytes: UnsafeRawBufferPointer, limit: Int) -> String {
        var parts = bytes.prefix(limit).map(hexByte)
        if bytes.count > limit { parts.append("…") }
        return parts.joined(separator: " ")
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }

    /// A byte count for people: `512 B`, `6.2 KB`, `1.0 MB`.
    static func byteCount<T: BinaryInteger>(_ count: T) -> String {
        let value = Double(count)
        if value < 1000 { return "\(count) B" }
        if value < 1_000_000 { return oneDecimal(value / 1000) + " KB" }
        if value < 1_000_000_000 { return oneDecimal(value / 1_000_000) + " MB" }
        return oneDecimal(value / 1_000_000_000) + " GB"
    }

    static func oneDecimal(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }

    /// Seconds since the capture started, with microseconds: `12.000345`.
    static func relativeTime(_ time: CaptureTimestamp?, since start: CaptureTimestamp?) -> String {
        guard let time, let start else { return "         -" }
        let nanoseconds = max(0, time.nanoseconds(since: start))
        let micro = nanoseconds / 1000
        let fraction = String(micro % 1_000_000)
        let text = "\(micro / 1_000_000)." + String(repeating: "0", count: 6 - fraction.count) + fraction
        return String(repeating: " ", count: max(0, 10 - text.count)) + text
    }
}
