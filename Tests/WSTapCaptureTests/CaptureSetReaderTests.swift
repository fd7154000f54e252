import Foundation
import Testing
import WSTapCore
@testable import WSTapCapture

/// Several files read as one capture: merged by time, numbered as the merged file would be, a
/// damaged file reported without losing the others.
@Suite struct CaptureSetReaderTests {
    typealias Record = PcapRecordReaderTests.Record

    /// Ten packets a second apart, each holding its own index.
    static let records: [Record] = (0..<10).map { Record(seconds: 1_700_000_000 + UInt32($0), fraction: 0, bytes: [UInt8($0)] + Array(repeating: 0, count: 59)) }

    static func file(_ records: [Record]) throws -> String {
        try PcapRecordReaderTests.write(PcapRecordReaderTests.pcapFile(magic: 0xA1B2_C3D4, bigEndian: false, records: records))
    }

    /// What a source delivers: each packet's first byte and number, and the damage it reported.
    static func readAll(_ source: any PacketSource) throws -> (packets: [(index: UInt8, number: UInt64)], damaged: [CaptureError]) {
        var packets: [(UInt8, UInt64)] = []
        var damaged: [CaptureError] = []
        reading: while true {
            switch try source.nextPacket() {
            case .packet(let packet): packets.append((packet.bytes[0], packet.timestamp.packet))
            case .partDamaged(let error): damaged.append(error)
            case .noPacketYet: continue
            case .endOfCapture: break reading
            }
        }
        return (packets, damaged)
    }

    @Test func aRingBufferSetGivenInAnyOrderReadsAsTheWholeCapture() throws {
        let parts = try [Self.file(Array(Self.records[0..<3])), Self.file(Array(Self.records[3..<7])), Self.file(Array(Self.records[7...]))]
        defer { parts.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let (packets, damaged) = try Self.readAll(CaptureSetReader(paths: parts.reversed()))
        #expect(damaged.isEmpty)
        #expect(packets.map(\.index) == Array(0..<10))
        #expect(packets.map(\.number) == Array(1...10))
    }

    @Test func filesThatOverlapInTimeAreMergedPacketByPacket() throws {
        let even = try Self.file(Self.records.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        let odd = try Self.file(Self.records.enumerated().filter { $0.offset % 2 == 1 }.map(\.element))
        defer { [even, odd].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let (packets, _) = try Self.readAll(CaptureSetReader(paths: [odd, even]))
        #expect(packets.map(\.index) == Array(0..<10))
        #expect(packets.map(\.number) == Array(1...10))
    }

    @Test func aFilteredSetKeepsTheNumbersOfTheWholeOne() throws {
        let parts = try [Self.file(Array(Self.records[0..<5])), Self.file(Array(Self.records[5...]))]
        defer { parts.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        // Keeps the packets whose first byte is odd (BPF on the raw link layer: ether[0] & 1).
        let (packets, _) = try Self.readAll(CaptureSetReader(paths: parts, filter: "ether[0] & 1 = 1"))
        #expect(packets.map(\.index) == [1, 3, 5, 7, 9])
        #expect(packets.map(\.number) == [2, 4, 6, 8, 10])
    }

    @Test func aDamagedFileIsReportedAndTheOthersStillRead() throws {
        var cut = PcapRecordReaderTests.pcapFile(magic: 0xA1B2_C3D4, bigEndian: false, records: Array(Self.records[3..<7]))
        cut.removeLast(30)  // the last record is cut off
        let parts = try [Self.file(Array(Self.records[0..<3])), PcapRecordReaderTests.write(cut), Self.file(Array(Self.records[7...]))]
        defer { parts.forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let (packets, damaged) = try Self.readAll(CaptureSetReader(paths: parts))
        #expect(packets.map(\.index) == [0, 1, 2, 3, 4, 5, 7, 8, 9])
        #expect(damaged.count == 1)
        if case .damagedRecord(let path, _, let read, _)? = damaged.first {
            #expect(path == parts[1] && read == 3)
        } else {
            Issue.record("want damagedRecord, got \(damaged)")
        }
    }

    @Test func aDirectoryIsListedByContentAndWhatIsNotACaptureIsSaid() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wstap-set-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let capture = try Self.file(Self.records)
        try FileManager.default.moveItem(atPath: capture, toPath: directory.appendingPathComponent("no-extension").path)
        try Data("notes".utf8).write(to: directory.appendingPathComponent("README.pcap"))
        let set = try CaptureSetReader(paths: [directory.path])
        #expect(set.paths.count == 1 && set.paths[0].hasSuffix("no-extension"))
        #expect(set.skipped.map(\.path) == [directory.appendingPathComponent("README.pcap").path])
        #expect(try Self.readAll(set).packets.count == 10)
        #expect(throws: CaptureError.self) { try CaptureSetReader(paths: [directory.appendingPathComponent("README.pcap").path]) }
    }
}
