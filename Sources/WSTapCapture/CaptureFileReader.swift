import WSTapCore
/// Reads a `.pcap` (µs or ns) or `.pcapng` file, or standard input for the path `-`.
public final class CaptureFileReader: PacketSource {
    /// The file format found by its magic number.
    public enum Format: String, Sendable {
        case pcap
        case pcapng

        /// The format a file's first word (in host byte order) announces, if any.
        init?(magic: UInt32) {
            switch magic {
            case 0xA1B2_C3D4, 0xD4C3_B2A1, 0xA1B2_3C4D, 0x4D3C_B2A1: self = .pcap
            case 0x0A0D_0D0A: self = .pcapng
            default: return nil
            }
        }
    }

    public let path: String
    /// Where the capture's bytes can be opened again: `path`, or the decompressed copy of a .gz.
    private var readablePath: String
    public let format: Format?
    /// The link type of the first interface (packets carry their own).
    public let linkType: LinkType
    /// libpcap's reader; closed (with `stream`) once a classic pcap file's records are read
    /// natively, so that an open file costs one descriptor and no libpcap buffer.
    private var pcap: PcapHandle?
    /// The C stream libpcap reads (`SystemCalls`' handle for a `FILE *`); not used once `pcap`
    /// is closed.
    private let stream: OpaquePointer
    private let filter: String?
    /// The filter, compiled for the first interface's link type, applied to what libpcap reads:
    /// libpcap's own filter would hide the packets it drops, and they must still be counted so
    /// that packet numbers are Wireshark's.
    private let compiledFilter: BPFFilter?
    /// Takes over when libpcap cannot read a pcapng file (interfaces of different link types).
    private var nativeReader: PcapNGReader?
    /// Reads the records of classic pcap files (libpcap only checks the file header).
    private var recordReader: PcapRecordReader?
    /// The same reader, called on every packet without reference counting (`recordReader` owns it).
    private var recordReaderReference: Unretained<PcapRecordReader>?
    /// Packets read from the file, whether the filter kept them or not.
    private(set) public var packetsRead = 0

    /// How far ahead a classic pcap file is read (`PcapRecordReader.readAheadLimit`, 64 KiB to
    /// 1 MiB): lowered when many files are read at once.
    var readAheadLimit: Int {
        get { recordReader?.readAheadLimit ?? PcapRecordReader.maximumReadAhead }
        set { recordReader?.readAheadLimit = newValue }
    }
    /// Offset of the next record for classic pcap files, where records are laid out back to back.
    private var nextRecordOffset: Int64 = 24
    private var finished = false
    /// What was wrong with the gzip stream this capture was decompressed from, and where the
    /// decompressed bytes end.
    private var gzipDamage: (String, Int64)?

    /// Opens `path` (or standard input for `-`) and, if given, installs a BPF filter.
    public init(path: String, filter: String? = nil) throws(CaptureError) {
        self.path = path
        readablePath = path
        var stream: OpaquePointer
        // The file's first word (not read from standard input).
        let magic: UInt32?
        if path == "-" {
            switch SystemCalls.standardInputStream() {
            case .success(let standardInput): stream = standardInput
            case .failure(let error): throw .cannotOpen(path: path, reason: error.reason)
            }
            magic = nil
            format = nil
        } else {
            switch SystemCalls.fileStatus(path) {
            case .failure(let error): throw .cannotOpen(path: path, reason: error.reason)
            case .success(let status) where !status.isRegularFile: throw .cannotOpen(path: path, reason: "not a regular file")
            case .success(let status) where status.size <= 0: throw .notACapture(path: path, reason: "the file is empty")
            case .success: break
            }
            switch SystemCalls.openStream(path) {
            case .success(let opened): stream = opened
            case .failure(let error): throw .cannotOpen(path: path, reason: error.reason)
            }
            var firstWord = Self.readMagic(fileDescriptor: SystemCalls.descriptor(of: stream))
            if GzipFile.starts(firstWord) {
                // Read through a decompressed copy; reopened as that copy, never as the .gz.
                SystemCalls.closeStream(stream)
                let descriptor: Int32
                switch GzipFile.sharedCopy(path) {
                case .success(let copy):
                    descriptor = copy.descriptor
                    gzipDamage = copy.damage.map { ($0, copy.size) }
                case .failure(let error): throw error
                }
                switch SystemCalls.readingStream(descriptor) {
                case .success(let opened): stream = opened
                case .failure(let error):
                    SystemCalls.close(descriptor)
                    throw .cannotOpen(path: path, reason: error.reason)
                }
                readablePath = "/proc/self/fd/\(descriptor)"
                firstWord = Self.readMagic(fileDescriptor: descriptor)
            }
            magic = firstWord
            format = magic.flatMap(Format.init(magic:))
        }
        let handle: PcapHandle
        switch PcapHandle.openOffline(stream: stream) {
        case .success(let opened):
            handle = opened
            pcap = opened
        case .failure(let failure):
            SystemCalls.closeStream(stream)
            throw .notACapture(path: path, reason: failure.message)
        }
        self.stream = stream
        self.filter = filter
        linkType = handle.linkType
        if let filter {
            switch BPFFilter.compile(filter, linkType: linkType, snapshotLength: PcapRecordReader.maxRecordLength) {
            case .success(let compiled): compiledFilter = compiled
            case .failure(let failure): throw .invalidFilter(expression: filter, reason: failure.message)
            }
        } else {
            compiledFilter = nil
        }
        if format == .pcap, let magic {
            recordReader = openRecordReader(magic: magic)
            recordReaderReference = recordReader.map(Unretained.init)
            if recordReader != nil { pcap = nil }
        }
    }

