/// Strict UTF-8 validation (RFC 3629): no overlongs, surrogates or code points past U+10FFFF.
public enum UTF8Validation {
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        isValid(bytes, allowingCutEnd: false)
    }

    /// With `allowingCutEnd`, a sequence that is valid so far but cut by the end of `bytes` passes
    /// (a fragment may end inside a character).
    public static func isValid(_ bytes: UnsafeRawBufferPointer, allowingCutEnd: Bool) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            // ASCII fast path: 32 bytes, then 8 at a time; an all-ASCII rest of 8 bytes or more
            // is settled by one word that ends at the last byte.
            while index + 32 <= count {
                let words = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                    | bytes.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
                    | bytes.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
                    | bytes.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
                guard words & 0x8080_8080_8080_8080 == 0 else { break }
                index += 32
            }
            while index + 8 <= count, bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                index += 8
            }
            if index < count, count >= 8, index > count - 8,
               bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                break
            }
            guard index < count else { break }
            let lead = bytes[index]
            if lead < 0x80 {
                index += 1
                continue
            }
            guard let character = character(at: index, in: bytes) else { return false }
            if character.present < character.length, !allowingCutEnd { return false }
            index += character.length
        }
        return true
    }

    /// The non-ASCII character that starts at `index` (Unicode table 3-7): its full length and how
    /// many of its bytes `bytes` holds, or nil if those bytes are not well-formed so far.
    @inline(__always)
    public static func character(at index: Int, in bytes: UnsafeRawBufferPointer) -> (length: Int, present: Int)? {
        let length: Int
        var lower: UInt8 = 0x80, upper: UInt8 = 0xBF
        switch bytes[index] {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; upper = 0x9F
        case 0xF0: length = 4; lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; upper = 0x8F
        default: return nil
        }
        let present = min(length, bytes.count - index)
        if present >= 2 {
            let second = bytes[index + 1]
            guard second >= lower, second <= upper else { return nil }
        }
        for offset in 2..<max(2, present) where bytes[index + offset] & 0xC0 != 0x80 {
            return nil
        }
        return (length, present)
    }
}
