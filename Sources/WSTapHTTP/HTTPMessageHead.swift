import WSTapCore

/// A parsed request line and header block (RFC 9112 §3).
public struct HTTPRequestHead: Hashable, Sendable {
    public var method: String
    public var target: String
    public var version: String
    public var headers: HTTPHeaders
    /// The bytes of `target` and `version` when they are not UTF-8 (the strings then hold
    /// U+FFFD in their place); nil when the strings are the bytes.
    public var targetBytes: [UInt8]?
    public var versionBytes: [UInt8]?

    /// A CONNECT without `:protocol` (RFC 9110 §9.3.6, RFC 9113 §8.5): its target is the
    /// authority of a tunnel; an extended CONNECT (RFC 8441) is a WebSocket handshake instead.
    public var isClassicConnect: Bool { method == "CONNECT" && headers.combinedValue(":protocol") == nil }

    public init(method: String, target: String, version: String, headers: HTTPHeaders) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }
}

/// A parsed status line and header block (RFC 9112 §4).
public struct HTTPResponseHead: Hashable, Sendable {
    public var version: String
    public var status: Int
    public var reason: String
    public var headers: HTTPHeaders
    /// The bytes of `version` and `reason` when they are not UTF-8; nil when the strings are the bytes.
    public var versionBytes: [UInt8]?
    public var reasonBytes: [UInt8]?

    public init(version: String, status: Int, reason: String, headers: HTTPHeaders) {
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
    }
}

/// Why a message head could not be parsed.
public enum HTTPHeadError: Error, Hashable, Sendable {
    case malformedRequestLine(String)
    case malformedStatusLine(String)
    case malformedHeaderLine(String)
}

/// Parses complete message heads (the bytes up to and including the empty line).
///
/// Lines, separators and token checks work on the bytes; strings are made once per field.
/// Linear in the head: lines are found with `memchr` from where the last one ended, and each
/// line is split and checked once (a head is at most 64 KiB, so at most 32,768 lines).
public enum HTTPHeadParser {
    public static func parseRequest(_ head: [UInt8]) throws(HTTPHeadError) -> HTTPRequestHead {
        try head.withUnsafeBufferPointer { (bytes) throws(HTTPHeadError) -> HTTPRequestHead in
            let lines = lineRanges(bytes)
            guard let first = lines.first else { throw .malformedRequestLine("") }
            let line = UnsafeBufferPointer(rebasing: bytes[first])
            let parts = line.split(separator: 0x20, omittingEmptySubsequences: true)
            guard parts.count == 3, parts[2].starts(with: "HTTP/".utf8), parts[0].allSatisfy(isTokenByte) else {
                throw .malformedRequestLine(excerpt(line))
            }
            var head = HTTPRequestHead(
                method: text(parts[0]), target: text(parts[1]), version: text(parts[2]),
                headers: try parseHeaderLines(bytes, lines.dropFirst()))
            head.targetBytes = bytesUnlessUTF8(parts[1])
            head.versionBytes = bytesUnlessUTF8(parts[2])
            return head
        }
    }

    public static func parseResponse(_ head: [UInt8]) throws(HTTPHeadError) -> HTTPResponseHead {
        try head.withUnsafeBufferPointer { (bytes) throws(HTTPHeadError) -> HTTPResponseHead in
            let lines = lineRanges(bytes)
            guard let first = lines.first else { throw .malformedStatusLine("") }
            let line = UnsafeBufferPointer(rebasing: bytes[first])
            let parts = line.split(separator: 0x20, maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0].starts(with: "HTTP/".utf8), parts[1].count == 3,
                  parts[1].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), parts[1].first! >= 0x31
            else {
                throw .malformedStatusLine(excerpt(line))
            }
            let status = parts[1].reduce(0) { $0 * 10 + Int($1 - 0x30) }
            var head = HTTPResponseHead(
                version: text(parts[0]), status: status, reason: parts.count > 2 ? text(parts[2]) : "",
                headers: try parseHeaderLines(bytes, lines.dropFirst()))
            head.versionBytes = bytesUnlessUTF8(parts[0])
            head.reasonBytes = parts.count > 2 ? bytesUnlessUTF8(parts[2]) : nil
            return head
        }
    }

    /// Ranges of the lines of a head, accepting CRLF or bare LF, without the terminating empty line.
    private static func lineRanges(_ head: UnsafeBufferPointer<UInt8>) -> [Range<Int>] {
        var lines: [Range<Int>] = []
        lines.reserveCapacity(16)
        let bytes = UnsafeRawBufferPointer(head)
        var start = 0
        while let index = SystemCalls.firstIndex(of: 0x0A, in: bytes, from: start) {
            var end = index
            if end > start, head[end - 1] == 0x0D { end -= 1 }
            if end == start { break }
            lines.append(start..<end)
            start = index + 1
        }
        return lines
    }

    private static func parseHeaderLines(
        _ head: UnsafeBufferPointer<UInt8>, _ lines: ArraySlice<Range<Int>>
    ) throws(HTTPHeadError) -> HTTPHeaders {
        var headers: [HTTPHeader] = []
        headers.reserveCapacity(lines.count)
        for range in lines {
            let line = UnsafeBufferPointer(rebasing: head[range])
            if OptionalWhitespace.contains(line[0]) {
                // Obsolete line folding (RFC 9112 §5.2): continues the previous value.
                guard !headers.isEmpty else { throw .malformedHeaderLine(excerpt(line)) }
                let continuation = OptionalWhitespace.trim(line)
                let last = headers.count - 1
                if headers[last].valueBytes != nil || bytesUnlessUTF8(continuation[...]) != nil {
                    headers[last].valueBytes = (headers[last].valueBytes ?? Array(headers[last].value.utf8)) + [0x20] + continuation
                }
                headers[last].value += " " + text(continuation)
                continue
            }
            guard let colon = line.firstIndex(of: 0x3A) else { throw .malformedHeaderLine(excerpt(line)) }
            let name = UnsafeBufferPointer(rebasing: line[..<colon])
            guard !name.isEmpty, name.allSatisfy(isTokenByte) else { throw .malformedHeaderLine(excerpt(line)) }
            let value = OptionalWhitespace.trim(UnsafeBufferPointer(rebasing: line[(colon + 1)...]))
            var header = HTTPHeader(name: text(name), value: text(value))
            header.valueBytes = bytesUnlessUTF8(value[...])
            headers.append(header)
        }
        return HTTPHeaders(headers)
    }

    private static func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    private static func text(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// The bytes of a field, kept only when they are not UTF-8 (a string would lose them).
    private static func bytesUnlessUTF8(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> [UInt8]? {
        UTF8Validation.isValid(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: bytes))) ? nil : Array(bytes)
    }

    /// The start of a line that could not be parsed, for the error.
    private static func excerpt(_ line: UnsafeBufferPointer<UInt8>) -> String {
        String(text(line).prefix(200))
    }

    /// RFC 9110 §5.6.2 `tchar`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
        default: return false
        }
    }
}
