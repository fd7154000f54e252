/// Re-indents a message that is a JSON object or array (RFC 8259), for `--pretty`, `follow` and
/// the HTML report.
///
/// One pass over the bytes with a stack of open containers, never recursion: linear in the input.
/// Nesting past `maxDepth` is not re-indented (the indentation alone would grow with the square
/// of the input), so such a message is shown as it came.
public enum JSONPretty {
    public static let maxDepth = 64
    /// Longer messages are shown as they came.
    public static let maxInput = Int.mebibytes(1)

    /// The lines of the re-indented document (two spaces a level), or nil when `bytes` is not one
    /// JSON object or array.
    /// Starts, after any white space, with `{` or `[`: what `lines` re-indents, and what the text
    /// timeline shows as it is.
    static func startsLikeJSON(_ bytes: UnsafeRawBufferPointer) -> Bool {
        for byte in bytes where byte != 0x20 && byte != 0x0A && byte != 0x0D && byte != 0x09 {
            return byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[")
        }
        return false
    }

    public static func lines(_ bytes: UnsafeRawBufferPointer) -> [String]? {
        guard bytes.count <= maxInput else { return nil }
        var lines: [String] = []
        var current: [UInt8] = []
        // Open containers: true for an object.
        var stack: [Bool] = []
        // What may come next.
        enum Expect { case value, key, colon, commaOrEnd, end }
        var expect = Expect.value
        var index = 0
        let count = bytes.count

        func newLine() {
            lines.append(String(decoding: current, as: UTF8.self))
            current = [UInt8](repeating: UInt8(ascii: " "), count: stack.count * 2)
        }
        func skipSpace() {
            while index < count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 { index += 1 }
        }
        /// A string starting at `index` (its opening quote): copied with its escapes; false if unterminated.
        func copyString() -> Bool {
            let start = index
            index += 1
            while index < count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\\") { index += 2; continue }
                if byte < 0x20 { return false }
                index += 1
                if byte == UInt8(ascii: "\"") {
                    current.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<index]))
                    return true
                }
            }
            return false
        }
        /// A number or `true`/`false`/`null`, copied as it is.
        func copyScalar() -> Bool {
            let start = index
            while index < count {
                let byte = bytes[index]
                let isScalarByte = (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".") || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                    || byte == UInt8(ascii: "E")
                guard isScalarByte else { break }
                index += 1
            }
            let scalar = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
            guard !scalar.isEmpty else { return false }
            let word = String(decoding: scalar, as: UTF8.self)
            guard word == "true" || word == "false" || word == "null" || Double(word) != nil else { return false }
            current.append(contentsOf: scalar)
            return true
        }

        guard startsLikeJSON(bytes) else { return nil }
        skipSpace()
        while true {
            skipSpace()
            guard index < count else { break }
            let byte = bytes[index]
            switch (expect, byte) {
            case (.value, UInt8(ascii: "{")), (.value, UInt8(ascii: "[")):
                guard stack.count < maxDepth else { return nil }
                let isObject = byte == UInt8(ascii: "{")
                current.append(byte)
                index += 1
                skipSpace()
                // An empty container stays on one line.
                if index < count, bytes[index] == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    current.append(bytes[index])
                    index += 1
                    expect = stack.isEmpty ? .end : .commaOrEnd
                } else {
                    stack.append(isObject)
                    newLine()
                    expect = isObject ? .key : .value
                }
            case (.value, UInt8(ascii: "\"")), (.key, UInt8(ascii: "\"")):
                guard copyString() else { return nil }
                expect = expect == .key ? .colon : .commaOrEnd
            case (.value, _):
                guard copyScalar() else { return nil }
                expect = .commaOrEnd
            case (.colon, UInt8(ascii: ":")):
                current.append(contentsOf: [UInt8(ascii: ":"), UInt8(ascii: " ")])
                index += 1
                expect = .value
            case (.commaOrEnd, UInt8(ascii: ",")):
                current.append(byte)
                index += 1
                guard let isObject = stack.last else { return nil }
                newLine()
                expect = isObject ? .key : .value
            case (.commaOrEnd, UInt8(ascii: "}")), (.commaOrEnd, UInt8(ascii: "]")):
                guard let isObject = stack.popLast(), isObject == (byte == UInt8(ascii: "}")) else { return nil }
                newLine()
                current.append(byte)
                index += 1
                expect = stack.isEmpty ? .end : .commaOrEnd
            default:
                return nil
            }
            if expect == .end { break }
        }
        skipSpace()
        guard expect == .end, index == count else { return nil }
        lines.append(String(decoding: current, as: UTF8.self))
        return lines
    }
}
