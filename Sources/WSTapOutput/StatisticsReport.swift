import WSTap
import WSTapCore

/// Writes what a `StatisticsCollector` gathered: a table for people, JSON for scripts
/// (docs/stats-format.md).
public enum StatisticsReport {
    /// Percentiles of message sizes every output gives.
    static let percentiles: [(name: String, fraction: Double)] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)]

    // MARK: JSON

    /// The statistics as one JSON document (`format: "wstap-stats"`, `format_version` 1).
    public static func json(_ collector: StatisticsCollector) -> String {
        let out = OutputBuffer()
        out.raw("{\"format\":\"wstap-stats\",\"format_version\":1,\"capture\":{")
        let summary = collector.summary ?? CaptureSummary()
        out.key("packets"); out.number(summary.packets)
        out.comma(); out.key("first_packet_time"); out.time(summary.firstPacketTime)
        out.comma(); out.key("last_packet_time"); out.time(summary.lastPacketTime)
        out.comma(); out.key("duration_s"); seconds(captureDuration(summary), into: out)
        out.comma(); out.key("connections"); out.number(UInt64(collector.connections.count))
        out.comma(); out.key("connections_by_protocol"); out.counters(summary.connectionsByProtocol)
        out.comma(); out.key("upgrades_by_outcome"); out.counters(summary.upgradesByOutcome)
        out.comma(); out.key("outcomes"); out.counters(summary.connectionsByOutcome)
        out.raw("},\"overall\":{")
        trafficFields(collector.overall, durationNanoseconds: captureDuration(summary), into: out)
        out.raw("},\"connections\":[")
        for (index, connection) in collector.connections.enumerated() {
            out.raw(index == 0 ? "\n{" : ",\n{")
            let record = connection.record
            out.key("id"); out.number(record.id)
            out.comma(); out.key("client"); out.endpoint(record.client)
            out.comma(); out.key("server"); out.endpoint(record.server)
            out.comma(); out.key("host"); out.string(connection.host)
            out.comma(); out.key("target"); out.string(connection.target)
            out.comma(); out.key("protocol"); out.string(connection.protocolKind?.rawValue)
            out.comma(); out.key("upgrade"); out.string(connection.upgrade?.rawValue)
            out.comma()
            if let ending = connection.ending {
                out.endingFields(ending, start: connection.record.startTime, end: connection.lastTime)
            } else {
                out.raw("\"outcome\":null")
            }
            out.comma(); out.key("first_time"); out.time(connection.firstTime)
            out.comma(); out.key("last_time"); out.time(connection.lastTime)
            out.comma(); out.key("duration_s"); seconds(connection.durationNanoseconds, into: out)
            out.comma()
            trafficFields(connection.traffic, durationNanoseconds: messageSpan(connection), into: out)
            out.append(UInt8(ascii: "}"))
        }
        out.raw(collector.connections.isEmpty ? "]" : "\n]")
        if let intervals = collector.intervals {
            out.raw(",\"interval_s\":"); seconds(intervals.width, into: out)
            out.raw(",\"intervals\":[")
            for (index, interval) in intervals.intervals.enumerated() {
                out.raw(index == 0 ? "\n{" : ",\n{")
                out.key("start_s"); seconds(Int64(index) * intervals.width, into: out)
                out.raw(",\"messages\":{\"c2s\":"); out.number(interval.messages.clientToServer)
                out.raw(",\"s2c\":"); out.number(interval.messages.serverToClient)
                out.raw("},\"bytes\":{\"c2s\":"); out.number(interval.bytes.clientToServer)
                out.raw(",\"s2c\":"); out.number(interval.bytes.serverToClient)
                out.raw("},\"opened\":"); out.number(interval.opened)
                out.raw(",\"closed\":"); out.number(interval.closed); out.raw("}")
            }
            out.raw(intervals.intervals.isEmpty ? "]" : "\n]")
        }
        out.raw("}\n")
        return out.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    private static func trafficFields(_ traffic: TrafficStatistics, durationNanoseconds: Int64, into out: OutputBuffer) {
        out.key("messages"); out.number(traffic.messages)
        out.comma(); out.key("messages_per_s")
        if let rate = rate(traffic.messages, over: durationNanoseconds) { decimal(rate, into: out) } else { out.raw("null") }
        for direction in StreamDirection.allCases {
            out.comma(); out.string(direction.label); out.raw(":{")
            out.key("text"); out.number(traffic.textMessages[direction])
            out.comma(); out.key("binary"); out.number(traffic.binaryMessages[direction])
            out.comma(); out.key("bytes"); out.number(traffic.messageBytes[direction])
            out.comma(); out.key("frames"); out.counters(traffic.frames[direction] ?? [:])
            out.comma(); out.key("close_codes"); out.counters(traffic.closeCodes[direction] ?? [:])
            out.append(UInt8(ascii: "}"))
        }
        out.comma(); out.key("message_size")
        let sizes = traffic.messageSizes
        if let minimum = sizes.minimum, let maximum = sizes.maximum {
            out.raw("{"); out.key("min"); out.number(minimum)
            for (name, fraction) in percentiles {
                out.comma(); out.string(name); out.raw(":"); out.number(sizes.percentile(fraction) ?? 0)
            }
            out.comma(); out.key("max"); out.number(maximum); out.raw("}")
        } else {
            out.raw("null")
        }
        out.comma(); out.key("closed_first"); out.raw("{")
        out.key("client"); out.number(traffic.closedFirst[0]); out.comma(); out.key("server"); out.number(traffic.closedFirst[1])
        out.raw("}")
        out.comma(); out.key("pings"); out.number(traffic.pings)
        out.comma(); out.key("ping_rtt_ms")
        if let rtt = traffic.pingRoundTrips.minMedianMax {
            out.raw("{"); out.key("count"); out.number(traffic.pingRoundTrips.count)
            out.comma(); out.key("min"); milliseconds(rtt.min, into: out)
            out.comma(); out.key("median"); milliseconds(rtt.median, into: out)
            out.comma(); out.key("max"); milliseconds(rtt.max, into: out)
            out.raw("}")
        } else {
            out.raw("null")
        }
        out.comma(); out.key("issues"); out.counters(traffic.issuesByCode)
        if !traffic.applicationMessages.isEmpty {
            out.comma(); out.key("app_messages"); out.counters(traffic.applicationMessages)
            out.comma(); out.key("keep_alives"); out.raw("{")
            out.key("client"); out.number(traffic.keepAlives[0]); out.comma(); out.key("server"); out.number(traffic.keepAlives[1])
            out.raw("}")
            out.comma(); out.key("app_rtt_ms"); out.raw("{")
            for (index, (kind, times)) in traffic.applicationRoundTrips.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.comma() }
                out.string(kind); out.raw(":{"); out.key("count"); out.number(times.count)
                if let rtt = times.minMedianMax {
                    out.comma(); out.key("min"); milliseconds(rtt.min, into: out)
                    out.comma(); out.key("median"); milliseconds(rtt.median, into: out)
                    out.comma(); out.key("max"); milliseconds(rtt.max, into: out)
                }
                out.raw("}")
            }
            out.raw("}")
        }
    }

    // MARK: table

    /// The widest a table row is by default: a terminal of 100 columns (`--wide` shows every column).
    static let narrowWidth = 100

    /// One row per connection, then the capture's totals and what needs a closer look. By default
    /// the columns an SRE reads first (who, how it ended, how much, how it closed), fitted to
    /// `narrowWidth`; `wide` adds host and target, bytes, rates, sizes and ping round trips.
    public static func table(_ collector: StatisticsCollector, wide: Bool = false) -> String {
        let summary = collector.summary ?? CaptureSummary()
        let heading = wide
            ? ["conn", "client", "server", "host / target", "protocol", "outcome", "duration s", "msgs →/←", "bytes →/←",
               "msg/s", "size p50/p99/max", "close →/← (first)", "ping rtt ms min/med/max", "issues"]
            : ["conn", "client", "server", "outcome", "dur s", "msgs →/←", "close →/← (first)", "issues"]
        var rows: [[String]] = [heading]
        for connection in collector.connections {
            let traffic = connection.traffic
            let cells = trafficCells(traffic, durationNanoseconds: messageSpan(connection))
            var row = ["#\(connection.record.id)", connection.record.client.description, connection.record.server.description]
            if wide {
                let place = [connection.host, connection.target].compactMap { $0 }.joined(separator: " ")
                row.append(place.isEmpty ? "-" : terminalSafe(place))
                var kind = connection.protocolKind?.rawValue ?? "-"
                if let upgrade = connection.upgrade, upgrade != .upgraded { kind += " (\(upgrade.rawValue))" }
                row.append(kind)
            }
            row.append(connection.ending?.outcome.rawValue ?? "-")
            row.append(fixed(Double(connection.durationNanoseconds) / 1e9, decimals: 3))
            row += wide ? cells.all : [cells.messages, cells.close, cells.issues]
            rows.append(row)
        }
        let overall = collector.overall
        let count = collector.connections.count == 1 ? "1 connection" : "\(collector.connections.count) connections"
        let totalCells = trafficCells(overall, durationNanoseconds: captureDuration(summary))
        let duration = fixed(Double(captureDuration(summary)) / 1e9, decimals: 3)
        rows.append(wide
            ? ["all", count, "", "", "", "", duration] + totalCells.all
            : ["all", count, "", "", duration, totalCells.messages, totalCells.close, totalCells.issues])

        var text = "capture: \(summary.packets) packets"
        if let first = summary.firstPacketTime { text += ", starts \(utcDateTime(first)) UTC" }
        text += ", \(fixed(Double(captureDuration(summary)) / 1e9, decimals: 3)) s\n"
        text += layout(rows, leftAligned: wide ? [0, 1, 2, 3, 4, 5] : [0, 1, 2, 3], maxWidth: wide ? nil : narrowWidth)
        if !summary.connectionsByOutcome.isEmpty {
            text += "outcomes: " + summary.connectionsByOutcome.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        }
        if !overall.issuesByCode.isEmpty {
            text += "issues by code: " + overall.issuesByCode.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
        }
        var closes: [String: UInt64] = [:]
        for direction in StreamDirection.allCases { closes.merge(overall.closeCodes[direction] ?? [:], uniquingKeysWith: &+) }
        if !closes.isEmpty {
            text += "close codes: " + mostFrequent(closes, shown: maxCloseCodesShown)
            text += "; closed first by the client \(overall.closedFirst[0]), by the server \(overall.closedFirst[1])\n"
        }
        if !overall.applicationMessages.isEmpty {
            text += "application messages: " + mostFrequent(overall.applicationMessages, shown: maxCloseCodesShown, width: 40)
            if overall.keepAlives[0] > 0 || overall.keepAlives[1] > 0 {
                text += "; keep-alives (not data) →\(overall.keepAlives[0]) ←\(overall.keepAlives[1])"
            }
            text += "\n"
            for (kind, times) in overall.applicationRoundTrips.sorted(by: { $0.key < $1.key }) {
                guard let rtt = times.minMedianMax else { continue }
                let values = [rtt.min, rtt.median, rtt.max].map { fixed(Double($0) / 1e6, decimals: 3) }.joined(separator: "/")
                text += "  \(terminalSafe(kind)): \(times.count) round trips, ms min/med/max \(values)\n"
            }
        }
        if let intervals = collector.intervals { text += intervalTable(intervals) }
        return text
    }

    /// One row per interval: messages and bytes each way, connections opened and closed.
    private static func intervalTable(_ intervals: IntervalStatistics) -> String {
        let width = Double(intervals.width) / 1e9
        var rows: [[String]] = [["interval s", "msgs →", "msgs ←", "bytes →", "bytes ←", "opened", "closed"]]
        for (index, interval) in intervals.intervals.enumerated() {
            let from = fixed(Double(index) * width, decimals: 3), to = fixed(Double(index + 1) * width, decimals: 3)
            rows.append(["\(from)-\(to)", String(interval.messages.clientToServer), String(interval.messages.serverToClient),
                         String(interval.bytes.clientToServer), String(interval.bytes.serverToClient),
                         String(interval.opened), String(interval.closed)])
        }
        return "\nper interval of \(fixed(width, decimals: 3)) s:\n" + layout(rows, leftAligned: [0], maxWidth: nil)
    }

    /// Close codes listed before the rest are counted as "N others".
    static let maxCloseCodesShown = 8

    /// `code ×count` for the `shown` most frequent (ties by code), then how many others: bounded
    /// whatever codes a capture holds.
    static func mostFrequent(_ counts: [String: UInt64], shown: Int, width: Int = 16) -> String {
        let sorted = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        var parts = sorted.prefix(shown).map { "\(terminalSafe(String($0.key.prefix(width)))) ×\($0.value)" }
        if sorted.count > shown {
            let rest = sorted.dropFirst(shown).reduce(UInt64(0)) { $0 &+ $1.value }
            parts.append("\(sorted.count - shown) others ×\(rest)")
        }
        return parts.joined(separator: ", ")
    }

    /// A connection's (or the capture's) traffic as table cells: all of them for `--wide`, and the
    /// ones the narrow table shows.
    private struct TrafficCells {
        var all: [String]
        var messages: String { all[0] }
        var close: String { all[4] }
        var issues: String { all[6] }
    }

    private static func trafficCells(_ traffic: TrafficStatistics, durationNanoseconds: Int64) -> TrafficCells {
        let messages = "\(traffic.textMessages[0] &+ traffic.binaryMessages[0])/\(traffic.textMessages[1] &+ traffic.binaryMessages[1])"
        let bytes = "\(traffic.messageBytes[0])/\(traffic.messageBytes[1])"
        let perSecond = rate(traffic.messages, over: durationNanoseconds).map { fixed($0, decimals: 1) } ?? "-"
        let sizes = traffic.messageSizes
        let sizeCell = sizes.count == 0 ? "-" : "\(sizes.percentile(0.5) ?? 0)/\(sizes.percentile(0.99) ?? 0)/\(sizes.maximum ?? 0)"
        var close = "-"
        let codes = StreamDirection.allCases.map { direction in
            (traffic.closeCodes[direction] ?? [:]).sorted { $0.key < $1.key }.map { $0.value > 1 ? "\($0.key)×\($0.value)" : $0.key }
                .joined(separator: ",")
        }
        if codes.contains(where: { !$0.isEmpty }) {
            close = codes.map { $0.isEmpty ? "-" : $0 }.joined(separator: "/")
            if traffic.closedFirst[0] > 0 || traffic.closedFirst[1] > 0 {
                close += traffic.closedFirst[1] == 0 ? " (client)" : traffic.closedFirst[0] == 0 ? " (server)"
                    : " (client \(traffic.closedFirst[0]), server \(traffic.closedFirst[1]))"
            }
        }
        var rtt = traffic.pings == 0 ? "-" : "no pong"
        if let times = traffic.pingRoundTrips.minMedianMax {
            rtt = [times.min, times.median, times.max].map { fixed(Double($0) / 1e6, decimals: 3) }.joined(separator: "/")
        }
        let issues = traffic.issuesByCode.values.reduce(0, &+)
        return TrafficCells(all: [messages, bytes, perSecond, sizeCell, close, rtt, issues == 0 ? "-" : String(issues)])
    }

    /// Columns padded to their widest cell (the first row is the heading; numbers align right);
    /// cells past 40 characters are cut with `…`. With `maxWidth`, the widest columns are cut
    /// further (never below 8 characters) until a row fits.
    private static func layout(_ rows: [[String]], leftAligned: Set<Int>, maxWidth: Int?) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], min(cell.count, 40)) } }
        if let maxWidth {
            while widths.reduce(0, +) + 2 * (columns - 1) > maxWidth, let widest = widths.indices.max(by: { widths[$0] < widths[$1] }),
                  widths[widest] > 8 {
                widths[widest] -= 1
            }
        }
        var text = ""
        for row in rows {
            var line = ""
            for (index, full) in row.enumerated() {
                let cell = full.count > widths[index] ? String(full.prefix(widths[index] - 1)) + "…" : full
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                if index > 0 { line += "  " }
                line += leftAligned.contains(index) ? cell + padding : padding + cell
            }
            while line.hasSuffix(" ") { line.removeLast() }
            text += line + "\n"
        }
        return text
    }

    // MARK: numbers

    private static func captureDuration(_ summary: CaptureSummary) -> Int64 {
        guard let first = summary.firstPacketTime, let last = summary.lastPacketTime else { return 0 }
        return max(0, last.nanoseconds(since: first))
    }

    /// Messages per second are taken from a connection's first to its last message.
    private static func messageSpan(_ connection: ConnectionStatistics) -> Int64 {
        guard let first = connection.firstMessageTime, let last = connection.lastMessageTime else { return 0 }
        return max(0, last.nanoseconds(since: first))
    }

    /// Events per second; nil over less than a millisecond (one burst has no meaningful rate).
    private static func rate(_ count: UInt64, over nanoseconds: Int64) -> Double? {
        guard nanoseconds >= 1_000_000, count > 0 else { return nil }
        return Double(count) / (Double(nanoseconds) / 1e9)
    }

    /// `value` with `decimals` digits after the point, without Foundation's formatting.
    static func fixed(_ value: Double, decimals: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (value * scale).rounded()
        guard scaled.isFinite, abs(scaled) < 9e17 else { return String(value) }
        let whole = Int64(scaled)
        let magnitude = whole.magnitude
        let integerPart = magnitude / UInt64(scale)
        var text = (whole < 0 ? "-" : "") + String(integerPart)
        if decimals > 0 {
            let fraction = String(magnitude % UInt64(scale))
            text += "." + String(repeating: "0", count: decimals - fraction.count) + fraction
        }
        return text
    }

    private static func decimal(_ value: Double, into out: OutputBuffer) { out.text(fixed(value, decimals: 3)) }

    private static func seconds(_ nanoseconds: Int64, into out: OutputBuffer) { out.text(fixed(Double(nanoseconds) / 1e9, decimals: 6)) }

    private static func milliseconds(_ nanoseconds: Int64, into out: OutputBuffer) { out.text(fixed(Double(nanoseconds) / 1e6, decimals: 3)) }
}
