import WSTapCore
/// Reads the records of a classic pcap file straight from large `read(2)` chunks.
///
/// libpcap reads every record with two `fread` calls and copies it into its own buffer; here a
/// record is handed out where it lies in the chunk. Every length comes from the file and is
/// checked before use: a record longer than `maxRecordLength` or cut off by the end of the file
/// is reported as damage with its offset. Linear: each byte is read once; a record that spans
/// two chunks is the only one copied.
///
/// Reads start at 64 KiB and double, up to `readAheadLimit`, while the file keeps being read: a
/// file of a set that is open beside thousands of others (captures that overlap in time) holds
/// about 64 KiB until it is read on, and the set lowers the limit of each when many are open.
/// What a native reader yields for one record.
enum NativeRecord {
    case packet(CapturedPacket)
    case end
    case failure(reason: String, offset: Int64)
}

final class PcapRecordReader {
    /// libpcap's MAXIMUM_SNAPLEN: no capture of the link types wstap decodes holds longer records.
    static let maxRecordLength = 262_144
    private static let recordHeaderLength = 16
    /// The first read's length, and the least `readAheadLimit`.
    static let minimumReadAhead = Int.kibibytes(64)
    static let maximumReadAhead = Int.mebibytes(1)

    /// How long a read may grow (`minimumReadAhead`…`maximumReadAhead`); lowering it gives back
    /// memory at the next read.
    var readAheadLimit = PcapRecordReader.maximumReadAhead {
        didSet { readAheadLimit = min(Self.maximumReadAhead, max(Self.minimumReadAhead, readAheadLimit)) }
    }
    private var chunkLength = PcapRecordReader.minimumReadAhead

    private let fileDescriptor: Int32
    private let linkType: LinkType
    private let swapped: Bool
    private let nanosecondTimestamps: Bool
    private let filter: BPFFilter?
    private var buffer: UnsafeMutableRawPointer
    private var capacity: Int
    /// Unread bytes are `buffer[start..<end]`; `start` lies at file offset `offset`.
    private var start = 0
    private var end = 0
    private var offset: Int64
    private var reachedEndOfFile = false
    private var readError: String?

    /// Where the records of a pcap file start: after its 24-byte header.
    private static let recordsOffset: Int64 = 24

    /// Takes over an open file positioned anywhere; reading starts at its first record. `magic` is
    /// the file's first word as read in host byte order.
    init(fileDescriptor: Int32, magic: UInt32, linkType: LinkType, filter: BPFFilter?) {
        self.fileDescriptor = fileDescriptor
        self.linkType = linkType
        self.filter = filter
        swapped = magic == 0xD4C3_B2A1 || magic == 0x4D3C_B2A1
        nanosecondTimestamps = magic == 0xA1B2_3C4D || magic == 0x4D3C_B2A1
        offset = Self.recordsOffset
        capacity = Self.minimumReadAhead + Self.recordHeaderLength
        buffer = .allocate(byteCount: capacity, alignment: 16)
        SystemCalls.seek(fileDescriptor, to: Self.recordsOffset)
    }

    deinit {
        buffer.deallocate()
        SystemCalls.close(fileDescriptor)
    }

    /// Records read so far, whether the filter kept them or not: the last one's number.
    private(set) var recordsRead: UInt64 = 0

    /// The next record that passes the filter; its bytes stay valid until the next call.
    func next() -> NativeRecord {
        while true {
            let recordOffset = offset
            guard ensure(Self.recordHeaderLength) else {
                if let readError { return .failure(reason: readError, offset: recordOffset) }
                let available = end - start
                if available == 0 { return .end }
                return .failure(
                    reason: "truncated dump file; tried to read 16 header bytes, only got \(available)",
                    offset: recordOffset)
            }
            let header = buffer + start
            let seconds = field(header, 0)
            let fraction = field(header, 4)
            let capturedLength = Int(field(header, 8))
            let originalLength = Int(field(header, 12))
            guard capturedLength <= Self.maxRecordLength else {
                return .failure(
                    reason: "invalid packet capture length \(capturedLength), bigger than maximum of \(Self.maxRecordLength)",
                    offset: recordOffset)
            }
            guard ensure(Self.recordHeaderLength + capturedLength) else {
                if let readError { return .failure(reason: readError, offset: recordOffset) }
                return .failure(
                    reason: "truncated dump file; tried to read \(capturedLength) captured bytes, only got \(end - start - Self.recordHeaderLength)",
                    offset: recordOffset)
            }
            let bytes = UnsafeRawBufferPointer(start: buffer + start + Self.recordHeaderLength, count: capturedLength)
            start += Self.recordHeaderLength + capturedLength
            offset += Int64(Self.recordHeaderLength + capturedLength)
            var timestamp = CaptureTimestamp(
                seconds: Int64(seconds), fraction: UInt64(fraction), unitsPerSecond: nanosecondTimestamps ? 1_000_000_000 : 1_000_000)
            recordsRead += 1
            timestamp.packet = recordsRead
            let packet = CapturedPacket(timestamp: timestamp, linkType: linkType, bytes: bytes, originalLength: originalLength)
            if let filter, !filter.matches(packet) { continue }
            return .packet(packet)
        }
    }

    @inline(__always)
    private func field(_ header: UnsafeMutableRawPointer, _ at: Int) -> UInt32 {
        let value = header.loadUnaligned(fromByteOffset: at, as: UInt32.self)
        return swapped ? value.byteSwapped : value
    }

    /// Makes at least `count` unread bytes available; false at the end of the file (or an error).
    @inline(__always)
    private func ensure(_ count: Int) -> Bool {
        end - start >= count || refill(toHold: count)
    }

    private func refill(toHold count: Int) -> Bool {
        if reachedEndOfFile { return false }
        if start > 0 {
            buffer.copyMemory(from: buffer + start, byteCount: end - start)
            end -= start
            start = 0
        }
        chunkLength = min(chunkLength, readAheadLimit)
        // Room for the record and one read past it; a buffer grown past that (by a long record, or
        // a higher limit before) is given back.
        let needed = max(count, end + chunkLength)
        if needed > capacity || capacity > needed + Self.maxRecordLength { resize(to: needed) }
        while end - start < count {
            let got: Int
            let wanted = capacity - end
            switch SystemCalls.read(fileDescriptor, into: buffer + end, count: wanted) {
            case .success(let count): got = count
            case .failure(let error):
                readError = error.reason
                reachedEndOfFile = true
                return false
            }
            if got == 0 {
                reachedEndOfFile = true
                return false
            }
            end += got
        }
        // A file being read on reads further ahead next time.
        if chunkLength < readAheadLimit { chunkLength *= 2 }
        return true
    }

    /// Moves the unread bytes (at the buffer's start) into a buffer of `newCapacity` bytes.
    private func resize(to newCapacity: Int) {
        let resized = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        resized.copyMemory(from: buffer, byteCount: end)
        buffer.deallocate()
        buffer = resized
        capacity = newCapacity
    }
}
