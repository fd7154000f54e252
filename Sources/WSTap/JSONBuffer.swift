/// Appends JSON text to a reusable byte buffer with no intermediate objects. A class over raw
/// memory: most appends are a few bytes, and Array's checks per append cost more than the copy.
final class JSONBuffer {
    private var storage: UnsafeMutableRawPointer
    private var capacity: Int
    private(set) var count = 0

    init(capacity: Int = 256) {
        self.capacity = max(16, capacity)
        storage = .allocate(byteCount: self.capacity, alignment: 8)
    }

    deinit { storage.deallocate() }

    /// Forgets the contents, keeping the memory.
    func removeAll() { count = 0 }

    func withBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        body(UnsafeRawBufferPointer(start: storage, count: count))
    }

    @inline(__always)
    private func reserve(_ extra: Int) {
        guard count + extra > capacity else { return }
        var grown = capacity * 2
        while grown < count + extra { grown *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 8)
        bigger.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = bigger
        capacity = grown
    }

    @inline(__always)
    func append(_ raw: UnsafeRawBufferPointer) {
        guard let base = raw.baseAddress, !raw.isEmpty else { return }
        reserve(raw.count)
        if raw.count <= 16 {
            // Keys and punctuation: a short loop beats a call to memmove.
            for index in 0..<raw.count {
                storage.storeBytes(of: base.load(fromByteOffset: index, as: UInt8.self), toByteOffset: count + index, as: UInt8.self)
            }
        } else {
            (storage + count).copyMemory(from: base, byteCount: raw.count)
        }
        count += raw.count
    }

    @inline(__always)
    func append(_ byte: UInt8) {
        reserve(1)
        storage.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    func append(_ other: JSONBuffer) {
        other.withBytes { append($0) }
    }

    @inline(__always)
    func raw(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// `"name":` — names are code literals and need no escaping.
    func key(_ name: StaticString) {
        append(UInt8(ascii: "\""))
        raw(name)
        append(UInt8(ascii: "\""))
        append(UInt8(ascii: ":"))
    }

    func string(_ text: String) {
        var text = text
        text.withUTF8 { string(utf8: UnsafeRawBufferPointer($0)) }
    }

    func string(_ text: String?) {
        if let text { string(text) } else { raw("null") }
    }

    /// A JSON string from bytes already known to be valid UTF-8. Runs without characters to
    /// escape are copied whole; eight bytes are checked at a time.
    func string(utf8: UnsafeRawBufferPointer) {
        append(UInt8(ascii: "\""))
        let count = utf8.count
        var runStart = 0
        var index = 0
        while index < count {
            if index + 8 <= count, !Self.mayNeedEscape(utf8.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
                continue
            }
            let byte = utf8[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else {
                index += 1
                continue
            }
            append(UnsafeRawBufferPointer(rebasing: utf8[runStart..<index]))
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            default:
                raw("\\u00")
                append(Self.hexDigit(byte >> 4))
                append(Self.hexDigit(byte & 0x0F))
            }
            index += 1
            runStart = index
        }
        append(UnsafeRawBufferPointer(rebasing: utf8[runStart..<count]))
        append(UInt8(ascii: "\""))
    }

    /// Whether any of eight bytes is a control character, `"` or `\` (SWAR: no byte-by-byte loop).
    @inline(__always)
    private static func mayNeedEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ value: UInt64) -> Bool { (value &- ones) & ~value & high != 0 }
        // Bytes below 0x20 (ASCII only: bytes >= 0x80 belong to multi-byte characters).
        let control = (word &- ones &* 0x20) & ~word & high != 0
        return control || hasZeroByte(word ^ (ones &* 0x22)) || hasZeroByte(word ^ (ones &* 0x5C))
    }

    @inline(__always)
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 &+ value : 0x57 &+ value
    }

    /// Decimal digits, written straight into the buffer.
    func number(_ value: UInt64) {
        if value < 10 {
            append(0x30 &+ UInt8(truncatingIfNeeded: value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { space in
            var position = space.count
            var remaining = value
            repeat {
                position -= 1
                space[position] = 0x30 &+ UInt8(truncatingIfNeeded: remaining % 10)
                remaining /= 10
            } while remaining > 0
            append(UnsafeRawBufferPointer(rebasing: space[position...]))
        }
    }

    func number(_ value: Int) {
        if value < 0 { append(UInt8(ascii: "-")) }
        number(UInt64(value.magnitude))
    }

    func number(_ value: UInt8) { number(UInt64(value)) }
    func number(_ value: UInt16) { number(UInt64(value)) }
    func number(_ value: Int64) { number(Int(value)) }

    func number(_ value: UInt16?) {
        if let value { number(UInt64(value)) } else { raw("null") }
    }

    func number(_ value: UInt64?) {
        if let value { number(value) } else { raw("null") }
    }

    func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    func bool(_ value: Bool?) {
        if let value { bool(value) } else { raw("null") }
    }

    /// Epoch seconds with nine decimals.
    func time(_ timestamp: CaptureTimestamp?) {
        guard let timestamp else { return raw("null") }
        number(timestamp.seconds)
        append(UInt8(ascii: "."))
        var fraction = timestamp.nanoseconds
        var digits: UInt64 = 0
        withUnsafeMutableBytes(of: &digits) { space in
            for position in stride(from: 7, through: 0, by: -1) {
                space[position] = 0x30 &+ UInt8(truncatingIfNeeded: fraction % 10)
                fraction /= 10
            }
            append(0x30 &+ UInt8(truncatingIfNeeded: fraction % 10))
            append(UnsafeRawBufferPointer(space))
        }
    }

    /// Eight lowercase hex digits.
    func hex32(_ value: UInt32) {
        append(UInt8(ascii: "\""))
        for shift in stride(from: 28, through: 0, by: -4) {
            append(Self.hexDigit(UInt8(truncatingIfNeeded: (value >> UInt32(shift)) & 0xF)))
        }
        append(UInt8(ascii: "\""))
    }

    /// `{"text": …}` for valid UTF-8 text, else `{"base64": …}`.
    func payload(_ payload: UnsafeRawBufferPointer, asText: Bool) {
        if asText {
            raw("{\"text\":")
            string(utf8: payload)
        } else {
            raw("{\"base64\":\"")
            Base64.encode(payload) { append($0) }
            append(UInt8(ascii: "\""))
        }
        append(UInt8(ascii: "}"))
    }

    func stringArray(_ values: [String]) {
        append(UInt8(ascii: "["))
        for (index, value) in values.enumerated() {
            if index > 0 { append(UInt8(ascii: ",")) }
            string(value)
        }
        append(UInt8(ascii: "]"))
    }

    /// An object of counters with keys in sorted order, so output is deterministic.
    func counters(_ values: [String: UInt64]) {
        append(UInt8(ascii: "{"))
        for (index, key) in values.keys.sorted().enumerated() {
            if index > 0 { append(UInt8(ascii: ",")) }
            string(key)
            append(UInt8(ascii: ":"))
            number(values[key] ?? 0)
        }
        append(UInt8(ascii: "}"))
    }

    func comma() { append(UInt8(ascii: ",")) }
}
