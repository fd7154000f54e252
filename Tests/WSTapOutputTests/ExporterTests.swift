import Foundation
import Testing
@testable import WSTap
@testable import WSTapOutput
import WSTapCore
@testable import WSTapCapture
@testable import WSTapPackets
@testable import WSTapWebSocket

/// The exporters' reuse of a frame's escaped text for the message that follows it: only for the
/// very frame before, and only a text frame's.
@Suite struct ExporterTextReuseTests {
    static let record = ConnectionRecord(
        id: 1, client: Endpoint(address: .v4(0x0A00_0001), port: 5000),
        server: Endpoint(address: .v4(0x0A00_0002), port: 80), tcpHandshakeSeen: true, startTime: .zero)

    static func frame(_ payload: UnsafeRawBufferPointer, opcode: UInt8) -> TimelineEvent {
        let header = FrameHeader(
            firstByte: 0x80 | opcode, masked: false, payloadLength: UInt64(payload.count), maskingKey: nil,
            headerLength: 2, nonMinimalLength: false, lengthTopBitSet: false)
        return TimelineEvent(connection: record, time: .zero, kind: .frame(FrameRecord(
            direction: .serverToClient, header: header, payload: payload, bytesNotKept: 0,
            bytesMissing: 0, gaps: UnsafeBufferPointer(start: nil, count: 0), carriesText: opcode == 1)))
    }

    static func message(_ payload: UnsafeRawBufferPointer) -> TimelineEvent {
        TimelineEvent(connection: record, time: .zero, kind: .message(MessageRecord(direction: .serverToClient, message: WebSocketMessage(
            opcode: .text, payload: payload, frameCount: 1, compressed: false, isComplete: true,
            isValidUTF8: true, isDecoded: true, isFramePayload: true))))
    }

    /// NDJSON lines for: a text frame and its message, then different bytes at the same address
    /// after a binary frame, then a message alone at that address.
    @Test func aMessageReusesOnlyTheFramesOwnText() throws {
        let output = OutputChannel(inMemory: ())
        let exporter = NDJSONExporter(output: output)
        var bytes = Array("say \"hi\"".utf8)
        bytes.withUnsafeBytes { exporter.receive(Self.frame($0, opcode: 1)) }
        bytes.withUnsafeBytes { exporter.receive(Self.message($0)) }
        // The same buffer, other content (so the same address and length as the cached text).
        for (index, byte) in "other\t\"x".utf8.enumerated() { bytes[index] = byte }
        bytes.withUnsafeBytes { exporter.receive(Self.frame($0, opcode: 2)) }
        bytes.withUnsafeBytes { exporter.receive(Self.message($0)) }
        output.flush()
        let lines = String(decoding: output.memory, as: UTF8.self).split(separator: "\n").map(String.init)
        let texts = lines.compactMap { line -> String? in
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return (object?["payload"] as? [String: Any])?["text"] as? String
        }
        #expect(texts == ["say \"hi\"", "say \"hi\"", "other\t\"x"])
    }
}
