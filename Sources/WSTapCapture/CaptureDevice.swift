/// A device libpcap can capture on, as `tcpdump -D` lists it.
public struct CaptureDevice: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var isUp: Bool
    public var isRunning: Bool
    public var isLoopback: Bool
}

/// Packet counters of a live capture (`pcap_stats`).
public struct CaptureStatistics: Sendable, Equatable {
    public var received: UInt64
    public var droppedByKernel: UInt64
    public var droppedByInterface: UInt64
}

/// How a live capture handle is set up before activation.
public struct LiveCaptureConfiguration: Sendable {
    public var snapshotLength: Int = 262_144
    public var promiscuous: Bool = true
    /// Immediate mode hands over each packet at once, but on Linux it means TPACKET_V2, whose
    /// fixed-size slots hold only a few dozen packets in a default buffer. Off, TPACKET_V3 packs
    /// small packets densely and delivers them within `readTimeoutMilliseconds`.
    public var immediate: Bool = false
    public var readTimeoutMilliseconds: Int = 10
    /// Kernel buffer in bytes; nil keeps libpcap's default.
    public var kernelBufferSize: Int? = nil

    public init() {}
}
