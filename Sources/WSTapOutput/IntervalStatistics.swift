import WSTap
import WSTapCore

/// What happened in each interval of the capture (`wstap stats --interval`, like tshark's
/// `-z io,stat`): messages and their bytes each way, connections opened and closed. At most
/// `maxIntervals` are kept: past them neighbours merge and the interval doubles (and the output
/// says the interval it used).
public struct IntervalStatistics: Sendable {
    public struct Interval: Sendable, Equatable {
        public var messages = DirectionPair<UInt64>(0)
        public var bytes = DirectionPair<UInt64>(0)
        public var opened: UInt64 = 0
        public var closed: UInt64 = 0

        mutating func add(_ other: Interval) {
            messages.clientToServer &+= other.messages.clientToServer
            messages.serverToClient &+= other.messages.serverToClient
            bytes.clientToServer &+= other.bytes.clientToServer
            bytes.serverToClient &+= other.bytes.serverToClient
            opened &+= other.opened
            closed &+= other.closed
        }
    }

    public static let maxIntervals = 10_000
    /// Nanoseconds; doubles when the capture outgrows `maxIntervals`.
    public private(set) var width: Int64
    /// When the first interval starts (the capture's first event seen).
    public private(set) var origin: CaptureTimestamp?
    public private(set) var intervals: [Interval] = []

    public init(widthNanoseconds: Int64) { width = max(1_000_000, widthNanoseconds) }

    mutating func change(at time: CaptureTimestamp?, _ body: (inout Interval) -> Void) {
        guard let time else { return }
        if origin == nil { origin = time }
        guard let origin else { return }
        let offset = max(0, time.nanoseconds(since: origin))
        var index = Int(offset / width)
        while index >= Self.maxIntervals {
            var merged: [Interval] = []
            stride(from: 0, to: intervals.count, by: 2).forEach { start in
                var pair = intervals[start]
                if start + 1 < intervals.count { pair.add(intervals[start + 1]) }
                merged.append(pair)
            }
            intervals = merged
            width = width.multipliedReportingOverflow(by: 2).overflow ? width : width * 2
            index = Int(offset / width)
        }
        if intervals.count <= index { intervals += Array(repeating: Interval(), count: index + 1 - intervals.count) }
        body(&intervals[index])
    }
}
