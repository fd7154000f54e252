import WSTapCore
private import CPcap
// For the `FILE` type only: libpcap reads offline captures from a C stream (opened by `SystemCalls`).
import Glibc

/// libpcap's own error text.
struct PcapFailure: Error {
    var message: String
}

/// The one place that calls libpcap: a thin owner of a `pcap_t`.
final class PcapHandle {
    private let handle: OpaquePointer
    private var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
    private var data: UnsafePointer<UInt8>? = nil

    /// Whether timestamps come in nanoseconds (a live device may only offer microseconds).
    private let nanosecondTimestamps: Bool

    private init(handle: OpaquePointer) {
        self.handle = handle
        nanosecondTimestamps = true
    }

    private init(activated handle: OpaquePointer) {
        self.handle = handle
        nanosecondTimestamps = pcap_get_tstamp_precision(handle) == Int32(PCAP_TSTAMP_PRECISION_NANO)
    }

    /// Set when another `PcapHandle` took over the same `pcap_t`, so only that one closes it.
    private var handOver = false

    deinit { if !handOver { pcap_close(handle) } }

    /// Opens an already opened stdio stream as a capture file; libpcap takes ownership of it.
    static func openOffline(stream: OpaquePointer) -> Result<PcapHandle, PcapFailure> {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let pcap = pcap_fopen_offline_with_tstamp_precision(
            UnsafeMutablePointer<FILE>(stream), UInt32(PCAP_TSTAMP_PRECISION_NANO), &errorBuffer)
        else {
            return .failure(PcapFailure(message: errorText(errorBuffer)))
        }
        return .success(PcapHandle(handle: pcap))
    }

    /// Creates, configures and activates a live capture handle.
    static func openLive(device: String, configuration: LiveCaptureConfiguration) -> Result<PcapHandle, PcapFailure> {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let pcap = pcap_create(device, &errorBuffer) else {
            return .failure(PcapFailure(message: errorText(errorBuffer)))
        }
        let owner = PcapHandle(handle: pcap)
        _ = pcap_set_snaplen(pcap, Int32(clamping: configuration.snapshotLength))
        _ = pcap_set_promisc(pcap, configuration.promiscuous ? 1 : 0)
        _ = pcap_set_timeout(pcap, Int32(clamping: configuration.readTimeoutMilliseconds))
        _ = pcap_set_immediate_mode(pcap, configuration.immediate ? 1 : 0)
        if let bufferSize = configuration.kernelBufferSize {
            _ = pcap_set_buffer_size(pcap, Int32(clamping: bufferSize))
        }
        _ = pcap_set_tstamp_precision(pcap, Int32(PCAP_TSTAMP_PRECISION_NANO))
        let status = pcap_activate(pcap)
        if status < 0 {
            return .failure(PcapFailure(message: owner.describeActivationFailure(status)))
        }
        owner.handOver = true
        return .success(PcapHandle(activated: pcap))
    }

    private func describeActivationFailure(_ status: Int32) -> String {
        let detail = String(cString: pcap_geterr(handle))
        switch status {
        case PCAP_ERROR_PERM_DENIED:
            return "permission denied (\(detail)); run as root or grant CAP_NET_RAW and CAP_NET_ADMIN to wstap"
        case PCAP_ERROR_NO_SUCH_DEVICE:
            return "no such device (\(detail)); 'wstap interfaces' lists the devices"
        default:
            let text = String(cString: pcap_statustostr(status))
            return detail.isEmpty ? text : "\(text): \(detail)"
        }
    }

    var linkType: LinkType { LinkType(rawValue: pcap_datalink(handle)) }