    /// A native reader for the records of a classic pcap file; nil leaves the reading to libpcap.
    private func openRecordReader(magic: UInt32) -> PcapRecordReader? {
        // Its own descriptor for the same open file: libpcap reads nothing more from it.
        guard let descriptor = SystemCalls.duplicate(SystemCalls.descriptor(of: stream)) else { return nil }
        return PcapRecordReader(fileDescriptor: descriptor, magic: magic, linkType: linkType, filter: compiledFilter)
    }

    /// The file starts like a pcap, pcapng or gzip file (how a directory's captures are found).
    public static func startsLikeCapture(_ path: String) -> Bool {
        guard case .success(let bytes) = SystemCalls.readFile(path, from: 0, limit: 4), bytes.count == 4 else { return false }
        let word = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        return Format(magic: word) != nil || GzipFile.starts(word)
    }

    /// The file's first word in host byte order, which says its format.
    private static func readMagic(fileDescriptor: Int32) -> UInt32? {
        var magic: UInt32 = 0
        let read = withUnsafeMutableBytes(of: &magic) {
            SystemCalls.read(fileDescriptor, into: $0.baseAddress!, count: 4, at: 0)
        }
        return (try? read.get()) == 4 ? magic : nil
    }

    public func nextPacket() throws(CaptureError) -> PacketSourceRead {
        if finished { return .endOfCapture }
        if let recordReader = recordReaderReference {
            let record = recordReader.with { $0.next() }
            return try deliver(record, recordsRead: recordReader.with { Int($0.recordsRead) })
        }
        if let nativeReader {
            let record = nativeReader.next()
            return try deliver(record, recordsRead: nativeReader.packetsSeen)
        }
        guard let pcap else { return .endOfCapture }
        while true {
            switch pcap.next(linkType: linkType) {
            case .packet(var packet):
                packetsRead += 1
                nextRecordOffset &+= 16 &+ Int64(packet.bytes.count)
                packet.timestamp.packet = UInt64(packetsRead)
                if let compiledFilter, !compiledFilter.matches(packet) { continue }
                return .packet(packet)
            case .timeout:
                return .noPacketYet
            case .end:
                finished = true
                try reportGzipDamage()
                return .endOfCapture
            case .failure(let reason):
                // libpcap stops at interfaces of different link types and at a section whose byte
                // order differs from the first; the native reader reads both. Where it cannot read
                // on either, libpcap's account of the damage stands.
                let offset = damageOffset()
                if format == .pcapng, path != "-", let native = openNativeReader() {
                    switch native.next() {
                    case .packet(let packet):
                        nativeReader = native
                        return try deliver(.packet(packet), recordsRead: native.packetsSeen)
                    case .end:
                        return try deliver(.end, recordsRead: native.packetsSeen)
                    case .failure:
                        break
                    }
                }
                finished = true
                throw .damagedRecord(path: path, offset: offset, packetsRead: packetsRead, reason: reason)
            }
        }
    }

    /// Reopens the file with the native reader and skips the packets libpcap already delivered.
    private func openNativeReader() -> PcapNGReader? {
        guard case .success(let reopened) = SystemCalls.openStream(readablePath) else { return nil }
        let reader = PcapNGReader(stream: reopened, filter: filter)
        // Every packet libpcap read was counted, filtered or not: skip them by position.
        if reader.skip(packets: packetsRead) != nil { return nil }
        return reader
    }

    /// Hands on what a native reader read; `recordsRead` counts its records, filtered or not.
    private func deliver(_ record: consuming NativeRecord, recordsRead: Int) throws(CaptureError) -> PacketSourceRead {
        packetsRead = recordsRead
        switch record {
        case .packet(let packet):
            return .packet(packet)
        case .end:
            finished = true
            try reportGzipDamage()
            return .endOfCapture
        case .failure(let reason, let offset):
            finished = true
            throw .damagedRecord(path: path, offset: offset, packetsRead: packetsRead, reason: reason)
        }
    }

    /// A gzip stream cut short or failing its check: reported where the decompressed capture ends
    /// (everything before was read), as a damaged capture is.
    private func reportGzipDamage() throws(CaptureError) {
        guard let (reason, size) = gzipDamage else { return }
        throw .damagedRecord(path: path, offset: size, packetsRead: packetsRead, reason: reason)
    }

    /// Where the unreadable record starts: exact for pcap, the end of what was read for pcapng.
    private func damageOffset() -> Int64 {
        if format == .pcap { return nextRecordOffset }
        return SystemCalls.position(of: stream)
    }
}
