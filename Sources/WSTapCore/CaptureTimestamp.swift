/// A packet's capture time as seconds and nanoseconds since the Unix epoch, and which packet it
/// was: what every event carries as "when", so that an event names the packet it came from.
///
/// Only the time takes part in comparing, ordering and hashing; `packet` rides along.
public struct CaptureTimestamp: Hashable, Comparable, Sendable {
    public var seconds: Int64
    public var nanoseconds: UInt32
    /// The packet's number in its capture, from 1, counting every record as Wireshark numbers its
    /// frames (packets a BPF filter left out included); 0 when not from a packet.
    public var packet: UInt64 = 0

    public init(seconds: Int64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    /// A pcap record's time: whole seconds and a fraction in `unitsPerSecond` (10^6 or 10^9). A
    /// fraction of a second or more (a writer's bug, or a crafted file) carries into the seconds,
    /// so the nanoseconds always stay below 10^9.
    public init(seconds: Int64, fraction: UInt64, unitsPerSecond: UInt64) {
        self.seconds = seconds &+ Int64(fraction / unitsPerSecond)
        nanoseconds = UInt32(fraction % unitsPerSecond * (1_000_000_000 / unitsPerSecond))
    }

    public static let zero = CaptureTimestamp(seconds: 0, nanoseconds: 0)

    public static func < (lhs: CaptureTimestamp, rhs: CaptureTimestamp) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }

    public static func == (lhs: CaptureTimestamp, rhs: CaptureTimestamp) -> Bool {
        lhs.seconds == rhs.seconds && lhs.nanoseconds == rhs.nanoseconds
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(seconds)
        hasher.combine(nanoseconds)
    }

    /// Nanoseconds from `earlier` to `self`, saturating instead of trapping on absurd clocks.
    public func nanoseconds(since earlier: CaptureTimestamp) -> Int64 {
        let (deltaSeconds, overflow) = seconds.subtractingReportingOverflow(earlier.seconds)
        if overflow { return deltaSeconds < 0 ? Int64.max : Int64.min }
        let (scaled, overflow2) = deltaSeconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow2 { return deltaSeconds < 0 ? Int64.min : Int64.max }
        return scaled &+ (Int64(nanoseconds) - Int64(earlier.nanoseconds))
    }

    /// This time plus a number of whole seconds (saturating).
    public func adding(seconds delta: Int64) -> CaptureTimestamp {
        let (sum, overflow) = seconds.addingReportingOverflow(delta)
        var later = CaptureTimestamp(seconds: overflow ? Int64.max : sum, nanoseconds: nanoseconds)
        later.packet = packet
        return later
    }
}
