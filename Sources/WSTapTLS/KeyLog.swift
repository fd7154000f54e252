import WSTapCore

/// The secrets of an NSS key log (`SSLKEYLOGFILE`), by client random.
///
/// Lines are `LABEL CLIENT_RANDOM SECRET` in hex; comments (`#`) and labels wstap does not use are
/// skipped, and a malformed line is remembered with its line number while the rest is used. A
/// file still being written (a browser's, during `sniff`) is read again from where the last read
/// ended: `reload()` adds what was appended, and a line not yet finished waits for its end.
///
/// Threads: `reload()` and `secrets(clientRandom:refreshing: true)` change the table, so only one
/// thread may call them (a live capture's decoder thread, the only one that refreshes). Lookups
/// without refreshing only read it: the jobs of a parallel analysis share one key log, read whole
/// before they start, which none of them reloads. That rule, not a lock, is why it is Sendable.
public final class KeyLog: @unchecked Sendable {
    /// The secrets one TLS connection needs, as far as the key log has them.
    public struct Secrets: Sendable, Equatable {
        /// TLS 1.2 and earlier: `CLIENT_RANDOM`.
        public var masterSecret: [UInt8]?
        /// TLS 1.3.
        public var clientHandshakeTraffic: [UInt8]?
        public var serverHandshakeTraffic: [UInt8]?
        public var clientTraffic0: [UInt8]?
        public var serverTraffic0: [UInt8]?
    }

    /// A line that is not `LABEL HEX HEX` with a 32-byte client random.
    public struct MalformedLine: Sendable, Equatable {
        public var number: Int
        public var reason: String
    }

    /// Where the key log came from, as the output names it: the file and how it was chosen.
    public let path: String
    public let source: String
    /// The first `maxMalformedLinesKept` malformed lines; `malformedLineCount` counts them all.
    public private(set) var malformedLines: [MalformedLine] = []
    public private(set) var malformedLineCount = 0
    public static let maxMalformedLinesKept = 10
    /// Client randoms with secrets at most: past it further ones are counted, not kept (a key log
    /// of a million connections is about 300 MB in memory).
    public static let maxConnections = 1_000_000
    /// Lines naming a client random past `maxConnections`.
    public private(set) var linesPastLimit = 0
    private var secrets: [[UInt8]: Secrets] = [:]
    private var readOffset: Int64 = 0
    private var lineNumber = 0
    private var partialLine: [UInt8] = []
    /// Longest line kept while waiting for its end; a longer one is malformed.
    private static let maxLineLength = 4096

    /// Reads `path`; `source` says how it was chosen (`--keylog`, `SSLKEYLOGFILE`). A path that
    /// is not a regular file (a FIFO, a device, a directory) is refused: opening a FIFO would wait
    /// for a writer forever.
    public init(path: String, source: String) throws(KeyLogError) {
        self.path = path
        self.source = source
        switch SystemCalls.fileStatus(path) {
        case .success(let status) where !status.isRegularFile:
            throw .cannotRead(path: path, reason: "not a regular file (a key log is read as a file that may grow)")
        case .failure(let error):
            throw .cannotRead(path: path, reason: error.reason)
        case .success:
            break
        }
        try reload()
    }

    /// Secrets parsed from text (tests, library users).
    public init(text: String) {
        path = "-"
        source = "text"
        consume(Array(text.utf8) + [0x0A])
    }

    /// The secrets for the connection whose ClientHello carried `clientRandom`. `refreshing`
    /// (live capture): when they are not there, what the writer appended since is read first.
    public func secrets(clientRandom: [UInt8], refreshing: Bool = false) -> Secrets? {
        if let found = secrets[clientRandom] { return found }
        guard refreshing, path != "-" else { return nil }
        try? reload()
        return secrets[clientRandom]
    }

    /// Client randoms with secrets.
    public var count: Int { secrets.count }

    /// Reads what was appended to the file since the last read, to its end, a chunk at a time
    /// (memory holds one chunk, the secrets kept and the first malformed lines).
    public func reload() throws(KeyLogError) {
        while true {
            let contents: [UInt8]
            switch SystemCalls.readFile(path, from: readOffset, limit: Self.chunkBytes) {
            case .success(let bytes): contents = bytes
            case .failure(let error): throw .cannotRead(path: path, reason: error.reason)
            }
            readOffset += Int64(contents.count)
            consume(contents)
            if contents.count < Self.chunkBytes { return }
        }
    }

    private static let chunkBytes = Int.mebibytes(16)

    private func consume(_ bytes: [UInt8]) {
        var start = 0
        for index in bytes.indices where bytes[index] == 0x0A {
            parseLine(partialLine + bytes[start..<index])
            partialLine = []
            start = index + 1
        }
        partialLine += bytes[start...]
        if partialLine.count > Self.maxLineLength {
            lineNumber += 1
            malformed("line longer than \(Self.maxLineLength) bytes")
            partialLine = []
        }
    }

    private func parseLine(_ line: [UInt8]) {
        lineNumber += 1
        let text = String(decoding: line, as: UTF8.self).trimmingWhitespace
        if text.isEmpty || text.hasPrefix("#") { return }
        let fields = text.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count == 3 else {
            return malformed("expected LABEL CLIENT_RANDOM SECRET, found \(fields.count) fields")
        }
        let label = String(fields[0])
        guard Self.knownLabels.contains(label) else { return }  // EXPORTER_SECRET, early traffic, …
        guard let random = Hex.decode(fields[1]), random.count == 32 else {
            return malformed("\(label): the client random is not 32 bytes of hex")
        }
        guard let secret = Hex.decode(fields[2]), !secret.isEmpty, secret.count <= 64 else {
            return malformed("\(label): the secret is not hex of 1 to 64 bytes")
        }
        if secrets[random] == nil, secrets.count >= Self.maxConnections {
            linesPastLimit += 1
            return
        }
        var entry = secrets[random] ?? Secrets()
        switch label {
        case "CLIENT_RANDOM": entry.masterSecret = secret
        case "CLIENT_HANDSHAKE_TRAFFIC_SECRET": entry.clientHandshakeTraffic = secret
        case "SERVER_HANDSHAKE_TRAFFIC_SECRET": entry.serverHandshakeTraffic = secret
        case "CLIENT_TRAFFIC_SECRET_0": entry.clientTraffic0 = secret
        default: entry.serverTraffic0 = secret
        }
        secrets[random] = entry
    }

    private func malformed(_ reason: String) {
        malformedLineCount += 1
        if malformedLines.count < Self.maxMalformedLinesKept { malformedLines.append(MalformedLine(number: lineNumber, reason: reason)) }
    }

    private static let knownLabels: Set<String> = [
        "CLIENT_RANDOM", "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0",
    ]
}

/// Why a key log could not be read at all.
public enum KeyLogError: Error, Sendable, Equatable {
    case cannotRead(path: String, reason: String)

    public var message: String {
        switch self {
        case .cannotRead(let path, let reason): "cannot read key log \(path): \(reason)"
        }
    }
}

/// Hexadecimal text to bytes.
enum Hex {
    static func decode(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = HexDigit.value(digits[index]), let low = HexDigit.value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }


}

extension String {
    /// Without leading and trailing spaces, tabs and carriage returns.
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
