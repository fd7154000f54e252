import Testing
import TestSupport
import WSTapApplication
import WSTapCore
@testable import WSTap

// Stages registered from outside the chain's file, as docs/architecture.md's recipes say: each is
// one type in this file and one registration in the test.

/// A message stage for plain JSON: each text message that starts like JSON is one application
/// message (`object` or `array`), anything else a finding.
final class PlainJSONDecoder: MessageDecoder {
    func receive(_ input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        guard input.isText, let first = input.payload.first(where: { $0 != 0x20 }) else { return }
        guard first == UInt8(ascii: "{") || first == UInt8(ascii: "[") else {
            return emit(.finding(
                ApplicationFinding(severity: .warning, code: "test-not-json", detail: "message \(input.index) is not JSON"),
                direction: input.direction))
        }
        emit(.message(ApplicationMessage(
            protocolName: "", type: first == UInt8(ascii: "{") ? "object" : "array", direction: input.direction,
            fields: [ApplicationField("value", .json(Array(input.payload)))], messages: input.only, detection: .forced)))
    }
}

/// A multiplexing stage, as HTTP/2 is one: after the client's preface `TAGGED\n`, each direction
/// carries records `[stream id][length][bytes]`; each stream's bytes go through a chain of their
/// own (first bytes → HTTP/1.1 → WebSocket), with the stream's id on every event. A record of
/// length 0 from the client ends its stream.
final class TaggedStreamsStage: Stage {
    static let preface = Array("TAGGED\n".utf8)

    static let probe = FirstBytesProbe(name: "tagged", appliesInsideTLS: true) { first in
        let prefix = Array(first.bytes.prefix(preface.count))
        guard first.direction == .clientToServer, preface.starts(with: prefix) else { return .notMine }
        if prefix.count < preface.count, !first.final { return .needMoreBytes }
        return prefix.count == preface.count ? .decodes(swapRoles: false) { TaggedStreamsStage(stream: $0) } : .notMine
    }

    private let connection: ConnectionContext
    private var prefaceLeft = preface.count
    private var pending = DirectionPair<[UInt8]>([])
    private var streams: [UInt8: (context: StreamContext, stage: Stage)] = [:]

    init(stream: StreamContext) { connection = stream.connection }

    override var phase: ConnectionPhase { .http }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        var bytes = bytes[...]
        if direction == .clientToServer, prefaceLeft > 0 {
            let skipped = min(prefaceLeft, bytes.count)
            prefaceLeft -= skipped
            bytes = bytes.dropFirst(skipped)
        }
        pending[direction] += bytes
        while pending[direction].count >= 2, pending[direction].count >= 2 + Int(pending[direction][1]) {
            let record = pending[direction]
            let (id, length) = (record[0], Int(record[1]))
            pending[direction].removeFirst(2 + length)
            let (context, stage) = streams[id] ?? {
                let context = StreamContext(connection: connection, id: StreamID(UInt32(id)), openedAt: time)
                return (context, ConnectionChain.start(context))
            }()
            if length == 0, direction == .clientToServer {
                stage.finish(at: time)
                context.close(stage: stage, reason: "ended", end: .finished, at: time)
                streams[id] = nil
                continue
            }
            let next = Array(record[2..<(2 + length)]).withUnsafeBytes { stage.receive($0, direction: direction, at: time) }
            streams[id] = (context, next ?? stage)
        }
        return nil
    }

    override func finish(at time: CaptureTimestamp) {
        for id in streams.keys.sorted() {
            guard let (context, stage) = streams[id] else { continue }
            stage.finish(at: time)
            context.close(stage: stage, reason: "connection-closed", end: .endOfCapture, at: time)
        }
        streams = [:]
    }
}

struct RegistryTests {
    /// A message stage for a subprotocol: one registration; its application messages follow the
    /// WebSocket messages they came from, and what it cannot decode is an issue.
    @Test func aMessageStageRegisteredForASubprotocolDecodesItsMessages() {
        var options = AnalyzerOptions()
        options.registerMessageDecoder(subprotocol: "JSON-Test", protocolName: "json-test") { PlainJSONDecoder() }
        let request = ConnectionChainTests.upgradeRequest.replacingOccurrences(
            of: "\r\n\r\n", with: "\r\nSec-WebSocket-Protocol: json-test, other\r\n\r\n")
        let response = ConnectionChainTests.switchResponse.replacingOccurrences(
            of: "\r\n\r\n", with: "\r\nSec-WebSocket-Protocol: json-test\r\n\r\n")
        let lines = ConnectionChainTests.run([
            (.clientToServer, Array(request.utf8)),
            (.serverToClient, Array(response.utf8) + frame(0x1, "{\"a\":1}", masked: false)),
            (.clientToServer, frame(0x1, "hello", masked: true) + frame(0x1, "[2]", masked: true)),
        ], make: { ConnectionFeed(options: options) })
        #expect(lines.filter { $0.hasPrefix("app") || $0.hasPrefix("issue test-") } == [
            "app json-test object s2c [0]", "issue test-not-json", "app json-test array c2s [1]",
        ])
    }

    /// A multiplexing stage: one registration in the first-bytes table; every stream decodes its
    /// own HTTP/1.1 upgrade and WebSocket, its events carry its id, and its end is its own.
    @Test func aMultiplexingStageRegisteredByFirstBytesCarriesStreams() {
        var options = AnalyzerOptions()
        options.stages.firstBytes.insert(TaggedStreamsStage.probe, at: 0)
        func record(_ id: UInt8, _ bytes: [UInt8]) -> [UInt8] { [id, UInt8(bytes.count)] + bytes }
        let request = Array(ConnectionChainTests.upgradeRequest.utf8)
        let response = Array(ConnectionChainTests.switchResponse.utf8)
        let upgradeRequest = stride(from: 0, to: request.count, by: 200).flatMap { record(1, Array(request[$0..<min(request.count, $0 + 200)])) }
        let upgradeResponse = stride(from: 0, to: response.count, by: 200).flatMap { record(1, Array(response[$0..<min(response.count, $0 + 200)])) }
        let lines = ConnectionChainTests.run([
            (.clientToServer, TaggedStreamsStage.preface + upgradeRequest + record(3, Array("GET /plain HTTP/1.1\r\n\r\n".utf8))),
            (.serverToClient, upgradeResponse + record(1, frame(0x1, "one", masked: false))),
            (.clientToServer, record(1, frame(0x1, "two", masked: true)) + record(1, [])),
        ], make: { ConnectionFeed(options: options) })
        #expect(lines.filter { $0.hasPrefix("s") } == [
            "s1 request /chat", "s3 request /plain", "s1 response 101", "s1 frame s2c text", "s1 message s2c one",
            "s1 frame c2s text", "s1 message c2s two", "s1 issue abnormal-closure",
            "s1 stream closed ended websocket frames 2 abnormal-closure", "s3 stream closed connection-closed http frames 0 http",
        ])
        #expect(lines.contains("close http -"))
    }
}
