import WSTapCore
/// Reads pcapng block by block (draft-ietf-opsawg-pcapng), for what libpcap's reader refuses:
/// interfaces of different link types in one file, and sections of another byte order. Each
/// packet carries its interface's link type and timestamp resolution. Lengths from the file are
/// checked before anything is read.
///
/// Linear: each block is read once, into a buffer that grows 1 MiB at a time (then doubling) as
/// its bytes arrive; a section header only switches the byte order and interface table.
final class PcapNGReader {
    private struct Interface {
        var linkType: LinkType
        var snapshotLength: Int
        /// Timestamp units per second as a power: 10^-n (`decimal`) or 2^-n.
        var resolution: UInt8 = 6
        var decimal = true
        var offsetSeconds: Int64 = 0
    }

    private let stream: OpaquePointer
    private let filterExpression: String?
    private var filters: [Int32: BPFFilter] = [:]
    private var interfaces: [Interface] = []
    private var bigEndian = false
    /// The current block's body; packets are lent from it until the next block is read.
    private let block = OwnedBytes()
    /// The current block's type and length.
    private let header = OwnedBytes()
    private var offset: Int64 = 0
    private static let maxBlockLength = Int.mebibytes(64)

    init(stream: OpaquePointer, filter: String?) {
        self.stream = stream
        filterExpression = filter
        header.reserve(8)
    }

    deinit { SystemCalls.closeStream(stream) }

    /// Skips `count` packets (those a previous reader already delivered).
    /// Packet blocks read so far, whether the filter kept them or not (the last one's number).
    private(set) var packetsSeen = 0

    func skip(packets count: Int) -> NativeRecord? {
        var skipped = 0
        while skipped < count {
            switch nextRecord(applyFilter: false) {
            case .packet: skipped += 1
            case let other: return other
            }
        }
        return nil
    }

    func next() -> NativeRecord { nextRecord(applyFilter: true) }

    private func nextRecord(applyFilter: Bool) -> NativeRecord {
        while true {
            let start = offset
            let got = SystemCalls.read(stream: stream, into: header.storage.baseAddress!, count: 8)
            if got == 0 { return .end }
            guard got == 8 else { return .failure(reason: "truncated block header", offset: start) }
            var type = read32(header, 0)
            if type == 0x0A0D_0D0A {
                // A section header decides the byte order of everything up to the next one.
                var magic = [UInt8](repeating: 0, count: 4)
                guard fill(&magic) == 4 else { return .failure(reason: "truncated section header", offset: start) }
                if magic == [0x1A, 0x2B, 0x3C, 0x4D] { bigEndian = true }
                else if magic == [0x4D, 0x3C, 0x2B, 0x1A] { bigEndian = false }
                else { return .failure(reason: "bad byte-order magic in section header", offset: start) }
                type = 0x0A0D_0D0A
                let length = Int(read32(header, 4))
                guard length >= 28, length % 4 == 0, length <= Self.maxBlockLength else {
                    return .failure(reason: "section header length \(length) is invalid", offset: start)
                }
                guard fillBlock(length - 12) else {
                    return .failure(reason: "truncated section header", offset: start)
                }
                offset += Int64(length)
                interfaces.removeAll()
                continue
            }
            let length = Int(read32(header, 4))
            guard length >= 12, length % 4 == 0, length <= Self.maxBlockLength else {
                return .failure(reason: "block length \(length) is invalid", offset: start)
            }
            let bodyLength = length - 8
            guard fillBlock(bodyLength) else {
                return .failure(reason: "truncated block of \(length) bytes", offset: start)
            }
            offset += Int64(length)
            guard Int(read32(block, bodyLength - 4)) == length else {
                return .failure(reason: "block length fields disagree", offset: start)
            }
            let body = bodyLength - 4
            switch type {
            case 1:
                guard let interface = parseInterface(body) else {
                    return .failure(reason: "malformed interface description block", offset: start)
                }
                interfaces.append(interface)
            case 6, 2, 3:
                guard var packet = parsePacket(type: type, body: body) else {
                    return .failure(reason: "malformed packet block", offset: start)
                }
                packetsSeen += 1
                packet.timestamp.packet = UInt64(packetsSeen)
                if applyFilter, !passesFilter(packet) { continue }
                return .packet(packet)
            default:
                continue  // name resolution, statistics, comments and custom blocks
            }
        }
    }

    /// Reads `bytes.count` bytes from the file into `bytes`: how many arrived.
    private func fill(_ bytes: inout [UInt8]) -> Int {
        let count = bytes.count
        return bytes.withUnsafeMutableBytes { SystemCalls.read(stream: stream, into: $0.baseAddress!, count: count) }
    }

