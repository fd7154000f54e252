import WSTap
import WSTapCore

/// Sizes counted in buckets: exact below 1 KiB, then 64 buckets per power of two (each bucket
/// within 1.6% of its sizes), so percentiles cost a few kilobytes however many values there are.
public struct SizeHistogram: Sendable, Equatable {
    private var counts: [UInt32: UInt64] = [:]
    public private(set) var count: UInt64 = 0
    public private(set) var minimum: UInt64?
    public private(set) var maximum: UInt64?

    public init() {}

    private static let exactBelow: UInt64 = 1024

    private static func bucket(_ value: UInt64) -> UInt32 {
        guard value >= exactBelow else { return UInt32(value) }
        let exponent = 63 - value.leadingZeroBitCount  // 10 or more
        let step = UInt64(value >> (exponent - 6)) & 63
        return UInt32(exactBelow) + UInt32(exponent - 10) * 64 + UInt32(step)
    }

    /// The smallest size in a bucket.
    private static func lowerBound(_ bucket: UInt32) -> UInt64 {
        guard UInt64(bucket) >= exactBelow else { return UInt64(bucket) }
        let offset = bucket - UInt32(exactBelow)
        let exponent = Int(offset / 64) + 10
        return (64 + UInt64(offset % 64)) << (exponent - 6)
    }

    public mutating func add(_ value: UInt64) {
        counts[Self.bucket(value), default: 0] &+= 1
        count &+= 1
        minimum = Swift.min(minimum ?? value, value)
        maximum = Swift.max(maximum ?? value, value)
    }

    public mutating func add(_ other: SizeHistogram) {
        counts.merge(other.counts, uniquingKeysWith: &+)
        count &+= other.count
        if let low = other.minimum { minimum = Swift.min(minimum ?? low, low) }
        if let high = other.maximum { maximum = Swift.max(maximum ?? high, high) }
    }

    /// The size at or below which `fraction` of the values lie (nearest rank); nil when empty.
    /// Exact below 1 KiB and for the largest value; otherwise its bucket's smallest size.
    public func percentile(_ fraction: Double) -> UInt64? {
        guard count > 0, let maximum else { return nil }
        let rank = Swift.max(1, UInt64((fraction * Double(count)).rounded(.up)))
        if rank >= count { return maximum }
        var seen: UInt64 = 0
        for bucket in counts.keys.sorted() {
            seen &+= counts[bucket] ?? 0
            if seen >= rank { return Swift.min(Swift.max(Self.lowerBound(bucket), minimum ?? 0), maximum) }
        }
        return maximum
    }
}

/// Round-trip times of pings answered by a pong with the same payload (RFC 6455 §5.5.3), kept
/// exactly up to `maxKept` values.
public struct RoundTripTimes: Sendable, Equatable {
    /// Nanoseconds, as measured.
    public private(set) var values: [Int64] = []
    /// Answered pings past `maxKept` (counted, not used for the median).
    public private(set) var notKept: UInt64 = 0
    public static let maxKept = 65_536

    public init() {}

    public var count: UInt64 { UInt64(values.count) + notKept }

    public mutating func add(_ nanoseconds: Int64) {
        if values.count < Self.maxKept { values.append(nanoseconds) } else { notKept &+= 1 }
    }

    public mutating func add(_ other: RoundTripTimes) {
        for value in other.values { add(value) }
        notKept &+= other.notKept
    }

    /// Smallest, median and largest of the kept values.
    public var minMedianMax: (min: Int64, median: Int64, max: Int64)? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return (sorted[0], sorted[(sorted.count - 1) / 2], sorted[sorted.count - 1])
    }
}