    /// Compiles and installs a BPF filter; returns libpcap's message on failure.
    func setFilter(_ expression: String) -> String? {
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            return String(cString: pcap_geterr(handle))
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle, &program) == 0 else {
            return String(cString: pcap_geterr(handle))
        }
        return nil
    }

    enum NextResult {
        case packet(CapturedPacket)
        case timeout
        case end
        case failure(String)
    }

    /// Reads one record with `pcap_next_ex`; the packet bytes live until the next call.
    @inline(__always)
    func next(linkType: LinkType) -> NextResult {
        let status = pcap_next_ex(handle, &header, &data)
        switch status {
        case 1:
            guard let header, let data else { return .failure("libpcap returned no packet data") }
            let record = header.pointee
            let bytes = UnsafeRawBufferPointer(start: data, count: Int(record.caplen))
            let timestamp = CaptureTimestamp(
                seconds: Int64(record.ts.tv_sec), fraction: UInt64(UInt32(truncatingIfNeeded: record.ts.tv_usec)),
                unitsPerSecond: nanosecondTimestamps ? 1_000_000_000 : 1_000_000)
            return .packet(CapturedPacket(
                timestamp: timestamp, linkType: linkType, bytes: bytes, originalLength: Int(record.len)))
        case 0:
            return .timeout
        case PCAP_ERROR_BREAK:
            return .end
        default:
            return .failure(String(cString: pcap_geterr(handle)))
        }
    }

    /// Asks a blocked `next` to return `.end` (safe from a signal handler's thread).
    func breakLoop() { pcap_breakloop(handle) }

    /// Makes `next` return `.timeout` at once when no packet is waiting.
    func setNonBlocking() -> String? {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        return pcap_setnonblock(handle, 1, &errorBuffer) == 0 ? nil : errorText(errorBuffer)
    }

    /// Waits up to `milliseconds` for packets to read; in immediate mode libpcap itself would
    /// wait for the next packet however long that takes.
    func waitForPackets(milliseconds: Int32) {
        SystemCalls.waitUntilReadable(pcap_get_selectable_fd(handle), milliseconds: milliseconds)
    }

    /// Kernel and interface counters of a live capture.
    func statistics() -> CaptureStatistics? {
        var stats = pcap_stat()
        guard pcap_stats(handle, &stats) == 0 else { return nil }
        return CaptureStatistics(
            received: UInt64(stats.ps_recv),
            droppedByKernel: UInt64(stats.ps_drop),
            droppedByInterface: UInt64(stats.ps_ifdrop))
    }

    /// Opens a pcap dump file that records packets with this handle's link type.
    /// `-` is standard output; a file is created without following a symbolic link.
    func openDumper(path: String) -> Result<OpaquePointer, PcapFailure> {
        if path != "-" {
            switch SystemCalls.createStreamForWriting(path) {
            case .failure(let error): return .failure(PcapFailure(message: error.description))
            case .success(let stream):
                guard let dumper = pcap_dump_fopen(handle, UnsafeMutablePointer<FILE>(stream)) else {
                    SystemCalls.closeStream(stream)
                    return .failure(PcapFailure(message: String(cString: pcap_geterr(handle))))
                }
                return .success(dumper)
            }
        }
        guard let dumper = pcap_dump_open(handle, path) else {
            return .failure(PcapFailure(message: String(cString: pcap_geterr(handle))))
        }
        return .success(dumper)
    }

    /// Writes one packet; the file has this handle's timestamp precision.
    func dump(_ dumper: OpaquePointer, packet: CapturedPacket) {
        var record = pcap_pkthdr()
        record.ts.tv_sec = Int(packet.timestamp.seconds)
        let nanoseconds = Int(packet.timestamp.nanoseconds)
        record.ts.tv_usec = nanosecondTimestamps ? nanoseconds : nanoseconds / 1000
        record.caplen = UInt32(packet.bytes.count)
        record.len = UInt32(clamping: packet.originalLength)
        guard let base = packet.bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &record, base)
    }

    /// Writes out what the dump file buffers; the error, if that or an earlier write failed.
    static func flushDumper(_ dumper: OpaquePointer) -> SystemError? {
        let flushed = pcap_dump_flush(dumper) == 0
        guard flushed, ferror(pcap_dump_file(dumper)) == 0 else { return SystemError.last(call: "write") }
        return nil
    }

    /// Whether a write to the dump file has failed (its stream's error flag).
    static func dumperFailed(_ dumper: OpaquePointer) -> Bool { ferror(pcap_dump_file(dumper)) != 0 }

    static func closeDumper(_ dumper: OpaquePointer) { pcap_dump_close(dumper) }

    /// Capture devices as `pcap_findalldevs` lists them.
    static func allDevices() -> Result<[CaptureDevice], PcapFailure> {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        var list: UnsafeMutablePointer<pcap_if_t>? = nil
        guard pcap_findalldevs(&list, &errorBuffer) == 0 else {
            return .failure(PcapFailure(message: errorText(errorBuffer)))
        }
        defer { pcap_freealldevs(list) }
        var devices: [CaptureDevice] = []
        var cursor = list
        while let entry = cursor {
            let flags = entry.pointee.flags
            devices.append(CaptureDevice(
                name: String(cString: entry.pointee.name),
                description: entry.pointee.description.map { String(cString: $0) },
                isUp: flags & UInt32(PCAP_IF_UP) != 0,
                isRunning: flags & UInt32(PCAP_IF_RUNNING) != 0,
                isLoopback: flags & UInt32(PCAP_IF_LOOPBACK) != 0))
            cursor = entry.pointee.next
        }
        return .success(devices)
    }
}

/// libpcap's NUL-terminated error buffer as a string.
private func errorText(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// A compiled BPF program for one link type, to filter packets that libpcap did not read itself.
final class BPFFilter {
    private var program = bpf_program()

    /// Compiles `expression` for `linkType`; returns libpcap's message on failure.
    static func compile(_ expression: String, linkType: LinkType, snapshotLength: Int) -> Result<BPFFilter, PcapFailure> {
        guard let dead = pcap_open_dead(linkType.rawValue, Int32(clamping: snapshotLength)) else {
            return .failure(PcapFailure(message: "cannot compile for link type \(linkType)"))
        }
        defer { pcap_close(dead) }
        let filter = BPFFilter()
        guard pcap_compile(dead, &filter.program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            return .failure(PcapFailure(message: String(cString: pcap_geterr(dead))))
        }
        return .success(filter)
    }

    deinit { pcap_freecode(&program) }

    func matches(_ packet: CapturedPacket) -> Bool {
        guard let base = packet.bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return false }
        var header = pcap_pkthdr()
        header.caplen = UInt32(packet.bytes.count)
        header.len = UInt32(clamping: packet.originalLength)
        return pcap_offline_filter(&program, &header, base) != 0
    }
}
