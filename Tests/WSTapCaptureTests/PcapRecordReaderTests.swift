import Foundation
import Testing
import WSTapCore
@testable import WSTapCapture

/// The native pcap record reader against hand-built files (every byte order and timestamp
/// resolution, damage of each kind) and against libpcap on every bundled capture.
@Suite struct PcapRecordReaderTests {
    struct Record {
        var seconds: UInt32
        var fraction: UInt32
        var bytes: [UInt8]
        var originalLength: UInt32?
    }

    /// A classic pcap file: `magic` as written in the file's own byte order.
    static func pcapFile(magic: UInt32, bigEndian: Bool, linkType: UInt32 = 1, records: [Record]) -> [UInt8] {
        func word(_ value: UInt32) -> [UInt8] {
            let ordered = bigEndian ? value.bigEndian : value.littleEndian
            return withUnsafeBytes(of: ordered) { Array($0) }
        }
        func half(_ value: UInt16) -> [UInt8] {
            let ordered = bigEndian ? value.bigEndian : value.littleEndian
            return withUnsafeBytes(of: ordered) { Array($0) }
        }
        var file = word(magic) + half(2) + half(4) + word(0) + word(0) + word(262_144) + word(linkType)
        for record in records {
            file += word(record.seconds) + word(record.fraction) + word(UInt32(record.bytes.count))
                + word(record.originalLength ?? UInt32(record.bytes.count)) + record.bytes
        }
        return file
    }

