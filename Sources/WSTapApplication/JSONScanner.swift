import WSTapCore

/// A JSON value's kind (RFC 8259 §3).
public enum JSONKind: Sendable, Equatable {
    case object, array, string, number, bool, null
}

/// Why bytes are not JSON, and where (RFC 8259).
public struct JSONSyntaxError: Sendable, Equatable, Error {
    /// Offset of the first byte that cannot be JSON (the length of the input when it ended early).
    public var offset: Int
    public var reason: String
}

/// One member of a JSON object: its key, and where its value is in the text.
public struct JSONMember: Sendable {
    public var key: String
    public var kind: JSONKind
    /// The value's bytes in the scanned text.
    public var range: Range<Int>
}

/// Checks JSON text and finds the members of its top-level object (or the elements of its
/// top-level array), for the message decoders that read JSON (GraphQL, JSON-RPC, plain JSON).
///
/// Linear in its input and without recursion: containers are tracked on an explicit stack of at
/// most `maxDepth` levels (deeper input is an error, not a crash). Strings are checked for their
/// escapes; their UTF-8 is the WebSocket decoder's to check.
public struct JSONScanner {
    public static let maxDepth = 512

    private let bytes: UnsafeRawBufferPointer
    private var index = 0

    private init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Nil when `bytes` is one JSON value (with white space around it), else the first error.
    public static func validate(_ bytes: UnsafeRawBufferPointer) -> JSONSyntaxError? {
        var scanner = JSONScanner(bytes)
        do {
            try scanner.document { _, _, _, _ in }
            return nil
        } catch {
            return error
        }
    }

    /// The top-level object's members in order, or the error that makes the text not JSON;
    /// `nil` members when the text is JSON but not an object.
    public static func members(_ bytes: UnsafeRawBufferPointer) -> Result<[JSONMember]?, JSONSyntaxError> {
        var scanner = JSONScanner(bytes)
        var members: [JSONMember] = []
        var topKind: JSONKind?
        do {
            try scanner.document { depth, key, kind, range in
                if depth == 0 {
                    topKind = kind
                } else if depth == 1, let key {
                    members.append(JSONMember(key: Self.string(bytes, key) ?? "", kind: kind, range: range))
                }
            }
        } catch {
            return .failure(error)
        }
        return .success(topKind == .object ? members : nil)
    }

    /// The top-level array's elements (their kinds and ranges), or nil when the text is not a JSON array.
    public static func elements(_ bytes: UnsafeRawBufferPointer) -> [(kind: JSONKind, range: Range<Int>)]? {
        var scanner = JSONScanner(bytes)
        var elements: [(kind: JSONKind, range: Range<Int>)] = []
        var topKind: JSONKind?
        do {
            try scanner.document { depth, _, kind, range in
                if depth == 0 { topKind = kind } else if depth == 1 { elements.append((kind, range)) }
            }
        } catch {
            return nil
        }
        return topKind == .array ? elements : nil
    }