/// What one connection (or, summed, the whole capture) carried, as `wstap stats` shows it.
public struct TrafficStatistics: Sendable, Equatable {
    /// Data messages by direction (client to server first) and kind.
    public var textMessages = DirectionPair<UInt64>(0)
    public var binaryMessages = DirectionPair<UInt64>(0)
    /// Message payload bytes by direction (after decompression).
    public var messageBytes = DirectionPair<UInt64>(0)
    /// Frames by direction and type name (`text`, `binary`, `continuation`, `ping`, `pong`, `close`, ...).
    public var frames: [StreamDirection: [String: UInt64]] = [:]
    public var messageSizes = SizeHistogram()
    /// Close codes sent, by direction (`none` for a close without a code).
    public var closeCodes: [StreamDirection: [String: UInt64]] = [:]
    /// Connections whose first close frame came from the client, and from the server.
    public var closedFirst = DirectionPair<UInt64>(0)
    public var pingRoundTrips = RoundTripTimes()
    /// Pings sent, and pings no pong with the same payload answered.
    public var pings: UInt64 = 0
    public var issuesByCode: [String: UInt64] = [:]
    /// Application messages by protocol and type (`mqtt PUBLISH`).
    public var applicationMessages: [String: UInt64] = [:]
    /// Application round trips by kind (`mqtt PUBLISH→PUBACK`, `jsonrpc request→response`).
    public var applicationRoundTrips: [String: RoundTripTimes] = [:]
    /// WebSocket messages that carried only an application keep-alive (Engine.IO ping/pong, MQTT
    /// PINGREQ/PINGRESP, STOMP heart-beats, GraphQL ping/pong/ka): not counted as data messages.
    public var keepAlives = DirectionPair<UInt64>(0)

    public init() {}

    public var messages: UInt64 { textMessages[0] &+ textMessages[1] &+ binaryMessages[0] &+ binaryMessages[1] }

    public mutating func add(_ other: TrafficStatistics) {
        for index in 0..<2 {
            textMessages[index] &+= other.textMessages[index]
            binaryMessages[index] &+= other.binaryMessages[index]
            messageBytes[index] &+= other.messageBytes[index]
            closedFirst[index] &+= other.closedFirst[index]
            keepAlives[index] &+= other.keepAlives[index]
        }
        applicationMessages.merge(other.applicationMessages, uniquingKeysWith: &+)
        for (kind, times) in other.applicationRoundTrips { applicationRoundTrips[kind, default: RoundTripTimes()].add(times) }
        for (direction, counts) in other.frames { frames[direction, default: [:]].merge(counts, uniquingKeysWith: &+) }
        for (direction, counts) in other.closeCodes { closeCodes[direction, default: [:]].merge(counts, uniquingKeysWith: &+) }
        messageSizes.add(other.messageSizes)
        pingRoundTrips.add(other.pingRoundTrips)
        pings &+= other.pings
        issuesByCode.merge(other.issuesByCode, uniquingKeysWith: &+)
    }
}

/// One connection's line in `wstap stats`.
public struct ConnectionStatistics: Sendable {
    public var record: ConnectionRecord
    /// The last request's Host and target (the Upgrade request's on a WebSocket connection).
    public var host: String?
    public var target: String?
    public var upgrade: UpgradeOutcome?
    public var protocolKind: ConnectionProtocol?
    /// How it ended (set when it did: at the end of the capture at the latest).
    public var ending: ConnectionEnding?
    /// The connection's first and last events.
    public var firstTime: CaptureTimestamp
    public var lastTime: CaptureTimestamp
    /// Times of the first and last data messages (messages/s is taken between them).
    public var firstMessageTime: CaptureTimestamp?
    public var lastMessageTime: CaptureTimestamp?
    public var traffic = TrafficStatistics()

    public var durationNanoseconds: Int64 { max(0, lastTime.nanoseconds(since: firstTime)) }
}

/// Folds the timeline into per-connection and overall statistics (`wstap stats`): a sink that
/// keeps counters, histograms and the pings awaiting their pong, never payloads.
public final class StatisticsCollector: TimelineSink {
    /// Pings awaiting a pong, per connection and direction; the oldest is dropped past this.
    static let maxOutstandingPings = 64

