import WSTap
import WSTapCore

/// Counts of events over time in at most `buckets` buckets: when an event falls past the last
/// bucket, neighbours merge and the width doubles. Exact counts, bounded memory, whatever the
/// capture's length.
struct TimeHistogram {
    static let buckets = 96
    /// Nanoseconds since the epoch where the first bucket starts.
    let origin: Int64
    private(set) var width: Int64 = 1_000_000
    private(set) var counts = [UInt32](repeating: 0, count: buckets)

    init(origin: CaptureTimestamp) { self.origin = Self.nanoseconds(origin) }

    static func nanoseconds(_ time: CaptureTimestamp) -> Int64 {
        time.seconds &* 1_000_000_000 &+ Int64(time.nanoseconds)
    }

    mutating func add(_ time: CaptureTimestamp) {
        let offset = max(0, Self.nanoseconds(time) &- origin)
        while offset / width >= Int64(Self.buckets) {
            for index in 0..<(Self.buckets / 2) { counts[index] = counts[2 * index] &+ counts[2 * index + 1] }
            for index in (Self.buckets / 2)..<Self.buckets { counts[index] = 0 }
            width = width.multipliedReportingOverflow(by: 2).overflow ? width : width * 2
        }
        counts[Int(offset / width)] &+= 1
    }

    /// Each non-empty bucket: its start and end (nanoseconds since the epoch) and its count.
    var filled: [(start: Int64, end: Int64, count: UInt32)] {
        counts.enumerated().compactMap { index, count in
            count == 0 ? nil : (origin &+ Int64(index) &* width, origin &+ Int64(index + 1) &* width, count)
        }
    }
}

/// What the report's timeline draws of one connection (or of one of its HTTP/2 streams): its life, its messages each way, its
/// Close frames and issues, and how it ended.
struct TimelineLane {
    var id: UInt64
    /// The HTTP/2 stream the lane draws; nil for the connection's own lane.
    var stream: UInt32? = nil
    var start: CaptureTimestamp
    var end: CaptureTimestamp?
    /// `#3 client → server target`: escaped when written.
    var label: String
    var outcome: ConnectionOutcome?
    var outcomeWords: String
    var messages = DirectionPair<TimeHistogram?>(nil)
    var closes: [(StreamDirection, CaptureTimestamp)] = []
    var issues: [CaptureTimestamp] = []
    static let maxIssueMarks = 8

    mutating func message(_ direction: StreamDirection, at time: CaptureTimestamp) {
        if messages[direction] == nil { messages[direction] = TimeHistogram(origin: start) }
        messages[direction]?.add(time)
    }

    mutating func issue(at time: CaptureTimestamp?) {
        guard let time, issues.count < Self.maxIssueMarks else { return }
        issues.append(time)
    }

    /// The lane's classes: the outcome's style (`HTMLReportExporter.style`) and `outcome-NAME`.
    var classes: String {
        "lane \(HTMLReportExporter.style(outcome)) outcome-\(outcome?.rawValue ?? "open")"
    }
}

/// The report's pictures: one lane per connection over the capture's time (its life as a bar
/// coloured by outcome, marks for messages each way, Close frames and issues; a link to its
/// section), and the message rate each way. Inline SVG written by wstap: no script draws it,
/// and the only captured bytes in it are escaped text in `<title>`s.
enum HTMLTimeline {
    /// Lanes drawn at most; the rest are counted under the picture.
    static let maxLanes = 250
    static let width = 1000.0
    static let left = 56.0
    static let laneHeight = 12.0

    static func write(
        lanes: [TimelineLane], rates: DirectionPair<TimeHistogram?>, start: CaptureTimestamp?, end: CaptureTimestamp?,
        into page: OutputBuffer
    ) {
        guard let start, let end, !lanes.isEmpty else { return }
        let origin = TimeHistogram.nanoseconds(start)
        let span = Double(max(1_000_000, TimeHistogram.nanoseconds(end) &- origin))
        func x(_ nanoseconds: Int64) -> Double { left + (width - left - 4) * min(1, max(0, Double(nanoseconds &- origin) / span)) }
        func x(_ time: CaptureTimestamp) -> Double { x(TimeHistogram.nanoseconds(time)) }
        let shown = lanes.prefix(maxLanes)
        let height = 24 + Double(shown.count) * laneHeight
        page.raw("<h2>Timeline</h2>\n<p class=\"meta\">One lane per connection over the capture, and under an HTTP/2 connection one per stream (0 s = ")
        page.text(utcDateTime(start)); page.raw(" UTC, ")
        page.text(StatisticsReport.fixed(span / 1e9, decimals: 3))
        page.raw(" s): its life coloured by how it ended (red: failed, green: closed cleanly, amber: open at the end), ")
        page.raw("<span class=\"c2s\">messages sent</span> above, <span class=\"s2c\">received</span> below, Close frames black, issues as dots. Hover for details, click to open.</p>\n")
        page.raw("<svg class=\"timeline\" viewBox=\"0 0 "); number(width, page); page.raw(" "); number(height, page)
        page.raw("\" width=\"100%\" role=\"img\">\n")
        axis(span: span, y: height, into: page)
        for (row, lane) in shown.enumerated() {
            let y = 20 + Double(row) * laneHeight
            page.raw("<a href=\"#conn-"); page.number(lane.id); page.raw("\"><g class=\""); page.text(lane.classes)
            if let stream = lane.stream { page.raw("\" data-stream=\""); page.number(UInt64(stream)) }
            page.raw("\" data-conn=\""); page.number(lane.id); page.raw("\"><title>")
            HTMLText.write("\(lane.label): \(lane.outcomeWords)", into: page, limit: 300)
            page.raw("</title><text x=\"2\" y=\""); number(y + 8, page)
            if let stream = lane.stream {
                page.raw("\">  s"); page.number(UInt64(stream)); page.raw("</text>")
            } else {
                page.raw("\">#"); page.number(lane.id); page.raw("</text>")
            }
            let from = x(lane.start), to = max(from + 1, lane.end.map(x) ?? (width - 4))
            rect("life", x: from, y: y + 2, width: to - from, height: laneHeight - 4, into: page)
            for direction in StreamDirection.allCases {
                for bucket in lane.messages[direction]?.filled ?? [] {
                    let left = x(bucket.start), right = max(left + 1, x(bucket.end))
                    rect(direction == .clientToServer ? "c2s" : "s2c", x: left, y: direction == .clientToServer ? y : y + laneHeight - 3,
                         width: right - left, height: 3, into: page)
                }
            }
            for (_, time) in lane.closes { rect("close", x: x(time) - 1, y: y + 1, width: 2, height: laneHeight - 2, into: page) }
            for time in lane.issues {
                page.raw("<circle class=\"issue\" cx=\""); number(x(time), page); page.raw("\" cy=\""); number(y + laneHeight / 2, page)
                page.raw("\" r=\"2.5\"/>")
            }
            page.raw("</g></a>\n")
        }
        page.raw("</svg>\n")
        if lanes.count > shown.count {
            page.raw("<p class=\"cut\">… "); page.number(lanes.count - shown.count)
            page.raw(" more connections not drawn (the table below lists them all)</p>\n")
        }
        rateChart(rates, span: span, origin: origin, into: page)
    }

