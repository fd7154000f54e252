import Foundation
import Testing
@testable import WSTap

/// The summary is a fold over events that merges: analyzers that each see some connections' packets
/// (flow shards) give summaries whose merge is the summary of one analyzer that sees them all.
struct SummaryMergeTests {
    static let captures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("captures")

    final class Discard: TimelineSink {
        func receive(_ event: TimelineEvent) {}
        func finish(_ summary: CaptureSummary) {}
    }

    /// The records of a classic pcap file (Ethernet, little-endian), with their timestamps.
    static func records(_ name: String) throws -> [(time: CaptureTimestamp, bytes: [UInt8])] {
        let data = try [UInt8](Data(contentsOf: captures.appendingPathComponent(name)))
        let nanoseconds = data[0] == 0x4D
        func word(_ offset: Int) -> Int { Int(data[offset]) | Int(data[offset + 1]) << 8 | Int(data[offset + 2]) << 16 | Int(data[offset + 3]) << 24 }
        var records: [(CaptureTimestamp, [UInt8])] = []
        var offset = 24
        while offset + 16 <= data.count {
            let length = word(offset + 8)
            let fraction = UInt32(word(offset + 4))
            records.append((CaptureTimestamp(seconds: Int64(word(offset)), nanoseconds: nanoseconds ? fraction : fraction * 1000),
                            Array(data[(offset + 16)..<(offset + 16 + length)])))
            offset += 16 + length
        }
        return records
    }

    static func summary(of records: [(time: CaptureTimestamp, bytes: [UInt8])]) -> CaptureSummary {
        let analyzer = Analyzer(sink: Discard())
        for record in records {
            record.bytes.withUnsafeBytes {
                analyzer.process(CapturedPacket(timestamp: record.time, linkType: .ethernet, bytes: $0, originalLength: $0.count))
            }
        }
        return analyzer.finish()
    }

    /// Frame headers may claim up to 2^63 bytes each: the totals stop at the largest number
    /// instead of wrapping round to a small one.
    @Test func payloadTotalsDoNotWrap() {
        var counters = ConnectionCounters()
        counters.countFrame(.binary, payloadLength: 1 << 63)
        counters.countFrame(.binary, payloadLength: 1 << 63)
        counters.countFrame(.binary, payloadLength: 5)
        #expect(counters.framePayloadBytes == .max)
        var summary = CaptureSummary()
        summary.add(counters)
        summary.add(counters)
        #expect(summary.framePayloadBytes == .max)
    }

    @Test(arguments: ["rejected.pcap", "ping-close-codes.pcap", "deflate-window-bits.pcap"])
    func shardsMergeIntoTheWholeSummary(_ name: String) throws {
        let records = try Self.records(name)
        // Ethernet (14) + IPv4 (20): the TCP ports; the same pair in both directions.
        func flow(_ bytes: [UInt8]) -> Set<Int> { [Int(bytes[34]) << 8 | Int(bytes[35]), Int(bytes[36]) << 8 | Int(bytes[37])] }
        var flows: [Set<Int>] = []
        for record in records where !flows.contains(flow(record.bytes)) { flows.append(flow(record.bytes)) }
        try #require(flows.count >= 2, "the capture needs several connections")
        let firstShard = Set(flows.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        var merged = Self.summary(of: records.filter { firstShard.contains(flow($0.bytes)) })
        merged.merge(Self.summary(of: records.filter { !firstShard.contains(flow($0.bytes)) }))
        let whole = Self.summary(of: records)
        #expect(merged == whole)
        #expect(whole.frames > 0 || whole.upgradesByOutcome["rejected", default: 0] > 0)
    }
}
