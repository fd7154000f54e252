/// Standard base64 (RFC 4648 §4) with padding, for keys, accept values and binary payloads.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// Appends the encoding of `bytes` to `output`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, into output: inout [UInt8]) {
        output.reserveCapacity(output.count + (bytes.count + 2) / 3 * 4)
        encode(bytes) { output.appendBytes($0) }
    }

    /// Encodes `bytes` through a stack buffer, handing each filled block (up to 4 KiB) to `emit`.
    public static func encode(_ bytes: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) -> Void) {
        alphabet.withUnsafeBufferPointer { table in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 4096) { block in
                var index = 0
                let count = bytes.count
                var filled = 0
                while index + 3 <= count {
                    let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
                    block[filled] = table[Int(value >> 18)]
                    block[filled + 1] = table[Int((value >> 12) & 0x3F)]
                    block[filled + 2] = table[Int((value >> 6) & 0x3F)]
                    block[filled + 3] = table[Int(value & 0x3F)]
                    filled += 4
                    index += 3
                    if filled == 4096 {
                        emit(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: block[0..<filled])))
                        filled = 0
                    }
                }
                let left = count - index
                if left > 0 {
                    var value = UInt32(bytes[index]) << 16
                    if left == 2 { value |= UInt32(bytes[index + 1]) << 8 }
                    block[filled] = table[Int(value >> 18)]
                    block[filled + 1] = table[Int((value >> 12) & 0x3F)]
                    block[filled + 2] = left == 2 ? table[Int((value >> 6) & 0x3F)] : UInt8(ascii: "=")
                    block[filled + 3] = UInt8(ascii: "=")
                    filled += 4
                }
                emit(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: block[0..<filled])))
            }
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
                    guard padding == 0, let found = alphabet.firstIndex(of: character) else { return nil }
                    sextet = UInt32(found)
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
}
