import WSTap
import WSTapCore
/// A reusable byte buffer the exporters render into (JSON here, terminal text in TextPreview.swift)
/// with no intermediate objects. A class over raw memory: most appends are a few bytes, and
/// Array's checks per append cost more than the copy.
final class OutputBuffer {
    private var storage: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private(set) var count = 0
    /// The digits of the seconds `time` wrote last.
    private var renderedSeconds: Int64 = 0
    private var renderedSecondsText: (UInt64, UInt64, UInt64) = (0, 0, 0)
    private var renderedSecondsLength = 0

    init(capacity: Int = 256) {
        self.capacity = max(16, capacity)
        storage = .allocate(byteCount: self.capacity, alignment: 8)
    }

    deinit { storage.deallocate() }

    /// Forgets the contents, keeping the memory.
    func removeAll() {
        count = 0
    }

    /// Trades contents with `other`, without copying.
    func swapContents(with other: OutputBuffer) {
        swap(&storage, &other.storage)
        swap(&capacity, &other.capacity)
        swap(&count, &other.count)
    }

    /// Forgets the contents and, if one large rendering grew the memory past `limit`, gives it
    /// back down to `capacity`.
    func removeAll(shrinkingAbove limit: Int, to capacity: Int) {
        removeAll()
        guard self.capacity > limit else { return }
        storage.deallocate()
        self.capacity = max(16, capacity)
        storage = .allocate(byteCount: self.capacity, alignment: 8)
    }

    /// Drops the first `length` bytes, moving the rest to the front.
    func removeFirst(_ length: Int) {
        precondition(length >= 0 && length <= count)
        if length < count { storage.copyMemory(from: storage + length, byteCount: count - length) }
        count -= length
    }

    /// Moves the bytes from `start` to the end so that they begin at `offset` (`offset <= start`),
    /// shifting the bytes in between after them.
    func moveTail(from start: Int, to offset: Int) {
        precondition(offset >= 0 && offset <= start && start <= count)
        let length = count - start
        guard length > 0, offset < start else { return }
        let tail = UnsafeMutableRawPointer.allocate(byteCount: length, alignment: 8)
        defer { tail.deallocate() }
        tail.copyMemory(from: storage + start, byteCount: length)
        (storage + offset + length).copyMemory(from: storage + offset, byteCount: start - offset)
        (storage + offset).copyMemory(from: tail, byteCount: length)
    }

