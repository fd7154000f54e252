import WSTap
import WSTapCore

/// What a display filter keeps of a decoded timeline (`--conn`, `--host`, `--path`, `--dir`,
/// `--type`, `--grep`, `--messages`). It is applied after decoding, as Wireshark applies display
/// filters: connection ids and times stay those of the whole capture, and the summary counts it all.
public struct DisplayFilter: Sendable {
    /// Kinds of events `--type` names.
    public enum EventKind: String, Sendable, CaseIterable {
        case text, binary, control, handshake, issues
    }

    /// Connection ids to keep; empty keeps all.
    public var connections: Set<UInt64> = []
    /// HTTP/2 streams to show (`--stream`); empty shows all. Events of other streams are not
    /// shown; the connection's own events (its opening, GOAWAY, its end) are its context.
    public var streams: Set<UInt32> = []
    /// The request's `Host` (without its port) or the server's address, ignoring case.
    public var host: String?
    /// A glob (`*`, `?`) on the path of the request target (the part before `?`).
    public var path: String?
    /// A glob on the whole request target, path and query (`/chat?user=alice`, `*EIO=4*`).
    public var url: String?
    /// Client and server (`--client`, `--server`): an address, or an address and port
    /// (`10.0.0.5`, `10.0.0.5:51234`, `::1`, `[::1]:8080`).
    public var client: String?
    public var server: String?
    public var direction: StreamDirection?
    /// Kinds of events to keep; empty keeps all. Connection open and close lines always stay.
    public var kinds: Set<EventKind> = []
    /// A regular expression that a text message must contain (frames are then not shown).
    public var grep: String?
    /// Bytes a binary message (decompressed) must contain (`--grep-bytes`; with `--grep`, a
    /// message matching either is shown).
    public var grepBytes: [UInt8]?
    /// Messages only: no frame events (every message is shown, single-frame ones included).
    public var messagesOnly = false
    /// With `--grep`/`--grep-bytes`: messages of the same connection (and stream) shown before
    /// and after each match, as `grep -C` (`--context N`).
    public var context = 0
    /// Close frames are shown too (`--closes`), whatever else selects events: how each
    /// conversation ended, beside `--messages` or `--grep`.
    public var closeFrames = false
    /// Application messages only (`--app-only`): no frames, WebSocket messages or handshakes.
    public var applicationOnly = false
    /// Application message types or protocols to keep (`--app-type`, lower-case); empty keeps all.
    public var applicationTypes: Set<String> = []
    /// Globs on what an application message is about (`--event`: `ApplicationMessage.subjects`).
    public var applicationSubjects: [String] = []
    /// A time window (`--from`, `--to`, each end included): events outside it are not shown,
    /// while the whole capture is still decoded (its handshakes, compression contexts and
    /// application state), unlike a capture cut with editcap.
    public var from: TimeBound?
    public var to: TimeBound?

    /// Whether only application messages are shown (any of the three above).
    var selectsApplications: Bool { applicationOnly || !applicationTypes.isEmpty || !applicationSubjects.isEmpty }

    /// Whether an application message passes `--app-type` and `--event`.
    func matches(_ message: ApplicationMessage) -> Bool {
        if !applicationTypes.isEmpty,
            !applicationTypes.contains(message.type.lowercased()), !applicationTypes.contains(message.protocolName.lowercased())
        {
            return false
        }
        if !applicationSubjects.isEmpty {
            let subjects = message.subjects.map { Array($0.utf8) }
            return applicationSubjects.contains { pattern in subjects.contains { Glob.matches(Array(pattern.utf8), $0) } }
        }
        return true
    }

    public init() {}

    /// Nothing is filtered.
    public var keepsEverything: Bool {
        connections.isEmpty && host == nil && path == nil && url == nil && direction == nil && kinds.isEmpty && grep == nil && grepBytes == nil && !messagesOnly
            && !selectsApplications && client == nil && server == nil && from == nil && to == nil && streams.isEmpty
    }

    /// Whether `endpoint` is what `pattern` names: its address, or its address and port.
    static func matches(_ pattern: String, _ endpoint: Endpoint) -> Bool {
        let address = endpoint.address.description
        return pattern == endpoint.description || pattern == address || pattern == "[\(address)]"
    }