    /// The text of a JSON string value (with its quotes, as `members` gives its range), unescaped.
    public static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        guard range.count >= 2, bytes[range.lowerBound] == UInt8(ascii: "\"") else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var index = range.lowerBound + 1
        let end = range.upperBound - 1
        while index < end {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\"), index + 1 < end else {
                out.append(byte)
                index += 1
                continue
            }
            let escaped = bytes[index + 1]
            index += 2
            switch escaped {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard index + 4 <= end, var scalar = hex4(bytes, index) else { return nil }
                index += 4
                if (0xD800..<0xDC00).contains(scalar), index + 6 <= end, bytes[index] == UInt8(ascii: "\\"),
                   bytes[index + 1] == UInt8(ascii: "u"), let low = hex4(bytes, index + 2), (0xDC00..<0xE000).contains(low) {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                }
                out += Array(String(Unicode.Scalar(scalar).map(Character.init) ?? "\u{FFFD}").utf8)
            default: out.append(escaped)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex4(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt32? {
        var value: UInt32 = 0
        for offset in 0..<4 {
            guard let digit = HexDigit.value(bytes[at + offset]) else { return nil }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    // MARK: - Scanning

    /// A value is reported when it ends: its depth (0 for the top level), its key's bytes (quotes
    /// included, escapes not decoded) when it is an object's member, its kind and its bytes.
    private typealias Visit = (_ depth: Int, _ key: Range<Int>?, _ kind: JSONKind, _ range: Range<Int>) -> Void

    private struct Container {
        var kind: JSONKind
        var start: Int
        var key: Range<Int>?
        var count = 0
    }

    private mutating func document(_ visit: Visit) throws(JSONSyntaxError) {
        var stack: [Container] = []
        var pendingKey: Range<Int>?
        skipSpace()
        while true {
            // A value starts here (the document's, an element's or a member's).
            guard index < bytes.count else { throw fail("the text ends where a value should start") }
            let start = index
            let key = pendingKey
            pendingKey = nil
            var scalarKind: JSONKind?
            switch bytes[index] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard stack.count < Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth) levels") }
                let kind: JSONKind = bytes[index] == UInt8(ascii: "{") ? .object : .array
                stack.append(Container(kind: kind, start: start, key: key))
                index += 1
                skipSpace()
                let closing = kind == .object ? UInt8(ascii: "}") : UInt8(ascii: "]")
                if index < bytes.count, bytes[index] == closing {
                    index += 1
                    let done = stack.removeLast()
                    visit(stack.count, done.key, done.kind, done.start..<index)
                    break
                }
                if kind == .object {
                    pendingKey = try memberKey()
                }
                continue
            case UInt8(ascii: "\""):
                try skipString()
                scalarKind = .string
            case UInt8(ascii: "t"): try literal("true"); scalarKind = .bool
            case UInt8(ascii: "f"): try literal("false"); scalarKind = .bool
            case UInt8(ascii: "n"): try literal("null"); scalarKind = .null
            case UInt8(ascii: "-"), 0x30...0x39: try number(); scalarKind = .number
            default:
                throw fail("'\(Self.describe(bytes[index]))' cannot start a value")
            }
            if let scalarKind { visit(stack.count, key, scalarKind, start..<index) }
            // After a value: a comma and the next, or the containers that end here.
            while true {
                skipSpace()
                guard var top = stack.popLast() else {
                    guard index == bytes.count else { throw fail("'\(Self.describe(bytes[index]))' after the end of the value") }
                    return
                }
                top.count += 1
                guard index < bytes.count else { throw fail("the text ends inside an \(top.kind == .object ? "object" : "array")") }
                let closing = top.kind == .object ? UInt8(ascii: "}") : UInt8(ascii: "]")
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    skipSpace()
                    stack.append(top)
                    if top.kind == .object { pendingKey = try memberKey() }
                    break
                }
                guard bytes[index] == closing else {
                    throw fail("'\(Self.describe(bytes[index]))' where a comma or '\(Character(Unicode.Scalar(closing)))' should be")
                }
                index += 1
                visit(stack.count, top.key, top.kind, top.start..<index)
            }
        }
    }

    /// `"key" :` of an object's member, the index left at its value.
    private mutating func memberKey() throws(JSONSyntaxError) -> Range<Int> {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
            throw fail(index < bytes.count ? "'\(Self.describe(bytes[index]))' where a member's name should be" : "the text ends where a member's name should be")
        }
        let start = index
        try skipString()
        let key = start..<index
        skipSpace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("no ':' after a member's name") }
        index += 1
        skipSpace()
        return key
    }

    private mutating func skipString() throws(JSONSyntaxError) {
        index += 1
        while index < bytes.count {
            index = WordScan.firstJSONStringSpecial(in: bytes, from: index)
            guard index < bytes.count else { break }
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return
            }
            if byte < 0x20 { throw fail("a control character inside a string") }
            if byte == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { break }
                let escaped = bytes[index + 1]
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard index + 6 <= bytes.count, Self.hex4(bytes, index + 2) != nil else { throw fail("a \\u escape without four hex digits") }
                    index += 6
                default:
                    throw fail("'\\\(Self.describe(escaped))' is not an escape")
                }
            }
        }
        throw fail("the text ends inside a string")
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let length = word.utf8CodeUnitCount
        guard index + length <= bytes.count else { throw fail("the text ends inside '\(word)'") }
        for offset in 0..<length where bytes[index + offset] != word.utf8Start[offset] {
            index += offset
            throw fail("not '\(word)'")
        }
        index += length
    }

    private mutating func number() throws(JSONSyntaxError) {
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, Self.isDigit(bytes[index]) else { throw fail("a number without digits") }
        if bytes[index] == 0x30 {
            index += 1
        } else {
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw fail("no digits after a decimal point") }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, Self.isDigit(bytes[index]) else { throw fail("no digits in an exponent") }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    private mutating func skipSpace() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 || bytes[index] == 0x0A || bytes[index] == 0x0D {
            index += 1
        }
    }

    private func fail(_ reason: String) -> JSONSyntaxError { JSONSyntaxError(offset: index, reason: reason) }

    private static func describe(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? String(Character(Unicode.Scalar(byte))) : "\\x" + String(byte, radix: 16)
    }
}