    func withBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        body(UnsafeRawBufferPointer(start: storage, count: count))
    }

    @inline(__always)
    private func reserve(_ extra: Int) {
        if count + extra > capacity { grow(toHold: extra) }
    }

    /// Out of line: inlined at every append, the copy would swell the callers' code.
    @inline(never)
    private func grow(toHold extra: Int) {
        var grown = capacity * 2
        while grown < count + extra { grown *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: grown, alignment: 8)
        bigger.copyMemory(from: storage, byteCount: count)
        storage.deallocate()
        storage = bigger
        capacity = grown
    }

    /// Makes room for `size` bytes once and lets `write` fill it through a cursor: a record's
    /// fixed fields cost one allocation check, not one per field, and the cursor stays in a
    /// register. `size` is the sum of the writers' own maxima (`RoomSize`); each write checks,
    /// before it writes, that it stays in the room (debug builds).
    @inline(__always)
    func withRoom(_ size: RoomSize, _ write: (inout ReservedRoom) -> Void) {
        reserve(size.bytes)
        let start = storage + count
        var room = ReservedRoom(position: start, end: start + size.bytes)
        write(&room)
        count += room.position - start
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
        withRoom(.byte) { $0.byte(byte) }
    }

    func append(_ other: OutputBuffer) {
        other.withBytes { append($0) }
    }

    /// A code literal. Inlined, its length is a constant and the copy a few moves.
    @inline(__always)
    func raw(_ text: StaticString) {
        withRoom(.literal(text)) { $0.raw(text) }
    }

    /// `"name":` — names are code literals and need no escaping.
    @inline(__always)
    func key(_ name: StaticString) {
        append(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
    }

    func string(_ text: String) {
        var text = text
        text.withUTF8 { string(utf8: UnsafeRawBufferPointer($0)) }
    }

    func string(_ text: String?) {
        if let text { string(text) } else { raw("null") }
    }

    /// A JSON string from bytes already known to be valid UTF-8, written straight into the
    /// buffer: room for the worst case (every byte a `\u00XX`) is made once, eight bytes are
    /// checked at a time, and each word is stored whole up to its first byte to escape.
    func string(utf8: UnsafeRawBufferPointer) {
        let length = utf8.count
        reserve(length * 6 + 2)
        var out = storage + count
        out.storeBytes(of: UInt8(ascii: "\""), as: UInt8.self)
        out += 1
        var index = 0
        if let input = utf8.baseAddress {
            while index + 8 <= length {
                let word = input.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                let escapes = Self.escapeMask(word)
                out.storeBytes(of: word, as: UInt64.self)
                if escapes == 0 {
                    out += 8
                    index += 8
                    continue
                }
                let clean = escapes.trailingZeroBitCount >> 3
                out += clean
                index += clean
                out = Self.writeEscaped(input.load(fromByteOffset: index, as: UInt8.self), at: out)
                index += 1
            }
            while index < length {
                let byte = input.load(fromByteOffset: index, as: UInt8.self)
                index += 1
                if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                    out = Self.writeEscaped(byte, at: out)
                } else {
                    out.storeBytes(of: byte, as: UInt8.self)
                    out += 1
                }
            }
        }
        out.storeBytes(of: UInt8(ascii: "\""), as: UInt8.self)
        out += 1
        count = out - storage
    }

    /// Writes the escape sequence of a control character, `"` or `\`; returns the next position.
    @inline(__always)
    private static func writeEscaped(_ byte: UInt8, at out: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        out.storeBytes(of: UInt8(ascii: "\\"), as: UInt8.self)
        let escaped: UInt8
        switch byte {
        case UInt8(ascii: "\""): escaped = UInt8(ascii: "\"")
        case UInt8(ascii: "\\"): escaped = UInt8(ascii: "\\")
        case 0x0A: escaped = UInt8(ascii: "n")
        case 0x0D: escaped = UInt8(ascii: "r")
        case 0x09: escaped = UInt8(ascii: "t")
        default:
            (out + 1).storeBytes(of: UInt8(ascii: "u"), as: UInt8.self)
            (out + 2).storeBytes(of: UInt8(ascii: "0"), as: UInt8.self)
            (out + 3).storeBytes(of: UInt8(ascii: "0"), as: UInt8.self)
            (out + 4).storeBytes(of: hexDigit(byte >> 4), as: UInt8.self)
            (out + 5).storeBytes(of: hexDigit(byte & 0x0F), as: UInt8.self)
            return out + 6
        }
        (out + 1).storeBytes(of: escaped, as: UInt8.self)
        return out + 2
    }

    /// Base64 of `bytes` in quotes, encoded straight into the buffer.
    func base64String(_ bytes: UnsafeRawBufferPointer) {
        let encodedLength = Base64.encodedLength(bytes.count)
        reserve(encodedLength + 2)
        storage.storeBytes(of: UInt8(ascii: "\""), toByteOffset: count, as: UInt8.self)
        Base64.encode(bytes, into: UnsafeMutableRawBufferPointer(start: storage + count + 1, count: encodedLength))
        storage.storeBytes(of: UInt8(ascii: "\""), toByteOffset: count + 1 + encodedLength, as: UInt8.self)
        count += encodedLength + 2
    }

    /// The high bit of each of eight bytes (little-endian order) that is a control character,
    /// `"` or `\` (SWAR). Bits above the lowest may be false alarms; the lowest is exact, as
    /// borrows only run upwards.
    @inline(__always)
    private static func escapeMask(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        func zeroBytes(_ value: UInt64) -> UInt64 { (value &- ones) & ~value & high }
        // Bytes below 0x20 (ASCII only: bytes >= 0x80 belong to multi-byte characters).
        let control = (word &- ones &* 0x20) & ~word & high
        return control | zeroBytes(word ^ (ones &* 0x22)) | zeroBytes(word ^ (ones &* 0x5C))
    }

    @inline(__always)
    static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 &+ value : 0x57 &+ value
    }

    /// Decimal digits, written straight into the buffer.
    @inline(__always)
    func number(_ value: UInt64) {
        withRoom(.number) { $0.number(value) }
    }

    /// The last `width` digits of `value`, zero-padded.
    @inline(__always)
    func number(_ value: UInt64, width: Int) {
        withRoom(RoomSize(bytes: width)) { $0.digits(value, width: width) }
    }

    @inline(__always)
    func number(_ value: Int) {
        if value < 0 { append(UInt8(ascii: "-")) }
        number(UInt64(value.magnitude))
    }

    @inline(__always)
    func number(_ value: UInt8) { number(UInt64(value)) }
    @inline(__always)
    func number(_ value: UInt16) { number(UInt64(value)) }
    @inline(__always)
    func number(_ value: Int64) { number(Int(value)) }

    func number(_ value: UInt16?) {
        if let value { number(UInt64(value)) } else { raw("null") }
    }

    func number(_ value: UInt64?) {
        if let value { number(value) } else { raw("null") }
    }

    @inline(__always)
    func bool(_ value: Bool) {
        withRoom(.bool) { $0.bool(value) }
    }

    func bool(_ value: Bool?) {
        if let value { bool(value) } else { raw("null") }
    }

    /// Epoch seconds with nine decimals. Consecutive times mostly share their seconds, whose
    /// digits are kept from the last time written.
    func time(_ timestamp: CaptureTimestamp?) {
        guard let timestamp else { return raw("null") }
        if timestamp.seconds != renderedSeconds || renderedSecondsLength == 0 {
            let start = count
            number(timestamp.seconds)
            renderedSecondsLength = min(count - start, 24)
            withUnsafeMutableBytes(of: &renderedSecondsText) { cache in
                cache.baseAddress!.copyMemory(from: storage + start, byteCount: renderedSecondsLength)
            }
            renderedSeconds = timestamp.seconds
        } else {
            reserve(24)
            withUnsafeBytes(of: renderedSecondsText) { cache in
                (storage + count).copyMemory(from: cache.baseAddress!, byteCount: 24)
            }
            count += renderedSecondsLength
        }
        withRoom(.byte + .nanosecondDigits) { room in
            room.byte(UInt8(ascii: "."))
            room.digits(UInt64(timestamp.nanoseconds % 1_000_000_000), width: 9)
        }
    }

    /// Eight lowercase hex digits.
    func hex32(_ value: UInt32) {
        withRoom(.hex32) { $0.hex32(value) }
    }

    /// `{"text": …}` for valid UTF-8 text, else `{"base64": …}`.
    func payload(_ payload: UnsafeRawBufferPointer, asText: Bool) {
        if asText {
            raw("{\"text\":")
            string(utf8: payload)
        } else {
            raw("{\"base64\":")
            base64String(payload)
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

    @inline(__always)
    func comma() { append(UInt8(ascii: ",")) }
}

/// A cursor into room `OutputBuffer.withRoom` made: each write is a store and a step, with no
/// check of room (the caller reserved the most its fields can take).
struct ReservedRoom {
    fileprivate(set) var position: UnsafeMutableRawPointer
    /// Where the room ends: every write checks it first (in debug builds, so in every test
    /// run; a release build relies on the room being the sum of its writers' maxima, which no
    /// input can exceed).
    fileprivate let end: UnsafeMutableRawPointer

    @inline(__always)
    private func checkRoom(for length: Int) {
        assert(end - position >= length, "a write past its reserved room")
    }

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        checkRoom(for: 1)
        position.storeBytes(of: value, as: UInt8.self)
        position += 1
    }

    /// A code literal: its length is a constant and the copy a few moves.
    @inline(__always)
    mutating func raw(_ text: StaticString) {
        let length = text.utf8CodeUnitCount
        checkRoom(for: length)
        position.copyMemory(from: text.utf8Start, byteCount: length)
        position += length
    }

    /// Decimal digits (at most `RoomSize.number`); one- and two-digit values (most fields) need no
    /// counting of digits.
    @inline(__always)
    mutating func number(_ value: UInt64) {
        if value < 10 { return byte(0x30 &+ UInt8(truncatingIfNeeded: value)) }
        digits(value, width: value < 100 ? 2 : Self.decimalWidth(value))
    }

    @inline(__always)
    mutating func number(_ value: UInt8) { number(UInt64(value)) }

    @inline(__always)
    mutating func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    /// The last `width` digits of `value`, zero-padded, two at a time.
    @inline(__always)
    mutating func digits(_ value: UInt64, width: Int) {
        checkRoom(for: width)
        let pairs = UnsafeRawPointer(Self.digitPairs.utf8Start)
        var remaining = value
        var left = width
        var end = position + width
        while left >= 2 {
            let pair = Int(remaining % 100)
            remaining /= 100
            end -= 2
            end.storeBytes(of: pairs.loadUnaligned(fromByteOffset: pair * 2, as: UInt16.self), as: UInt16.self)
            left -= 2
        }
        if left == 1 {
            (end - 1).storeBytes(of: 0x30 &+ UInt8(truncatingIfNeeded: remaining % 10), as: UInt8.self)
        }
        position += width
    }

    /// Eight lowercase hex digits in quotes (10 bytes).
    @inline(__always)
    mutating func hex32(_ value: UInt32) {
        byte(UInt8(ascii: "\""))
        for index in 0..<8 {
            let nibble = UInt8(truncatingIfNeeded: (value >> UInt32(28 - 4 * index)) & 0xF)
            byte(OutputBuffer.hexDigit(nibble))
        }
        byte(UInt8(ascii: "\""))
    }

    /// "00" to "99".
    private static let digitPairs: StaticString = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// How many decimal digits `value` has (at least 1): floor(log10) from the bit length,
    /// corrected by one comparison.
    @inline(__always)
    private static func decimalWidth(_ value: UInt64) -> Int {
        let bits = 64 - (value | 1).leadingZeroBitCount
        let estimate = (bits * 1233) >> 12
        return estimate + 1 - (value < powerOfTen(estimate) ? 1 : 0)
    }

    /// 10^exponent for 0...19: a switch the compiler makes a constant table, where a static
    /// array would be made lazily and checked on every use.
    @inline(__always)
    private static func powerOfTen(_ exponent: Int) -> UInt64 {
        switch exponent {
        case 0: 1
        case 1: 10
        case 2: 100
        case 3: 1000
        case 4: 10000
        case 5: 100000
        case 6: 1000000
        case 7: 10000000
        case 8: 100000000
        case 9: 1000000000
        case 10: 10000000000
        case 11: 100000000000
        case 12: 1000000000000
        case 13: 10000000000000
        case 14: 100000000000000
        case 15: 1000000000000000
        case 16: 10000000000000000
        case 17: 100000000000000000
        case 18: 1000000000000000000
        default: 10000000000000000000
        }
    }
}

