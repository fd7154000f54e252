/// Appends JSON text to a reusable byte buffer, byte by byte, with no intermediate objects.
struct JSONBuffer {
    var bytes: [UInt8] = []

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// `"name":` — names are code literals and need no escaping.
    mutating func key(_ name: StaticString) {
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { string(utf8: UnsafeRawBufferPointer($0)) }
    }

    mutating func string(_ text: String?) {
        if let text { string(text) } else { raw("null") }
    }

    /// A JSON string from bytes already known to be valid UTF-8.
    mutating func string(utf8: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        var runStart = 0
        for index in 0..<utf8.count {
            let byte = utf8[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: utf8[runStart..<index]))
            runStart = index + 1
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            default:
                raw("\\u00")
                bytes.append(Self.hexDigits[Int(byte >> 4)])
                bytes.append(Self.hexDigits[Int(byte & 0x0F)])
            }
        }
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    mutating func number<T: BinaryInteger>(_ value: T) {
        bytes.append(contentsOf: String(value).utf8)
    }

    mutating func number<T: BinaryInteger>(_ value: T?) {
        if let value { number(value) } else { raw("null") }
    }

    mutating func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    mutating func bool(_ value: Bool?) {
        if let value { bool(value) } else { raw("null") }
    }

    /// Epoch seconds with nine decimals.
    mutating func time(_ timestamp: CaptureTimestamp?) {
        guard let timestamp else { return raw("null") }
        number(timestamp.seconds)
        bytes.append(UInt8(ascii: "."))
        var digits = [UInt8](repeating: UInt8(ascii: "0"), count: 9)
        var value = timestamp.nanoseconds
        for position in stride(from: 8, through: 0, by: -1) {
            digits[position] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
        bytes.append(contentsOf: digits)
    }

    /// Eight lowercase hex digits.
    mutating func hex32(_ value: UInt32) {
        bytes.append(UInt8(ascii: "\""))
        for shift in stride(from: 28, through: 0, by: -4) {
            bytes.append(Self.hexDigits[Int((value >> UInt32(shift)) & 0xF)])
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// `{"text": …}` for valid UTF-8 text, else `{"base64": …}`.
    mutating func payload(_ payload: UnsafeRawBufferPointer, asText: Bool) {
        if asText {
            raw("{\"text\":")
            string(utf8: payload)
        } else {
            raw("{\"base64\":\"")
            Base64.encode(payload, into: &bytes)
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func stringArray(_ values: [String]) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// An object of counters with keys in sorted order, so output is deterministic.
    mutating func counters(_ values: [String: UInt64]) {
        bytes.append(UInt8(ascii: "{"))
        for (index, key) in values.keys.sorted().enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            string(key)
            bytes.append(UInt8(ascii: ":"))
            number(values[key] ?? 0)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    mutating func comma() { bytes.append(UInt8(ascii: ",")) }
}
