import Foundation
import Testing
@testable import WSTap
@testable import WSTapOutput
import WSTapCore
@testable import WSTapCapture
@testable import WSTapPackets
@testable import WSTapWebSocket

/// The JSON document is the same whether rendered lists stay in memory or go to the spool, and
/// lists connections in id order whatever order they end in.
@Suite struct JSONSpoolTests {
    static func record(_ id: UInt64) -> ConnectionRecord {
        ConnectionRecord(
            id: id, client: Endpoint(address: .v4(0x0A00_0000 + UInt32(id)), port: 5000),
            server: Endpoint(address: .v4(0x0A00_0002), port: 80), tcpHandshakeSeen: true, startTime: .zero)
    }

    static func time(_ step: Int) -> CaptureTimestamp { CaptureTimestamp(seconds: 1, nanoseconds: UInt32(step)) }

    /// Interleaved connections with HTTP exchanges (some never answered), frames, messages and
    /// issues; six end early (each followed by a new one, numbered next), the rest at the end in
    /// an order that is not their ids'.
    static func events(into exporter: JSONExporter) {
        var connections: [UInt64] = Array(1...30)
        var nextID: UInt64 = 31
        func event(_ id: UInt64, _ step: Int, _ kind: TimelineEvent.Kind) -> TimelineEvent {
            TimelineEvent(connection: record(id), time: time(step), kind: kind)
        }
        for id in connections { exporter.receive(event(id, 0, .connectionOpened)) }
        let request = HTTPRequestHead(method: "GET", target: "/chat", version: "HTTP/1.1", headers: HTTPHeaders([HTTPHeader(name: "Host", value: "x")]))
        let response = HTTPResponseHead(version: "HTTP/1.1", status: 200, reason: "OK", headers: HTTPHeaders())
        for step in 0..<3000 {
            let id = connections[(step * 7) % connections.count]
            let text = Array("message \(step) \"quoted\" \(String(repeating: "x", count: step % 50))".utf8)
            text.withUnsafeBytes { payload in
                let header = FrameHeader(
                    firstByte: 0x81, masked: false, payloadLength: UInt64(payload.count), maskingKey: nil,
                    headerLength: 2, nonMinimalLength: false, lengthTopBitSet: false)
                exporter.receive(event(id, step, .frame(FrameRecord(
                    direction: .serverToClient, header: header, payload: payload, bytesNotKept: 0,
                    bytesMissing: 0, gaps: UnsafeBufferPointer(start: nil, count: 0), carriesText: true))))
                exporter.receive(event(id, step, .message(MessageRecord(direction: .serverToClient, message: WebSocketMessage(
                    opcode: .text, payload: payload, frameCount: 1, compressed: false, isComplete: true,
                    isValidUTF8: true, isDecoded: true)))))
            }
            if step % 10 == 0 {
                exporter.receive(event(id, step, .httpExchange(HTTPExchange(
                    request: request, requestTime: time(step), response: step % 20 == 0 ? response : nil,
                    responseTime: step % 20 == 0 ? time(step) : nil))))
            }
            if step % 97 == 0 {
                exporter.receive(.issue(record(id), Issue(time: time(step), direction: .clientToServer, severity: .warning, code: "tcp-gap", detail: "step \(step)")))
            }
            if step % 500 == 499 {
                let end = ConnectionEnd(time: time(step), reason: .finished, protocolKind: .websocket, websocketDetection: .handshake, totals: ConnectionTotals(), counters: ConnectionCounters(), ending: ConnectionEnding(outcome: .closedCleanly, tcpEnd: .fin, websocket: nil))
                exporter.receive(event(id, step, .connectionClosed(end)))
                connections[(step * 7) % connections.count] = nextID
                exporter.receive(event(nextID, step, .connectionOpened))
                nextID += 1
            }
        }
        for id in connections.reversed() {
            exporter.receive(event(id, 9999, .connectionClosed(ConnectionEnd(
                time: time(9999), reason: .endOfCapture, protocolKind: .websocket, websocketDetection: .handshake, totals: ConnectionTotals(), counters: ConnectionCounters(), ending: ConnectionEnding(outcome: .closedCleanly, tcpEnd: .fin, websocket: nil)))))
        }
        exporter.finish(CaptureSummary())
    }

    @Test func spilledListsReadBackInPlace() throws {
        let inMemory = OutputChannel(inMemory: ())
        let plain = JSONExporter(output: inMemory)
        Self.events(into: plain)
        let spooled = OutputChannel(inMemory: ())
        let spilling = JSONExporter(output: spooled, maxPayload: nil, memoryBudget: 20_000, listBudget: 4_000)
        Self.events(into: spilling)
        #expect(plain.spills == 0)
        #expect(spilling.spills > 100)
        let identical = spooled.memory == inMemory.memory  // (compared first: a failure would print both documents)
        #expect(identical, "the spooled document differs from the one kept in memory")
        // And it is the JSON it claims to be.
        let document = try #require(try JSONSerialization.jsonObject(with: Data(spooled.memory)) as? [String: Any])
        let ids = try #require(document["connections"] as? [[String: Any]]).compactMap { $0["id"] as? Int }
        #expect(ids == Array(1...36))
    }
}