    private struct OpenConnection {
        var statistics: ConnectionStatistics
        /// Pings not answered yet: the direction that sent them, their payload and time.
        var pendingPings: [(direction: StreamDirection, payload: [UInt8], time: CaptureTimestamp)] = []
        var sawClose = false
        /// Whether each direction's last WebSocket message was text (a keep-alive uncounts it).
        var lastMessageWasText = DirectionPair(false)
        /// Application requests not answered yet: direction, key, kind and time (bounded).
        var pendingRequests: [(direction: StreamDirection, key: String, label: String, time: CaptureTimestamp)] = []
    }

    private var open: [UInt64: OpenConnection] = [:]
    public private(set) var connections: [ConnectionStatistics] = []
    /// Issues that belong to no connection.
    public private(set) var captureIssues: [String: UInt64] = [:]
    public private(set) var summary: CaptureSummary?
    /// Per interval, with `--interval` (nil without).
    public private(set) var intervals: IntervalStatistics?
    private let onFinish: (StatisticsCollector) -> Void

    /// `onFinish` is called once, after the last event, with everything collected; with
    /// `intervalNanoseconds`, what happened in each interval is counted too.
    public init(intervalNanoseconds: Int64? = nil, onFinish: @escaping (StatisticsCollector) -> Void = { _ in }) {
        self.onFinish = onFinish
        intervals = intervalNanoseconds.map(IntervalStatistics.init(widthNanoseconds:))
    }

    /// A filtered-out event of a kept connection: its handshake and end still name and judge it;
    /// only the frames and messages a filter keeps are counted.
    public func observe(_ event: TimelineEvent) {
        switch event.kind {
        case .frame, .message, .application, .issue: break
        default: receive(event)
        }
    }