    /// Whether the filter selects events within the connections it keeps (a direction, kinds, a
    /// pattern, application messages), not only connections.
    var selectsEvents: Bool {
        direction != nil || !kinds.isEmpty || grep != nil || grepBytes != nil || selectsApplications || from != nil || to != nil
            || !streams.isEmpty
    }

    /// Whether the filter chooses connections (by id, host, path, client or server).
    var selectsConnections: Bool {
        !connections.isEmpty || host != nil || path != nil || url != nil || client != nil || server != nil
    }

    /// Whether the host and path of a connection are needed to decide on it.
    var needsRequest: Bool { host != nil || path != nil || url != nil }

    /// The events a text timeline shows for messages: all of them when frames are filtered out.
    public var showsEveryMessage: Bool { messagesOnly || grep != nil || grepBytes != nil }

    /// What `--grep-bytes` looks for: `hex:…` or `text:…`, or without a prefix hex digits (pairs,
    /// spaces or colons between them allowed, `0x` before) when they are that, else the text's
    /// UTF-8. Nil for nothing to look for or bad hex after `hex:`.
    public static func searchedBytes(_ argument: String) -> [UInt8]? {
        if argument.hasPrefix("text:") { return argument.utf8.count > 5 ? Array(argument.utf8.dropFirst(5)) : nil }
        let explicitHex = argument.hasPrefix("hex:")
        var digits = Substring(explicitHex ? String(argument.dropFirst(4)) : argument)
        if digits.hasPrefix("0x") { digits = digits.dropFirst(2) }
        let hex = digits.filter { $0 != " " && $0 != ":" }
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex),
              let byte = UInt8(hex[index..<next], radix: 16) {
            bytes.append(byte)
            index = next
        }
        if index == hex.endIndex, !bytes.isEmpty { return bytes }
        return explicitHex || argument.isEmpty ? nil : Array(argument.utf8)
    }

    /// Whether a request (and the server it went to) matches `--host`, `--path` and `--url`.
    func matches(_ head: HTTPRequestHead, server: Endpoint) -> Bool {
        if let host {
            let named = head.headers.combinedValue("Host").map(Self.hostWithoutPort) ?? ""
            guard named.caseInsensitiveEquals(host) || server.address.description.caseInsensitiveEquals(host) else { return false }
        }
        if let path {
            let requested = head.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            guard Glob.matches(Array(path.utf8), Array(requested.utf8)) else { return false }
        }
        if let url, !Glob.matches(Array(url.utf8), Array(head.target.utf8)) { return false }
        return true
    }

    /// `example.com:8080` → `example.com`; `[::1]:80` → `::1`.
    static func hostWithoutPort(_ value: String) -> String {
        if value.hasPrefix("["), let end = value.firstIndex(of: "]") {
            return String(value[value.index(after: value.startIndex)..<end])
        }
        if let colon = value.lastIndex(of: ":"), value.firstIndex(of: ":") == colon { return String(value[..<colon]) }
        return value
    }
}

/// `*` (any run of bytes) and `?` (one byte) globbing, in linear time per candidate length: the
/// usual two-pointer match with backtracking to the last star only.
enum Glob {
    static func matches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        var (p, t) = (0, 0)
        var star: Int?
        var resume = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == UInt8(ascii: "?") || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == UInt8(ascii: "*") {
                star = p
                p += 1
                resume = t
            } else if let star {
                p = star + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.count
    }
}

