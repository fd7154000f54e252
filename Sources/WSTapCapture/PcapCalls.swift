private import CPcap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libpcap's own error text.
struct PcapFailure: Error {
    var message: String
}

/// The one place that calls libpcap: a thin owner of a `pcap_t`.
final class PcapHandle {
    private let handle: OpaquePointer
    private var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
    private var data: UnsafePointer<UInt8>? = nil

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit { pcap_close(handle) }

    /// Opens an already opened stdio stream as a capture file; libpcap takes ownership of it.
    static func openOffline(stream: UnsafeMutablePointer<FILE>) -> Result<PcapHandle, PcapFailure> {
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let pcap = pcap_fopen_offline_with_tstamp_precision(
            stream, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errorBuffer)
        else {
            return .failure(PcapFailure(message: errorText(errorBuffer)))
        }
        return .success(PcapHandle(handle: pcap))
    }

    var linkType: LinkType { LinkType(rawValue: pcap_datalink(handle)) }

    /// Compiles and installs a BPF filter; returns libpcap's message on failure.
    func setFilter(_ expression: String, netmask: UInt32 = PCAP_NETMASK_UNKNOWN) -> String? {
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, netmask) == 0 else {
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
                seconds: Int64(record.ts.tv_sec),
                nanoseconds: UInt32(clamping: record.ts.tv_usec))
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
