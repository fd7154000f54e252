/// One header line as it appeared on the wire.
public struct HTTPHeader: Hashable, Sendable {
    public var name: String
    public var value: String
    /// The value's bytes when they are not UTF-8 (`value` then holds U+FFFD in their place);
    /// nil when `value` is the bytes.
    public var valueBytes: [UInt8]?

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

    /// Calls `body` with the value of each `name` line, in wire order.
    @inline(__always)
    private func forEachValue(named name: String, _ body: (String) -> Void) {
        for line in lines where line.name.caseInsensitiveEquals(name) { body(line.value) }
    }

    /// Every value of `name`, one per header line.
    public func values(_ name: String) -> [String] {
        var found: [String] = []
        forEachValue(named: name) { found.append($0) }
        return found
    }

    /// The values of all `name` lines joined with ", ", or nil when there is none.
    public func combinedValue(_ name: String) -> String? {
        var combined: String?
        forEachValue(named: name) { value in combined = combined.map { $0 + ", " + value } ?? value }
        return combined
    }

    /// The comma-separated list elements of every `name` line, trimmed, empty elements dropped.
    public func tokens(_ name: String) -> [String] {
        var found: [String] = []
        forEachValue(named: name) { found += TokenList.split($0) }
        return found
    }

    /// True when `token` is one of the list elements of `name`, compared without case.
    public func hasToken(_ token: String, in name: String) -> Bool {
        lines.contains { $0.name.caseInsensitiveEquals(name) && TokenList.contains(token, in: $0.value) }
    }
}

/// The single splitter for comma-separated header lists (RFC 9110 §5.6.1), quote aware.
///
/// Works on the UTF-8 bytes: separators, quotes and whitespace are ASCII, and a byte scan costs
/// a fraction of walking `Character`s.
public enum TokenList {
    /// Splits `value` at commas outside quoted strings, trimming spaces and tabs around elements.
    public static func split(_ value: String) -> [String] {
        split(value, separator: ",")
    }

    /// The elements of `answered` that are not in `offered` (compared without case), each once,
    /// in the order they came. Linear: the offered names go into a set, one lookup per element
    /// (a head of 64 KiB holds 30,000 one-letter elements; comparing each with each is not).
    public static func notOffered(_ answered: [String], offered: [String]) -> [String] {
        let offeredNames = Set(offered.lazy.map { $0.lowercased() })
        var reported = Set<String>()
        return answered.filter { element in
            let name = element.lowercased()
            return !offeredNames.contains(name) && reported.insert(name).inserted
        }
    }

    /// Names for a one-line report: all of a few, or the first eight and how many more.
    public static func listing(_ names: [String]) -> String {
        let shown = names.prefix(8).map { "'\($0)'" }.joined(separator: ", ")
        return names.count > 8 ? "\(shown) and \(names.count - 8) more" : shown
    }

    /// Splits at `separator` (an ASCII character) outside quoted strings; also used for
    /// `;`-separated parameters.
    public static func split(_ value: String, separator: Character) -> [String] {
        var value = value
        return value.withUTF8 { bytes in
            var elements: [String] = []
            forEachElement(of: bytes, separator: separator.asciiValue ?? 0x2C) {
                elements.append(String(decoding: $0, as: UTF8.self))
            }
            return elements
        }
    }

    /// Whether one of the comma-separated elements of `value` is `token`, ignoring ASCII case;
    /// compares the bytes in place, without making strings.
    public static func contains(_ token: String, in value: String) -> Bool {
        var value = value, token = token
        return value.withUTF8 { bytes in
            token.withUTF8 { wanted in
                var found = false
                forEachElement(of: bytes, separator: 0x2C) { element in
                    if !found { found = equalIgnoringASCIICase(element, wanted) }
                }
                return found
            }
        }
    }

    /// Calls `body` with each non-empty element, trimmed, split at `separator` outside quotes.
    private static func forEachElement(
        of bytes: UnsafeBufferPointer<UInt8>, separator: UInt8, _ body: (UnsafeBufferPointer<UInt8>) -> Void
    ) {
        var start = 0
        var inQuotes = false
        var escaped = false
        func element(upTo end: Int) {
            let trimmed = OptionalWhitespace.trim(UnsafeBufferPointer(rebasing: bytes[start..<end]))
            if !trimmed.isEmpty { body(trimmed) }
        }
        for index in 0..<bytes.count {
            let byte = bytes[index]
            if escaped {
                escaped = false
            } else if inQuotes, byte == 0x5C {
                escaped = true
            } else if byte == 0x22 {
                inQuotes.toggle()
            } else if byte == separator, !inQuotes {
                element(upTo: index)
                start = index + 1
            }
        }
        element(upTo: bytes.count)
    }
}

/// HTTP optional whitespace (RFC 9110 §5.6.3): spaces and tabs.
enum OptionalWhitespace {
    @inline(__always)
    static func contains(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }

    /// `bytes` without leading and trailing spaces and tabs.
    static func trim(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        var start = bytes.startIndex, end = bytes.endIndex
        while start < end, contains(bytes[start]) { start += 1 }
        while end > start, contains(bytes[end - 1]) { end -= 1 }
        return UnsafeBufferPointer(rebasing: bytes[start..<end])
    }
}

extension String {
    /// ASCII case-insensitive comparison, as HTTP field names and tokens need.
    public func caseInsensitiveEquals(_ other: String) -> Bool {
        let a = utf8, b = other.utf8
        guard a.count == b.count else { return false }
        let contiguous = a.withContiguousStorageIfAvailable { a in
            b.withContiguousStorageIfAvailable { b in equalIgnoringASCIICase(a, b) }
        }
        if let contiguous, let equal = contiguous { return equal }
        return a.elementsEqual(b) { asciiLower($0) == asciiLower($1) }
    }

    /// Removes leading and trailing spaces and tabs (HTTP optional whitespace).
    public func trimmingOptionalWhitespace() -> String {
        var text = self
        return text.withUTF8 { bytes in
            let trimmed = OptionalWhitespace.trim(bytes)
            return trimmed.count == bytes.count ? self : String(decoding: trimmed, as: UTF8.self)
        }
    }
}

/// Whether two byte strings are equal when ASCII letters are compared without case.
func equalIgnoringASCIICase(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    for index in 0..<a.count where asciiLower(a[index]) != asciiLower(b[index]) { return false }
    return true
}

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 {
    byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
}