/// Passes on the events a `DisplayFilter` keeps. A connection is decided on when its first request
/// shows its host and path (until then its few events are held; a frame before any request means
/// the request was not captured, and the connection cannot match `--host` or `--path`).
public final class FilteringSink: TimelineSink {
    private let sink: any TimelineSink
    private let filter: DisplayFilter
    private let pattern: TextPattern?
    private let bytesPattern: ByteSearch?
    /// `--grep` or `--grep-bytes`: only the messages they match are shown (no frames, no handshakes).
    private var searches: Bool { pattern != nil || filter.grepBytes != nil }
    /// `--from` and `--to` in nanoseconds since the epoch, once the capture's start is known.
    private var window: (lower: Int64, upper: Int64)?
    private enum Decision {
        case undecided(held: [TimelineEvent])
        case keep
        case drop
    }
    private var decisions: [UInt64: Decision] = [:]
    static let maxHeldEvents = 4096
    /// With a filter on events and a sink that writes context lines: the context (open, issues)
    /// of kept connections that no event has matched yet, shown with their first match and
    /// dropped if none comes.
    private var awaitingMatch: [UInt64: [TimelineEvent]] = [:]
    /// Connections seen and kept, and events kept that the filter selected (for "nothing matched").
    /// `--context N`: per connection and stream, the last N messages that did not match (copied:
    /// their bytes are borrowed), and how many after a match are still to be shown.
    private struct ContextKey: Hashable {
        var connection: UInt64
        var stream: StreamID?
    }
    private var before: [ContextKey: [(arena: EventArena, kept: KeptEvent)]] = [:]
    private var afterLeft: [ContextKey: Int] = [:]
    /// The time of the last event shown: earlier context would take the output back in time.
    private var lastShownTime: CaptureTimestamp?
    public private(set) var connectionsSeen = 0
    public private(set) var connectionsKept = 0
    private var eventsKept = 0

    /// Nothing the filter asked for was in the capture: no connection, or no event in the
    /// connections it kept.
    public var matchedNothing: Bool {
        (filter.selectsConnections && connectionsKept == 0) || (filter.selectsEvents && eventsKept == 0)
    }

    /// Fails when `--grep` is not a pattern `TextPattern` compiles.
    public init(wrapping sink: any TimelineSink, filter: DisplayFilter) throws(TextPattern.SyntaxError) {
        self.sink = sink
        self.filter = filter
        pattern = try filter.grep.map { grep throws(TextPattern.SyntaxError) in try TextPattern(grep) }
        bytesPattern = filter.grepBytes.map(ByteSearch.init)
    }

    public var receivesFramesAndMessages: Bool { sink.receivesFramesAndMessages }
    public var writesContextLines: Bool { sink.writesContextLines }

    public func receive(_ event: TimelineEvent) {
        if case .captureStarted = event.kind, let start = event.time, filter.from != nil || filter.to != nil {
            let lower = filter.from?.resolved(captureStart: start) ?? .min
            let upper = filter.to?.resolved(captureStart: start) ?? .max
            window = (lower, upper)
        }
        guard let record = event.connection else { return receiveShown(event) }
        switch decision(for: record, event: event) {
        case .keep:
            deliver(event)
        case .drop:
            break
        case .undecided(var held):
            // Only events without borrowed bytes come before a connection's first request; a
            // connection that piles up thousands of them (gaps) without one is not matched.
            held.append(event)
            decisions[record.id] = held.count > Self.maxHeldEvents ? .drop : .undecided(held: held)
        }
        if case .connectionClosed = event.kind { decisions[record.id] = nil }
    }

    public func finish(_ summary: CaptureSummary) {
        sink.finish(summary)
    }

    /// Where the connection stands once this event is taken into account.
    private func decision(for record: ConnectionRecord, event: TimelineEvent) -> Decision {
        if let known = decisions[record.id] {
            guard case .undecided(let held) = known else { return known }
            switch event.kind {
            case .httpRequest(let head):
                let keep = filter.matches(head, server: record.server)
                decisions[record.id] = keep ? .keep : .drop
                if keep {
                    connectionsKept += 1
                    for earlier in held { deliver(earlier) }
                }
                return keep ? .keep : .drop
            case .frame, .message, .application, .streamClosed, .httpResponse, .httpExchange, .upgrade, .upgradeAnswerBody, .connectionClosed:
                decisions[record.id] = .drop  // no request was captured: host and path are unknown
                return .drop
            default:
                return known
            }
        }
        let first: Decision
        connectionsSeen += 1
        if !filter.connections.isEmpty, !filter.connections.contains(record.id) {
            first = .drop
        } else if let client = filter.client, !DisplayFilter.matches(client, record.client) {
            first = .drop
        } else if let server = filter.server, !DisplayFilter.matches(server, record.server) {
            first = .drop
        } else if filter.needsRequest {
            decisions[record.id] = .undecided(held: [])
            return decision(for: record, event: event)
        } else {
            first = .keep
            connectionsKept += 1
        }
        decisions[record.id] = first
        return first
    }