/// The most bytes a `ReservedRoom`'s writers may write, summed from each writer's own maximum:
/// `withRoom(.literal(",\"fin\":") + .bool)`.
struct RoomSize {
    var bytes: Int

    @inline(__always)
    static func + (lhs: RoomSize, rhs: RoomSize) -> RoomSize { RoomSize(bytes: lhs.bytes + rhs.bytes) }

    /// `raw(text)`.
    @inline(__always)
    static func literal(_ text: StaticString) -> RoomSize { RoomSize(bytes: text.utf8CodeUnitCount) }

    static let byte = RoomSize(bytes: 1)
    /// `number` of a `UInt64`: up to 20 digits.
    static let number = RoomSize(bytes: 20)
    /// `number` of a `UInt8`: up to 3 digits.
    static let smallNumber = RoomSize(bytes: 3)
    /// `bool`: `false`.
    static let bool = RoomSize(bytes: 5)
    /// `hex32`: eight digits in quotes.
    static let hex32 = RoomSize(bytes: 10)
    /// `direction`: `"c2s"`.
    static let direction = RoomSize(bytes: 5)
    /// `opcodeName`: `continuation`, or `reserved-` and up to 3 digits.
    static let opcodeName = RoomSize(bytes: 12)
    /// `opcodeType`: the name in quotes.
    static let opcodeType = RoomSize(bytes: 14)
    /// `digits(_, width: 9)`: the nanoseconds of a second.
    static let nanosecondDigits = RoomSize(bytes: 9)
}