    static func write(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wstap-reader-\(UUID().uuidString).pcap").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Every packet of a file, or the damage that ended it.
    static func readAll(_ path: String) throws -> (packets: [(CaptureTimestamp, [UInt8], Int)], damage: CaptureError?) {
        let reader = try CaptureFileReader(path: path)
        var packets: [(CaptureTimestamp, [UInt8], Int)] = []
        do {
            while case .packet(let packet) = try reader.nextPacket() {
                packets.append((packet.timestamp, Array(packet.bytes), packet.originalLength))
            }
        } catch {
            return (packets, error)
        }
        return (packets, nil)
    }

    static let sample: [Record] = [
        Record(seconds: 1_700_000_000, fraction: 7, bytes: Array(0..<60)),
        Record(seconds: 1_700_000_001, fraction: 999_999, bytes: Array(repeating: 0xAB, count: 1500), originalLength: 9000),
        Record(seconds: 1_700_000_002, fraction: 123_456, bytes: []),
    ]

    @Test(arguments: [(UInt32(0xA1B2_C3D4), false), (0xA1B2_C3D4, true), (0xA1B2_3C4D, false), (0xA1B2_3C4D, true)])
    func readsEveryByteOrderAndResolution(magic: UInt32, bigEndian: Bool) throws {
        let path = try Self.write(Self.pcapFile(magic: magic, bigEndian: bigEndian, records: Self.sample))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (packets, damage) = try Self.readAll(path)
        #expect(damage == nil)
        #expect(packets.count == 3)
        let nanosecondFile = magic == 0xA1B2_3C4D
        for (packet, record) in zip(packets, Self.sample) {
            #expect(packet.0.seconds == Int64(record.seconds))
            #expect(packet.0.nanoseconds == (nanosecondFile ? record.fraction : record.fraction * 1000))
            #expect(packet.1 == record.bytes)
            #expect(packet.2 == Int(record.originalLength ?? UInt32(record.bytes.count)))
        }
    }

    /// A sub-second field of a second or more (a crafted file) carries into the seconds, as the
    /// time it says, instead of a nanosecond count past 10^9 that prints wrongly.
    @Test(arguments: [(UInt32(0xA1B2_C3D4), UInt32(2_500_000)), (0xA1B2_3C4D, 4_294_967_295)])
    func subSecondFieldsOfASecondOrMoreCarry(magic: UInt32, fraction: UInt32) throws {
        let records = [Record(seconds: 100, fraction: fraction, bytes: [1, 2, 3])]
        let path = try Self.write(Self.pcapFile(magic: magic, bigEndian: false, records: records))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (packets, _) = try Self.readAll(path)
        let units: UInt32 = magic == 0xA1B2_3C4D ? 1_000_000_000 : 1_000_000
        #expect(packets.first?.0.seconds == 100 + Int64(fraction / units))
        #expect(packets.first?.0.nanoseconds == fraction % units * (1_000_000_000 / units))
        #expect((packets.first?.0.nanoseconds ?? .max) < 1_000_000_000)
    }

    /// The packets read before the damage, and the damage reported, for a file that has some.
    static func readDamaged(_ file: [UInt8]) throws -> (packets: Int, offset: Int64, packetsRead: Int, reason: String)? {
        let path = try write(file)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (packets, damage) = try readAll(path)
        guard case .damagedRecord(_, let offset, let packetsRead, let reason) = damage else { return nil }
        return (packets.count, offset, packetsRead, reason)
    }

    @Test func reportsARecordCutInItsHeaderWithItsOffset() throws {
        let file = Self.pcapFile(magic: 0xA1B2_C3D4, bigEndian: false, records: Self.sample) + [1, 2, 3, 4, 5]
        let damage = try #require(try Self.readDamaged(file))
        #expect(damage.packets == 3)
        #expect(damage.packetsRead == 3)
        #expect(damage.offset == Int64(file.count - 5))
        #expect(damage.reason.contains("16 header bytes, only got 5"))
    }

    @Test func reportsARecordCutInItsDataWithItsOffset() throws {
        let file = Self.pcapFile(magic: 0xA1B2_C3D4, bigEndian: false, records: Self.sample)
        // Without the last (empty) record and the last byte of the 1500-byte one.
        let damage = try #require(try Self.readDamaged(Array(file.dropLast(16 + 1))))
        #expect(damage.packets == 1)
        #expect(damage.offset == Int64(24 + 16 + 60))
        #expect(damage.reason.contains("tried to read 1500 captured bytes, only got 1499"))
    }

    @Test func refusesALengthFieldPastTheLimitWithoutReadingIt() throws {
        var file = Self.pcapFile(magic: 0xA1B2_C3D4, bigEndian: false, records: Array(Self.sample.prefix(1)))
        for value: UInt32 in [1, 2, 0x7FFF_FFFF, 0x7FFF_FFFF] { file += withUnsafeBytes(of: value.littleEndian) { Array($0) } }
        let damage = try #require(try Self.readDamaged(file))
        #expect(damage.packets == 1)
        #expect(damage.offset == Int64(24 + 16 + 60))
        #expect(damage.reason.contains("bigger than maximum"))
    }

    @Test func aRecordLongerThanOneReadChunkStillArrivesWhole() throws {
        // Records straddle the reader's 1 MiB chunks: 800 records of 60-9000 bytes.
        var records: [Record] = []
        for index in 0..<800 {
            let length = 60 + (index * 7919) % 8941
            records.append(Record(seconds: UInt32(index), fraction: UInt32(index), bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &+ index) }))
        }
        let path = try Self.write(Self.pcapFile(magic: 0xA1B2_C3D4, bigEndian: false, records: records))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (packets, damage) = try Self.readAll(path)
        #expect(damage == nil)
        #expect(packets.map(\.1) == records.map(\.bytes))
    }

    /// Every bundled capture read natively and by libpcap: the same packets, byte for byte.
    @Test func agreesWithLibpcapOnTheBundledCaptures() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("captures")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".pcap") }
        #expect(files.count >= 10)
        for name in files {
            let path = directory.appendingPathComponent(name).path
            let (native, damage) = try Self.readAll(path)
            #expect(damage == nil, "\(name)")
            guard case .success(let stream) = SystemCalls.openStream(path), case .success(let handle) = PcapHandle.openOffline(stream: stream) else {
                Issue.record("libpcap cannot open \(name)")
                continue
            }
            var index = 0
            while case .packet(let packet) = handle.next(linkType: handle.linkType) {
                guard index < native.count else { break }
                #expect(native[index].0 == packet.timestamp, "\(name) #\(index)")
                #expect(native[index].1 == Array(packet.bytes), "\(name) #\(index)")
                #expect(native[index].2 == packet.originalLength, "\(name) #\(index)")
                index += 1
            }
            #expect(index == native.count, "\(name): libpcap read \(index), native \(native.count)")
        }
    }
}
