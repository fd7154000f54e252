/// A parsed request line and header block (RFC 9112 §3).
public struct HTTPRequestHead: Hashable, Sendable {
    public var method: String
    public var target: String
    public var version: String
    public var headers: HTTPHeaders

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
public enum HTTPHeadParser {
    public static func parseRequest(_ head: [UInt8]) throws(HTTPHeadError) -> HTTPRequestHead {
        let lines = splitLines(head)
        guard let first = lines.first else { throw .malformedRequestLine("") }
        let parts = first.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/"), parts[0].allSatisfy(isTokenCharacter) else {
            throw .malformedRequestLine(String(first.prefix(200)))
        }
        return HTTPRequestHead(
            method: String(parts[0]), target: String(parts[1]), version: String(parts[2]),
            headers: try parseHeaderLines(lines.dropFirst()))
    }

    public static func parseResponse(_ head: [UInt8]) throws(HTTPHeadError) -> HTTPResponseHead {
        let lines = splitLines(head)
        guard let first = lines.first else { throw .malformedStatusLine("") }
        let parts = first.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), parts[1].count == 3,
              let status = Int(parts[1]), status >= 100
        else {
            throw .malformedStatusLine(String(first.prefix(200)))
        }
        return HTTPResponseHead(
            version: String(parts[0]), status: status, reason: parts.count > 2 ? String(parts[2]) : "",
            headers: try parseHeaderLines(lines.dropFirst()))
    }

    /// Lines of a head, accepting CRLF or bare LF, without the terminating empty line.
    private static func splitLines(_ head: [UInt8]) -> [String] {
        var lines: [String] = []
        var start = head.startIndex
        for index in head.indices where head[index] == 0x0A {
            var end = index
            if end > start, head[end - 1] == 0x0D { end -= 1 }
            if end == start { break }
            lines.append(String(decoding: head[start..<end], as: UTF8.self))
            start = index + 1
        }
        return lines
    }

    private static func parseHeaderLines(_ lines: ArraySlice<String>) throws(HTTPHeadError) -> HTTPHeaders {
        var headers: [HTTPHeader] = []
        for line in lines {
            if line.first == " " || line.first == "\t" {
                // Obsolete line folding (RFC 9112 §5.2): continues the previous value.
                guard !headers.isEmpty else { throw .malformedHeaderLine(String(line.prefix(200))) }
                headers[headers.count - 1].value += " " + line.trimmingOptionalWhitespace()
                continue
            }
            guard let colon = line.firstIndex(of: ":") else { throw .malformedHeaderLine(String(line.prefix(200))) }
            let name = String(line[..<colon])
            guard !name.isEmpty, name.allSatisfy(isTokenCharacter) else {
                throw .malformedHeaderLine(String(line.prefix(200)))
            }
            headers.append(HTTPHeader(
                name: name, value: String(line[line.index(after: colon)...]).trimmingOptionalWhitespace()))
        }
        return HTTPHeaders(headers)
    }

    /// RFC 9110 §5.6.2 `tchar`.
    static func isTokenCharacter(_ character: Character) -> Bool {
        guard let ascii = character.asciiValue else { return false }
        switch ascii {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
        default: return "!#$%&'*+-.^_`|~".utf8.contains(ascii)
        }
    }
}