    /// Reads the next `count` bytes of the file into `block`; false if the file ends first. The
    /// block grows as they arrive (1 MiB, then doubling): a block length that claims more than the
    /// file holds costs memory only for the bytes that are there.
    private func fillBlock(_ count: Int) -> Bool {
        var filled = 0
        while filled < count {
            let target = min(count, max(filled * 2, .mebibytes(1)))
            block.reserve(target, keepingFirst: filled)
            let wanted = target - filled
            guard SystemCalls.read(stream: stream, into: block.storage.baseAddress! + filled, count: wanted) == wanted else {
                return false
            }
            filled = target
        }
        return true
    }

    private func read16(_ bytes: OwnedBytes, _ at: Int) -> UInt16 {
        bigEndian ? UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1]) : UInt16(bytes[at + 1]) << 8 | UInt16(bytes[at])
    }

    private func read32(_ bytes: OwnedBytes, _ at: Int) -> UInt32 {
        bigEndian
            ? UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
            : UInt32(bytes[at + 3]) << 24 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at])
    }


    private func parseInterface(_ body: Int) -> Interface? {
        guard body >= 8 else { return nil }
        var interface = Interface(linkType: LinkType(rawValue: Int32(read16(block, 0))), snapshotLength: Int(read32(block, 4)))
        var position = 8
        while position + 4 <= body {
            let code = read16(block, position), length = Int(read16(block, position + 2))
            let value = position + 4
            guard value + length <= body else { return nil }
            if code == 0 { break }
            if code == 9, length >= 1 {
                interface.decimal = block[value] & 0x80 == 0
                interface.resolution = block[value] & 0x7F
            } else if code == 14, length >= 8 {
                let high = UInt64(read32(block, value + (bigEndian ? 0 : 4)))
                let low = UInt64(read32(block, value + (bigEndian ? 4 : 0)))
                interface.offsetSeconds = Int64(bitPattern: high << 32 | low)
            }
            position = value + (length + 3) / 4 * 4
        }
        return interface
    }

    private func parsePacket(type: UInt32, body: Int) -> CapturedPacket? {
        let interfaceIndex: Int, units: UInt64, captured: Int, original: Int, dataStart: Int
        switch type {
        case 6, 2:
            // Enhanced packet block; the obsolete packet block differs only in a 16-bit interface id.
            guard body >= 20 else { return nil }
            interfaceIndex = type == 6 ? Int(read32(block, 0)) : Int(read16(block, 0))
            units = UInt64(read32(block, 4)) << 32 | UInt64(read32(block, 8))
            captured = Int(read32(block, 12))
            original = Int(read32(block, 16))
            dataStart = 20
        default:
            guard body >= 4, !interfaces.isEmpty else { return nil }
            interfaceIndex = 0
            units = 0
            original = Int(read32(block, 0))
            captured = min(original, body - 4, interfaces[0].snapshotLength > 0 ? interfaces[0].snapshotLength : Int.max)
            dataStart = 4
        }
        guard interfaceIndex < interfaces.count, captured >= 0, dataStart + captured <= body else { return nil }
        let interface = interfaces[interfaceIndex]
        let timestamp = Self.timestamp(units, interface)
        return CapturedPacket(
            timestamp: timestamp, linkType: interface.linkType, bytes: block.bytes(dataStart..<(dataStart + captured)),
            originalLength: max(original, captured))
    }

    private static func timestamp(_ units: UInt64, _ interface: Interface) -> CaptureTimestamp {
        var seconds: UInt64, nanoseconds: UInt64
        if interface.decimal {
            let exponent = Int(min(interface.resolution, 19))
            var perSecond: UInt64 = 1
            for _ in 0..<exponent { perSecond *= 10 }
            seconds = units / perSecond
            let fraction = units % perSecond
            if exponent <= 9 {
                var scale: UInt64 = 1
                for _ in 0..<(9 - exponent) { scale *= 10 }
                nanoseconds = fraction * scale
            } else {
                var scale: UInt64 = 1
                for _ in 0..<(exponent - 9) { scale *= 10 }
                nanoseconds = fraction / scale
            }
        } else {
            let shift = UInt64(min(interface.resolution, 63))
            seconds = units >> shift
            let fraction = units & ((1 << shift) - 1)
            nanoseconds = fraction.multipliedFullWidth(by: 1_000_000_000).high << (64 - shift) | (fraction &* 1_000_000_000) >> shift
            nanoseconds = min(nanoseconds, 999_999_999)
        }
        return CaptureTimestamp(
            seconds: Int64(clamping: seconds) &+ interface.offsetSeconds, nanoseconds: UInt32(nanoseconds))
    }

    private func passesFilter(_ packet: CapturedPacket) -> Bool {
        guard let filterExpression else { return true }
        if filters[packet.linkType.rawValue] == nil {
            let snapshot = interfaces.first { $0.linkType == packet.linkType }?.snapshotLength ?? 262_144
            guard case .success(let filter) = BPFFilter.compile(filterExpression, linkType: packet.linkType, snapshotLength: snapshot) else {
                return false
            }
            filters[packet.linkType.rawValue] = filter
        }
        return filters[packet.linkType.rawValue]?.matches(packet) ?? false
    }
}
