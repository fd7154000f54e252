import Foundation
import Testing
import TestSupport
import WSTapCore
import WSTapTCP
@testable import WSTap

/// Keeps a line per timeline event.
final class EventLines: TimelineSink {
    private(set) var lines: [String] = []
    private(set) var ends: [ConnectionEnd] = []

    func receive(_ event: TimelineEvent) {
        let stream = event.stream.map { "\($0) " } ?? ""
        switch event.kind {
        case .captureStarted: break
        case .connectionOpened:
            if let record = event.connection { lines.append("open \(record.client.port)->\(record.server.port)") }
        case .upgradeAnswerBody(let body): lines.append("answer body \(String(decoding: body.bytes, as: UTF8.self))")
        case .httpRequest(let head): lines.append("\(stream)request \(head.target)")
        case .httpResponse(let head): lines.append("\(stream)response \(head.status)")
        case .httpExchange(let exchange):
            lines.append("pair \(exchange.request.target) \(exchange.response.map { String($0.status) } ?? "unanswered")")
        case .upgrade(let exchange): lines.append("upgrade \(exchange.outcome) \(exchange.selectedProtocol ?? "-")")
        case .frame(let frame): lines.append("\(stream)frame \(frame.direction.label) \(frame.header.opcode)")
        case .message(let message):
            lines.append("\(stream)message \(message.direction.label) \(String(decoding: message.message.payload, as: UTF8.self))")
        case .application(let message):
            lines.append("\(stream)app \(message.protocolName) \(message.type) \(message.direction.label) \(Array(message.messages))")
        case .issue(let issue): lines.append("\(stream)issue \(issue.code)")
        case .tls(let session): lines.append("tls \(session.version ?? "-") decrypted \(session.decrypted)")
        case .streamClosed(let end):
            lines.append("\(stream)stream closed \(end.reason) \(end.protocolKind.rawValue) frames \(end.totals.frames[0] + end.totals.frames[1]) \(end.ending.outcome.rawValue)")
        case .connectionClosed(let end):
            ends.append(end)
            lines.append("close \(end.protocolKind.rawValue) \(end.websocketDetection?.rawValue ?? "-")")
        }
    }

    func finish(_ summary: CaptureSummary) {}

    /// The lines added since the last call.
    func drain(from index: inout Int) -> ArraySlice<String> {
        defer { index = lines.count }
        return lines[index...]
    }
}

/// A connection driven as a stage, so the shared split feeder can cut its bytes every way.
struct ConnectionFeed: StreamParser {
    let connection: Connection
    let events: EventLines
    private var seen = 0

    init(handshakeSeen: Bool = true, options: AnalyzerOptions = AnalyzerOptions(), clientPort: UInt16 = 50000, serverPort: UInt16 = 8080) {
        events = EventLines()
        let record = ConnectionRecord(
            id: 1, client: Endpoint(address: .v4(0x7F00_0001), port: clientPort),
            server: Endpoint(address: .v4(0x7F00_0001), port: serverPort), tcpHandshakeSeen: handshakeSeen,
            startTime: .zero)
        connection = Connection(context: ConnectionContext(
            record: record, options: options, timeline: TimelineFold(sink: events)))
    }

    mutating func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, emit: (String) -> Void
    ) {
        connection.receive(bytes, direction: direction, at: time)
        events.drain(from: &seen).forEach(emit)
    }

    mutating func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: (String) -> Void) {
        connection.missing(
            MissingRange(startSequence: 0, byteCount: gap.count, cause: gap.cause), direction: direction, at: time)
        events.drain(from: &seen).forEach(emit)
    }

    mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (String) -> Void) {
        if direction == .serverToClient { connection.closed(reason: .finished, at: time) }
        events.drain(from: &seen).forEach(emit)
    }
}

/// Builds a frame as a peer puts it on the wire (client frames masked).
func frame(_ opcode: UInt8, _ text: String, masked: Bool) -> [UInt8] {
    let payload = Array(text.utf8)
    precondition(payload.count < 126)
    guard masked else { return [0x80 | opcode, UInt8(payload.count)] + payload }
    let key: [UInt8] = [0x11, 0x22, 0x33, 0x44]
    return [0x80 | opcode, 0x80 | UInt8(payload.count)] + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
}

struct ConnectionChainTests {
    static let upgradeRequest = "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    static let switchResponse = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"