    /// Messages per interval each way: sent above the line, received below it.
    private static func rateChart(_ rates: DirectionPair<TimeHistogram?>, span: Double, origin: Int64, into page: OutputBuffer) {
        let buckets = [rates.clientToServer, rates.serverToClient].compactMap { $0 }
        guard !buckets.isEmpty else { return }
        let peak = Double(buckets.flatMap(\.counts).max() ?? 1)
        let chartHeight = 120.0, middle = 60.0
        page.raw("<h2>Messages over time</h2>\n<svg class=\"rate\" viewBox=\"0 0 "); number(width, page); page.raw(" ")
        number(chartHeight + 20, page); page.raw("\" width=\"100%\" role=\"img\"><title>messages per interval, sent above, received below</title>\n")
        page.raw("<line class=\"axis\" x1=\""); number(left, page); page.raw("\" x2=\""); number(width - 4, page)
        page.raw("\" y1=\""); number(middle, page); page.raw("\" y2=\""); number(middle, page); page.raw("\"/>")
        for direction in StreamDirection.allCases {
            guard let histogram = rates[direction] else { continue }
            let seconds = Double(histogram.width) / 1e9
            for bucket in histogram.filled {
                let from = left + (width - left - 4) * min(1, Double(bucket.start &- origin) / span)
                let to = left + (width - left - 4) * min(1, Double(bucket.end &- origin) / span)
                let barHeight = max(1, (middle - 4) * Double(bucket.count) / peak)
                page.raw("<rect class=\""); page.raw(direction == .clientToServer ? "c2s" : "s2c"); page.raw("\" x=\"")
                number(from, page); page.raw("\" y=\""); number(direction == .clientToServer ? middle - barHeight : middle, page)
                page.raw("\" width=\""); number(max(1, to - from - 0.5), page); page.raw("\" height=\""); number(barHeight, page)
                page.raw("\"><title>"); page.number(UInt64(bucket.count))
                page.raw(direction == .clientToServer ? " sent in " : " received in ")
                page.text(StatisticsReport.fixed(seconds, decimals: 3)); page.raw(" s</title></rect>")
            }
        }
        page.raw("<text x=\"2\" y=\"14\">"); page.number(UInt64(peak)); page.raw("</text>")
        page.raw("\n</svg>\n")
    }

    private static func axis(span: Double, y: Double, into page: OutputBuffer) {
        for step in 0...4 {
            let fraction = Double(step) / 4
            let at = left + (width - left - 4) * fraction
            page.raw("<line class=\"tick\" x1=\""); number(at, page); page.raw("\" x2=\""); number(at, page)
            page.raw("\" y1=\"14\" y2=\""); number(y, page); page.raw("\"/><text x=\""); number(step == 4 ? at : at + 2, page)
            page.raw(step == 4 ? "\" text-anchor=\"end\" y=\"10\">" : "\" y=\"10\">"); page.text(StatisticsReport.fixed(span * fraction / 1e9, decimals: 3)); page.raw(" s</text>")
        }
    }

    private static func rect(_ style: StaticString, x: Double, y: Double, width: Double, height: Double, into page: OutputBuffer) {
        page.raw("<rect class=\""); page.raw(style); page.raw("\" x=\""); number(x, page); page.raw("\" y=\""); number(y, page)
        page.raw("\" width=\""); number(width, page); page.raw("\" height=\""); number(height, page); page.raw("\"/>")
    }

    /// A coordinate with one decimal.
    private static func number(_ value: Double, _ page: OutputBuffer) {
        page.text(StatisticsReport.fixed(value, decimals: 1))
    }
}