    /// An event of a kept connection: shown when it passes, otherwise only observed. With a
    /// filter on events, a connection's context lines wait for its first matching event.
    private func deliver(_ event: TimelineEvent) {
        if filter.context > 0, searches, case .message(let record) = event.kind, let id = event.connection?.id,
            inStreams(event), inWindow(event.time), passesAllButSearch(record) {
            let key = ContextKey(connection: id, stream: event.stream)
            if matchesSearch(record) {
                // The messages before it that do not take the output back in time, then it.
                for (arena, kept) in before.removeValue(forKey: key) ?? [] {
                    arena.lend(kept) { earlier in
                        if let time = earlier.time, let last = lastShownTime, time < last { return sink.observe(earlier) }
                        show(earlier)
                    }
                }
                afterLeft[key] = filter.context
                return show(matching: event)
            } else if let left = afterLeft[key], left > 0 {
                afterLeft[key] = left - 1
                return show(event)
            } else {
                var arena = EventArena()
                let kept = arena.keep(event)
                before[key, default: []].append((arena, kept))
                if before[key]!.count > filter.context { before[key]!.removeFirst() }
                return sink.observe(event)
            }
        }
        if filter.context > 0, case .connectionClosed = event.kind, let id = event.connection?.id {
            before = before.filter { $0.key.connection != id }
            afterLeft = afterLeft.filter { $0.key.connection != id }
        }
        guard keeps(event) else { return sink.observe(event) }
        show(matching: event)
    }

    /// An event that passed the filter: shown, or held as context until its connection's first
    /// match (`awaitingMatch`).
    private func show(matching event: TimelineEvent) {
        let matches: Bool
        switch event.kind {
        case .connectionOpened, .connectionClosed, .streamClosed, .captureStarted: matches = false
        // Under --stream, the connection's own events are context, not matches.
        case _ where !filter.streams.isEmpty && event.stream == nil: matches = false
        // Issues are shown along, but match only when asked for (--type issues).
        case .issue: matches = filter.kinds.contains(.issues)
        default: matches = true
        }
        guard filter.selectsEvents, sink.writesContextLines, let id = event.connection?.id else {
            if matches { eventsKept += 1 }
            return receiveShown(event)
        }
        if matches {
            eventsKept += 1
            if let held = awaitingMatch.removeValue(forKey: id) { held.forEach(receiveShown) }
            return receiveShown(event)
        }
        if case .connectionOpened = event.kind { return awaitingMatch[id] = [event] }
        guard var held = awaitingMatch[id] else { return receiveShown(event) }
        if case .connectionClosed = event.kind {
            // Nothing of it matched: none of its lines is shown.
            awaitingMatch[id] = nil
            return
        }
        if held.count < Self.maxHeldEvents { held.append(event) }
        awaitingMatch[id] = held
    }

    /// A context message (`--context`): shown, after the connection's context lines if they wait.
    private func show(_ event: TimelineEvent) {
        if let id = event.connection?.id, let held = awaitingMatch.removeValue(forKey: id) { held.forEach(receiveShown) }
        receiveShown(event)
    }

    private func receiveShown(_ event: TimelineEvent) {
        if let time = event.time { lastShownTime = max(lastShownTime ?? time, time) }
        sink.receive(event)
    }

