import WSTapCore
/// Captures packets from a network interface (libpcap), for `wstap sniff`.
public final class LiveCapture: PacketSource {
    public let device: String
    public let linkType: LinkType
    private let pcap: PcapHandle

    /// Opens and activates `device`; a filter is compiled by libpcap and errors name the expression.
    public init(device: String, configuration: LiveCaptureConfiguration, filter: String?) throws(CaptureError) {
        self.device = device
        switch PcapHandle.openLive(device: device, configuration: configuration) {
        case .success(let handle): pcap = handle
        case .failure(let failure): throw .deviceFailed(device: device, reason: failure.message)
        }
        linkType = pcap.linkType
        waitMilliseconds = Int32(clamping: configuration.readTimeoutMilliseconds)
        if let filter, let reason = pcap.setFilter(filter) {
            throw .invalidFilter(expression: filter, reason: reason)
        }
        if let reason = pcap.setNonBlocking() { throw .deviceFailed(device: device, reason: reason) }
    }

    private let waitMilliseconds: Int32
    /// Packets delivered so far: their numbers, as in the file `sniff -w` writes.
    private var packetsDelivered: UInt64 = 0

    /// A packet, or `.noPacketYet` at once when none is waiting (then call `waitForPackets`).
    public func nextPacket() throws(CaptureError) -> PacketSourceRead {
        switch pcap.next(linkType: linkType) {
        case .packet(var packet):
            packetsDelivered += 1
            packet.timestamp.packet = packetsDelivered
            return .packet(packet)
        case .timeout: return .noPacketYet
        case .end: return .endOfCapture
        case .failure(let reason): throw .deviceFailed(device: device, reason: reason)
        }
    }

    /// Sleeps until packets arrive or the read timeout passes, so callers regain control to
    /// check their stop conditions (libpcap's own wait would last until the next packet).
    public func waitForPackets() { pcap.waitForPackets(milliseconds: waitMilliseconds) }

    /// Makes a blocked read return; callable from another thread.
    public func stop() { pcap.breakLoop() }

    /// Packets the kernel and the interface received and dropped so far.
    public func statistics() -> CaptureStatistics? { pcap.statistics() }

    /// A pcap file that records this capture's packets as they are read (`-w`).
    public func makeWriter(path: String) throws(CaptureError) -> CaptureFileWriter {
        switch pcap.openDumper(path: path) {
        case .success(let dumper): return CaptureFileWriter(path: path, dumper: dumper, owner: pcap)
        case .failure(let failure): throw .writeFailed(path: path, reason: failure.message)
        }
    }

    /// The devices libpcap can capture on, as `tcpdump -D` lists them.
    public static func devices() throws(CaptureError) -> [CaptureDevice] {
        switch PcapHandle.allDevices() {
        case .success(let devices): return devices
        case .failure(let failure): throw .deviceFailed(device: "any", reason: failure.message)
        }
    }
}

/// Writes packets to a pcap file as they are captured.
public final class CaptureFileWriter {
    public let path: String
    private let dumper: OpaquePointer
    private let owner: PcapHandle
    private var closed = false

    init(path: String, dumper: OpaquePointer, owner: PcapHandle) {
        self.path = path
        self.dumper = dumper
        self.owner = owner
    }

    /// The first write error; once set, nothing more is written (what was written stays a
    /// readable capture up to its last whole record).
    public private(set) var failure: SystemError?

    public func write(_ packet: CapturedPacket) {
        guard failure == nil else { return }
        owner.dump(dumper, packet: packet)
        // A full disk shows in the stream's error flag (a check, not a flush) long before the
        // next quiet moment flushes.
        if PcapHandle.dumperFailed(dumper) { failure = SystemError.last(call: "write") }
    }

    /// Writes out buffered packets; returns the write error, if there was one.
    @discardableResult
    public func flush() -> SystemError? {
        if failure == nil, !closed { failure = PcapHandle.flushDumper(dumper) }
        return failure
    }

    public func close() {
        guard !closed else { return }
        flush()
        closed = true
        PcapHandle.closeDumper(dumper)
    }

    deinit { close() }
}
