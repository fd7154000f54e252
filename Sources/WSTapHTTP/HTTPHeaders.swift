/// One header line as it appeared on the wire.
public struct HTTPHeader: Hashable, Sendable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Header lines in wire order and case; lookups ignore case, and repeated lines merge (RFC 9110 §5.3).
public struct HTTPHeaders: Hashable, Sendable, Sequence {
    public private(set) var lines: [HTTPHeader]

    public init(_ lines: [HTTPHeader] = []) { self.lines = lines }

    public mutating func append(name: String, value: String) {
        lines.append(HTTPHeader(name: name, value: value))
    }

    public func makeIterator() -> IndexingIterator<[HTTPHeader]> { lines.makeIterator() }

    public func contains(_ name: String) -> Bool {
        lines.contains { $0.name.caseInsensitiveEquals(name) }
    }

    /// Every value of `name`, one per header line.
    public func values(_ name: String) -> [String] {
        lines.filter { $0.name.caseInsensitiveEquals(name) }.map(\.value)
    }

    /// The values of all `name` lines joined with ", ", or nil when there is none.
    public func combinedValue(_ name: String) -> String? {
        let found = values(name)
        return found.isEmpty ? nil : found.joined(separator: ", ")
    }

    /// The comma-separated list elements of every `name` line, trimmed, empty elements dropped.
    public func tokens(_ name: String) -> [String] {
        values(name).flatMap(TokenList.split)
    }

    /// True when `token` is one of the list elements of `name`, compared without case.
    public func hasToken(_ token: String, in name: String) -> Bool {
        tokens(name).contains { $0.caseInsensitiveEquals(token) }
    }
}

/// The single splitter for comma-separated header lists (RFC 9110 §5.6.1), quote aware.
public enum TokenList {
    /// Splits `value` at commas outside quoted strings, trimming spaces and tabs around elements.
    public static func split(_ value: String) -> [String] {
        split(value, separator: ",")
    }

    /// Splits at `separator` outside quoted strings; also used for `;`-separated parameters.
    public static func split(_ value: String, separator: Character) -> [String] {
        var elements: [String] = []
        var current = ""
        var inQuotes = false
        var escaped = false
        for character in value {
            if escaped {
                escaped = false
            } else if inQuotes, character == "\\" {
                escaped = true
            } else if character == "\"" {
                inQuotes.toggle()
            } else if character == separator, !inQuotes {
                appendTrimmed(current, to: &elements)
                current = ""
                continue
            }
            current.append(character)
        }
        appendTrimmed(current, to: &elements)
        return elements
    }

    private static func appendTrimmed(_ element: String, to elements: inout [String]) {
        let trimmed = element.trimmingOptionalWhitespace()
        if !trimmed.isEmpty { elements.append(trimmed) }
    }
}

extension String {
    /// ASCII case-insensitive comparison, as HTTP field names and tokens need.
    public func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        return zip(a, b).allSatisfy { asciiLower($0) == asciiLower($1) }
    }

    /// Removes leading and trailing spaces and tabs (HTTP optional whitespace).
    public func trimmingOptionalWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }),
              let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })
        else { return "" }
        return String(scalars[first...last])
    }
}

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 {
    byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
}