    /// Whether an event of a kept connection passes `--dir`, `--type`, `--messages`, `--grep`,
    /// `--from` and `--to`.
    private func keeps(_ event: TimelineEvent) -> Bool {
        guard inStreams(event) else { return false }
        switch event.kind {
        case .connectionOpened, .connectionClosed, .streamClosed, .captureStarted:
            return true
        default:
            guard inWindow(event.time) else { return false }
        }
        switch event.kind {
        case .connectionOpened, .connectionClosed, .streamClosed:
            return true
        case .frame(let frame):
            // --messages keeps control frames when they are asked for (--type control, --closes).
            let close = frame.header.opcode == .close && filter.closeFrames
            let control = (frame.header.opcode.rawValue >= 8 && filter.kinds.contains(.control)) || close
            if (filter.messagesOnly && !control) || (searches && !close) || filter.selectsApplications { return false }
            return passes(frame.direction) && (close || passes(kind: Self.kind(of: frame.header.opcode)))
        case .message(let record):
            guard passesAllButSearch(record) else { return false }
            return !searches || matchesSearch(record)
        case .httpRequest:
            return passes(.clientToServer) && passes(kind: .handshake) && !searches && !filter.selectsApplications
        case .httpResponse:
            return passes(.serverToClient) && passes(kind: .handshake) && !searches && !filter.selectsApplications
        case .httpExchange, .upgrade, .upgradeAnswerBody, .tls:
            return passes(kind: .handshake) && !searches && !filter.selectsApplications
        case .application(let message):
            // Application messages ride data messages: they go with text and binary.
            return passes(message.direction) && !searches && passes(kind: nil) && filter.matches(message)
        case .issue(let issue):
            return (issue.direction.map(passes) ?? true) && passes(kind: .issues)
        case .captureStarted:
            return true
        }
    }

    /// `--stream`: events of other streams are not shown (the connection's own are).
    private func inStreams(_ event: TimelineEvent) -> Bool {
        filter.streams.isEmpty || event.stream.map { filter.streams.contains($0.rawValue) } ?? true
    }

    private func passesAllButSearch(_ record: MessageRecord) -> Bool {
        !filter.selectsApplications && passes(record.direction) && passes(kind: record.message.opcode == .text ? .text : .binary)
    }

    /// `--grep` over a text message, `--grep-bytes` over a binary one.
    private func matchesSearch(_ record: MessageRecord) -> Bool {
        let message = record.message
        if let pattern, PayloadText.isText(record), pattern.matches(String(decoding: message.payload, as: UTF8.self)) {
            return true
        }
        guard let bytesPattern, message.opcode == .binary, message.isDecoded else { return false }
        return bytesPattern.occurs(in: message.payload)
    }

    /// Inside `--from`/`--to` (an event without a time is never cut by them).
    private func inWindow(_ time: CaptureTimestamp?) -> Bool {
        guard let window, let time else { return true }
        let nanoseconds = time.nanoseconds(since: .zero)
        return nanoseconds >= window.lower && nanoseconds <= window.upper
    }

    private func passes(_ direction: StreamDirection) -> Bool {
        filter.direction.map { $0 == direction } ?? true
    }

    private func passes(kind: DisplayFilter.EventKind?) -> Bool {
        guard !filter.kinds.isEmpty else { return true }
        guard let kind else { return filter.kinds.contains(.text) || filter.kinds.contains(.binary) }
        return filter.kinds.contains(kind)
    }

    /// Continuation frames have no kind of their own (nil): they go with text and binary.
    private static func kind(of opcode: WebSocketOpcode) -> DisplayFilter.EventKind? {
        switch opcode {
        case .text: .text
        case .binary: .binary
        case .continuation: nil
        default: opcode.rawValue >= 8 ? .control : .binary
        }
    }
}

/// Where a run of bytes occurs in a payload (`--grep-bytes`): Knuth-Morris-Pratt, so the work is
/// linear in the payload whatever it and the needle hold.
struct ByteSearch: Sendable {
    private let needle: [UInt8]
    /// For each prefix of the needle, the length of its longest proper prefix that is also its suffix.
    private let fallback: [Int]

    init(_ needle: [UInt8]) {
        self.needle = needle
        var fallback = [Int](repeating: 0, count: needle.count)
        var length = 0
        for index in needle.indices.dropFirst() {
            while length > 0, needle[index] != needle[length] { length = fallback[length - 1] }
            if needle[index] == needle[length] { length += 1 }
            fallback[index] = length
        }
        self.fallback = fallback
    }

    func occurs(in haystack: UnsafeRawBufferPointer) -> Bool {
        guard !needle.isEmpty else { return true }
        var matched = 0
        for byte in haystack {
            while matched > 0, byte != needle[matched] { matched = fallback[matched - 1] }
            if byte == needle[matched] { matched += 1 }
            if matched == needle.count { return true }
        }
        return false
    }
}
