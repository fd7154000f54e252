/// Standard base64 (RFC 4648 §4) with padding, for keys, accept values and binary payloads.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    /// The two characters of every 12-bit value, first character in the low byte.
    private static let pairs: [UInt16] = (0..<4096).map { value in
        UInt16(alphabet[value >> 6]) | UInt16(alphabet[value & 0x3F]) << 8
    }

    /// The length of the padded encoding of `count` bytes.
    public static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Appends the encoding of `bytes` to `output`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        let start = output.count
        let length = encodedLength(bytes.count)
        output.append(contentsOf: repeatElement(0, count: length))
        output.withUnsafeMutableBytes { all in
            encode(bytes, into: UnsafeMutableRawBufferPointer(rebasing: all[start..<(start + length)]))
        }
    }

    /// Writes the encoding of `bytes` into `output`, which must hold exactly `encodedLength(bytes.count)` bytes.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        precondition(output.count == encodedLength(bytes.count), "base64 output of the wrong size")
        guard let out = output.baseAddress else { return }
        var index = 0
        var filled = 0
        let count = bytes.count
        if let input = bytes.baseAddress {
            // Six bytes at a time: four 12-bit lookups, each giving two characters, one 8-byte store.
            pairs.withUnsafeBufferPointer { pairs in
                while index + 8 <= count {
                    let word = UInt64(bigEndian: input.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                    let encoded = UInt64(pairs[Int(word >> 52)])
                        | UInt64(pairs[Int((word >> 40) & 0xFFF)]) << 16
                        | UInt64(pairs[Int((word >> 28) & 0xFFF)]) << 32
                        | UInt64(pairs[Int((word >> 16) & 0xFFF)]) << 48
                    (out + filled).storeBytes(of: encoded.littleEndian, as: UInt64.self)
                    filled += 8
                    index += 6
                }
            }
        }
        alphabet.withUnsafeBufferPointer { table in
            while index + 3 <= count {
                let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                let quad = UInt32(table[Int(value >> 18)])
                    | UInt32(table[Int((value >> 12) & 0x3F)]) << 8
                    | UInt32(table[Int((value >> 6) & 0x3F)]) << 16
                    | UInt32(table[Int(value & 0x3F)]) << 24
                (out + filled).storeBytes(of: quad.littleEndian, as: UInt32.self)
                filled += 4
                index += 3
            }
            let left = count - index
            guard left > 0 else { return }
            var value = UInt32(bytes[index]) << 16
            if left == 2 { value |= UInt32(bytes[index + 1]) << 8 }
            out.storeBytes(of: table[Int(value >> 18)], toByteOffset: filled, as: UInt8.self)
            out.storeBytes(of: table[Int((value >> 12) & 0x3F)], toByteOffset: filled + 1, as: UInt8.self)
            out.storeBytes(of: left == 2 ? table[Int((value >> 6) & 0x3F)] : UInt8(ascii: "="), toByteOffset: filled + 2, as: UInt8.self)
            out.storeBytes(of: UInt8(ascii: "="), toByteOffset: filled + 3, as: UInt8.self)
        }
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        bytes.withUnsafeBytes { encode($0, into: &output) }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes padded base64; nil for any character outside the alphabet or a wrong length.
    public static func decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(characters.count / 4 * 3)
        var index = 0
        while index < characters.count {
            var value: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let character = characters[index + offset]
                let sextet: UInt32
                if character == UInt8(ascii: "="), index + 4 == characters.count, offset >= 2 {
                    padding += 1
                    sextet = 0
                } else {
                    guard padding == 0, let found = sextetValue(character) else { return nil }
                    sextet = found
                }
                value = value << 6 | sextet
            }
            output.append(UInt8(truncatingIfNeeded: value >> 16))
            if padding < 2 { output.append(UInt8(truncatingIfNeeded: value >> 8)) }
            if padding < 1 { output.append(UInt8(truncatingIfNeeded: value)) }
            index += 4
        }
        return output
    }

    /// The 6-bit value of one alphabet character.
    @inline(__always)
    private static func sextetValue(_ character: UInt8) -> UInt32? {
        switch character {
        case 0x41...0x5A: UInt32(character - 0x41)
        case 0x61...0x7A: UInt32(character - 0x61 + 26)
        case 0x30...0x39: UInt32(character - 0x30 + 52)
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }
}