    public func receive(_ event: TimelineEvent) {
        let record = event.connection
        switch event.kind {
        case .captureStarted:
            break
        case .connectionOpened:
            guard let record, let time = event.time else { return }
            open[record.id] = OpenConnection(statistics: ConnectionStatistics(record: record, firstTime: time, lastTime: time))
            intervals?.change(at: time) { $0.opened &+= 1 }
        case .httpRequest(let head):
            update(record, at: event.time) {
                $0.statistics.target = head.target
                $0.statistics.host = head.headers.combinedValue("Host")
            }
        case .upgrade(let exchange):
            update(record, at: event.time) {
                $0.statistics.upgrade = exchange.outcome
                $0.statistics.target = exchange.request.target
                $0.statistics.host = exchange.request.headers.combinedValue("Host")
            }
        case .frame(let frame):
            let time = event.time ?? .zero
            update(record, at: time) { connection in
                let name = frameTypeName(frame.header.opcode)
                connection.statistics.traffic.frames[frame.direction, default: [:]][name, default: 0] &+= 1
                switch frame.header.opcode {
                case .close:
                    let code = frame.close?.code.map { String($0.rawValue) } ?? "none"
                    connection.statistics.traffic.closeCodes[frame.direction, default: [:]][code, default: 0] &+= 1
                    if !connection.sawClose {
                        connection.sawClose = true
                        connection.statistics.traffic.closedFirst[frame.direction] &+= 1
                    }
                case .ping:
                    connection.statistics.traffic.pings &+= 1
                    if connection.pendingPings.count == Self.maxOutstandingPings { connection.pendingPings.removeFirst() }
                    connection.pendingPings.append((frame.direction, Array(frame.payload), time))
                case .pong:
                    // The oldest ping from the other side with the same payload; an unsolicited pong matches none.
                    let answered = connection.pendingPings.firstIndex {
                        $0.direction != frame.direction && $0.payload.elementsEqual(frame.payload)
                    }
                    if let answered {
                        let ping = connection.pendingPings.remove(at: answered)
                        connection.statistics.traffic.pingRoundTrips.add(time.nanoseconds(since: ping.time))
                    }
                default:
                    break
                }
            }
        case .message(let message):
            let time = event.time ?? .zero
            intervals?.change(at: time) {
                $0.messages[message.direction] &+= 1
                $0.bytes[message.direction] &+= UInt64(message.message.payload.count)
            }
            update(record, at: time) { connection in
                let direction = message.direction.rawValue
                connection.lastMessageWasText[direction] = message.message.opcode == .text
                if message.message.opcode == .text {
                    connection.statistics.traffic.textMessages[direction] &+= 1
                } else {
                    connection.statistics.traffic.binaryMessages[direction] &+= 1
                }
                let size = UInt64(message.message.payload.count)
                connection.statistics.traffic.messageBytes[direction] &+= size
                connection.statistics.traffic.messageSizes.add(size)
                if connection.statistics.firstMessageTime == nil { connection.statistics.firstMessageTime = time }
                connection.statistics.lastMessageTime = time
            }
        case .issue(let issue):
            guard let record else {
                captureIssues[issue.code, default: 0] &+= 1
                return
            }
            update(record, at: issue.time) { $0.statistics.traffic.issuesByCode[issue.code, default: 0] &+= 1 }
        case .connectionClosed(let end):
            guard let record else { return }
            intervals?.change(at: end.time) { $0.closed &+= 1 }
            update(record, at: end.time) {
                $0.statistics.protocolKind = end.protocolKind
                $0.statistics.ending = end.ending
            }
            if let connection = open.removeValue(forKey: record.id) { connections.append(connection.statistics) }
        case .application(let message):
            let time = event.time ?? .zero
            update(record, at: time) { connection in
                var traffic = connection.statistics.traffic
                traffic.applicationMessages["\(message.protocolName) \(message.type)", default: 0] &+= 1
                let direction = message.direction.rawValue
                // The WebSocket message was only this keep-alive: not data.
                let counted: WritableKeyPath<TrafficStatistics, DirectionPair<UInt64>> =
                    connection.lastMessageWasText[direction] ? \.textMessages : \.binaryMessages
                if ApplicationExchange.isKeepAlive(message), message.messages.count == 1, traffic[keyPath: counted][direction] > 0 {
                    traffic[keyPath: counted][direction] -= 1
                    traffic.keepAlives[direction] &+= 1
                }
                switch ApplicationExchange.role(of: message) {
                case .opens(let key, let label)?:
                    if connection.pendingRequests.count == Self.maxOutstandingPings { connection.pendingRequests.removeFirst() }
                    connection.pendingRequests.append((message.direction, key, label, time))
                case .closes(let key)?:
                    if let found = connection.pendingRequests.firstIndex(where: { $0.direction != message.direction && $0.key == key }) {
                        let request = connection.pendingRequests.remove(at: found)
                        traffic.applicationRoundTrips[request.label, default: RoundTripTimes()].add(time.nanoseconds(since: request.time))
                    }
                case nil:
                    break
                }
                connection.statistics.traffic = traffic
            }
        case .httpResponse, .httpExchange, .upgradeAnswerBody, .tls, .streamClosed:
            update(event.connection, at: event.time) { _ in }
        }
    }

    private func update(_ record: ConnectionRecord?, at time: CaptureTimestamp?, _ change: (inout OpenConnection) -> Void) {
        guard let record, var connection = open.removeValue(forKey: record.id) else { return }
        if let time { connection.statistics.lastTime = max(connection.statistics.lastTime, time) }
        change(&connection)
        open[record.id] = connection
    }

    public func finish(_ summary: CaptureSummary) {
        // Connections still open (none after a whole file: each is closed at its end).
        for (_, connection) in open.sorted(by: { $0.key < $1.key }) { connections.append(connection.statistics) }
        open.removeAll()
        connections.sort { $0.record.id < $1.record.id }
        self.summary = summary
        onFinish(self)
    }

    /// Every connection's traffic summed, with the capture's own issues.
    public var overall: TrafficStatistics {
        var total = TrafficStatistics()
        for connection in connections { total.add(connection.traffic) }
        total.issuesByCode.merge(captureIssues, uniquingKeysWith: &+)
        return total
    }
}

/// The name a frame type has in every output (`text`, `binary`, `continuation`, then the
/// opcode's own name: `close`, `ping`, `pong`, reserved ones).
func frameTypeName(_ opcode: WebSocketOpcode) -> String {
    switch opcode {
    case .text: "text"
    case .binary: "binary"
    case .continuation: "continuation"
    default: opcode.description
    }
}