    static func run(_ steps: [(StreamDirection, [UInt8])], make: @escaping () -> ConnectionFeed = { ConnectionFeed() }) -> [String] {
        let (whole, differing) = SplitFeeder.disagreements(steps, make: make) { .line($0) }
        for (cut, records) in differing.prefix(2) { Issue.record("\(cut): \(records)") }
        return whole.map { if case .line(let line) = $0 { line } else { "?" } }
    }

    /// HTTP hands over to WebSocket at the 101; bytes the client sent before the answer go to
    /// the WebSocket stage too; every cut gives the same timeline.
    @Test func httpHandsOverToWebSocketAfterTheSwitch() {
        let lines = Self.run([
            (.clientToServer, Array(Self.upgradeRequest.utf8) + frame(0x1, "early", masked: true)),
            (.serverToClient, Array(Self.switchResponse.utf8) + frame(0x1, "hi", masked: false)),
            (.clientToServer, frame(0x8, "", masked: true)),
        ])
        #expect(lines == [
            "open 50000->8080", "request /chat", "response 101", "upgrade upgraded websocket", "pair /chat 101",
            "frame c2s text", "message c2s early", "frame s2c text", "message s2c hi", "frame c2s close",
            "issue close-unanswered", "close websocket handshake",
        ])
    }

    @Test func aRefusedUpgradeStaysHTTP() {
        let lines = Self.run([
            (.clientToServer, Array(Self.upgradeRequest.utf8)),
            (.serverToClient, Array("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".utf8)),
            (.clientToServer, Array("GET /next HTTP/1.1\r\n\r\n".utf8)),
        ])
        #expect(lines == [
            "open 50000->8080", "request /chat", "response 403", "issue upgrade-rejected", "upgrade rejected -",
            "pair /chat 403",
            "request /next", "pair /next unanswered", "close http -",
        ])
    }

    @Test func anotherProtocolAfterTheSwitchIsCountedNotDecoded() {
        var feed = ConnectionFeed()
        let steps: [(StreamDirection, [UInt8])] = [
            (.clientToServer, Array("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n".utf8)),
            (.serverToClient, Array("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n".utf8) + [1, 2, 3]),
        ]
        let records = SplitFeeder.feed(steps, to: &feed, cut: .whole) { .line($0) }
        #expect(records.last == .line("close other-upgrade -"))
        #expect(feed.events.ends.first?.totals.upgradedBytes[StreamDirection.serverToClient] == 3)
        #expect(feed.events.ends.first?.totals.frames[StreamDirection.serverToClient] == 0)
    }

    /// Caught mid-way: frames are searched for in both directions; the masking shows the TCP
    /// layer's guess of client and server was wrong, and the roles swap before anything is shown.
    @Test func midStreamFramesDecideTheRoles() {
        var feed = ConnectionFeed(handshakeSeen: false)
        let serverFrames = (0..<8).flatMap { frame(0x1, "s\($0)", masked: false) }
        let clientFrames = (0..<8).flatMap { frame(0x1, "c\($0)", masked: true) }
        // The TCP layer took the server for the client: the server's frames arrive as c2s.
        let steps: [(StreamDirection, [UInt8])] = [(.clientToServer, serverFrames), (.serverToClient, clientFrames)]
        let lines = SplitFeeder.feed(steps, to: &feed, cut: .whole) { .line($0) }.map { "\($0)" }
        #expect(lines.first == "line(\"open 8080->50000\")", "the roles were swapped before the connection was shown")
        #expect(lines.contains("line(\"issue handshake-not-captured\")"))
        #expect(lines.contains("line(\"message s2c s0\")") && lines.contains("line(\"message c2s c7\")"))
        #expect(lines.last == "line(\"close websocket heuristic\")")
    }

    @Test func aWebSocketPortDecodesWithoutAHandshake() {
        var options = AnalyzerOptions()
        options.websocketPorts = [8080]
        var feed = ConnectionFeed(handshakeSeen: false, options: options)
        let steps: [(StreamDirection, [UInt8])] = [(.serverToClient, (0..<6).flatMap { frame(0x2, "b\($0)", masked: false) })]
        let lines = SplitFeeder.feed(steps, to: &feed, cut: .whole) { .line($0) }
        #expect(lines.contains(.line("message s2c b5")))
        #expect(lines.last == .line("close websocket port"))
    }

    @Test func bytesThatAreNoProtocolStayOpaque() {
        let lines = Self.run([(.clientToServer, [0x05, 0x01, 0x00, 0x03, 0x0A, 1, 2, 3, 4, 5])])
        #expect(lines == ["open 50000->8080", "close unknown -"])
    }

    /// A TLS record header is recognised however the first bytes are cut (they are held until
    /// six are there), and a connection that ends inside its ClientHello is TLS, not decrypted.
    @Test func aTLSStartIsRecognisedAtEveryCut() {
        let lines = Self.run([(.clientToServer, [0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])])
        #expect(lines == ["open 50000->8080", "tls - decrypted false", "close tls -"])
    }

    /// A 101 without an Upgrade header: one report of the defect, and the connection is still the
    /// WebSocket it was offered as (its handshake failed, its frames are decoded).
    @Test func aSwitchWithoutUpgradeHeaderIsOneDefectAndStillWebSocket() {
        let lines = Self.run([
            (.clientToServer, Array(Self.upgradeRequest.utf8)),
            (.serverToClient, Array(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").utf8) + frame(0x1, "hi", masked: false)),
        ])
        #expect(lines.filter { $0 == "issue missing-upgrade-header" }.count == 1)
        #expect(lines.contains("upgrade failed -"))
        #expect(lines.contains("message s2c hi"))
        #expect(lines.last == "close websocket handshake")
    }

    /// What a refused upgrade says: the start of its answer's body, however it is framed.
    @Test func theBodyOfARefusalIsShown() {
        for answer in [
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 21\r\n\r\nForbidden: bad origin",
            "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nForbidden\r\nC\r\n: bad origin\r\n0\r\n\r\n",
            "HTTP/1.1 403 Forbidden\r\n\r\nForbidden: bad origin",
        ] {
            let lines = Self.run([(.clientToServer, Array(Self.upgradeRequest.utf8)), (.serverToClient, Array(answer.utf8))])
            #expect(lines.contains("answer body Forbidden: bad origin"), "\(answer)")
        }
    }

    /// Caught mid-way, with one message at a time each way: once one direction's frames decide,
    /// the other's held frames are decided too, and every frame is written in time order, never
    /// regrouped by direction.
    @Test func midStreamFramesAreWrittenInTimeOrderAcrossDirections() {
        var feed = ConnectionFeed(handshakeSeen: false)
        var steps: [(StreamDirection, [UInt8])] = []
        for index in 0..<6 {
            steps.append((.clientToServer, frame(0x1, "c\(index)", masked: true)))
            steps.append((.serverToClient, frame(0x1, "s\(index)", masked: false)))
        }
        let lines = SplitFeeder.feed(steps, to: &feed, cut: .whole) { .line($0) }.compactMap { record -> String? in
            guard case .line(let line) = record, line.hasPrefix("message") else { return nil }
            return line
        }
        let expected = (0..<6).flatMap { ["message c2s c\($0)", "message s2c s\($0)"] }
        #expect(lines == expected)
    }
}

/// A CONNECT tunnel (RFC 9110 §9.3.6): after its 2xx, the tunnel's bytes are a new stream chosen
/// by the first-bytes table again; here an HTTP/1.1 Upgrade to WebSocket inside it.
struct TunnelTests {
    @Test func theBytesOfAnAcceptedConnectAreANewStream() {
        let lines = ConnectionChainTests.run([
            (.clientToServer, Array("CONNECT example.test:80 HTTP/1.1\r\nHost: example.test:80\r\n\r\n".utf8)
                + Array(ConnectionChainTests.upgradeRequest.utf8)),
            (.serverToClient, Array("HTTP/1.1 200 Connection established\r\n\r\n".utf8)
                + Array(ConnectionChainTests.switchResponse.utf8) + frame(0x1, "through the proxy", masked: false)),
            (.clientToServer, frame(0x8, "", masked: true)),
            (.serverToClient, frame(0x8, "", masked: false)),
        ])
        #expect(lines == [
            "open 50000->8080", "request example.test:80", "response 200", "pair example.test:80 200",
            "request /chat", "response 101", "upgrade upgraded websocket", "pair /chat 101",
            "frame s2c text", "message s2c through the proxy", "frame c2s close", "frame s2c close", "close websocket handshake",
        ])
    }

    @Test func aRefusedConnectStaysHTTP() {
        let lines = ConnectionChainTests.run([
            (.clientToServer, Array("CONNECT example.test:443 HTTP/1.1\r\n\r\n".utf8)),
            (.serverToClient, Array("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".utf8)),
            (.clientToServer, Array("GET / HTTP/1.1\r\n\r\n".utf8)),
        ])
        #expect(lines.contains("request /") && lines.last == "close http -")
    }
}
