import Testing
import TestSupport
import WSTapCore
import WSTapTCP
@testable import WSTap

/// How connections end (issue 27): each outcome from what the peers did, with its close codes,
/// closer and findings.
struct OutcomeTests {
    static let upgraded: [(StreamDirection, [UInt8])] = [
        (.clientToServer, Array(ConnectionChainTests.upgradeRequest.utf8)),
        (.serverToClient, Array(ConnectionChainTests.switchResponse.utf8)),
    ]

    /// Feeds `steps` whole, then ends the connection with `reason`; returns its end and the lines.
    static func end(_ steps: [(StreamDirection, [UInt8])], reason: ConnectionEndReason) -> (ConnectionEnding?, [String]) {
        let feed = ConnectionFeed()
        var time = CaptureTimestamp(seconds: 1, nanoseconds: 0)
        for (direction, bytes) in steps {
            bytes.withUnsafeBytes { feed.connection.receive($0, direction: direction, at: time) }
            time = time.adding(seconds: 1)
        }
        feed.connection.closed(reason: reason, at: time)
        return (feed.events.ends.last?.ending, feed.events.lines)
    }

    /// A Close frame with `code` (none: an empty body), as a peer puts it on the wire.
    static func close(_ code: UInt16?, masked: Bool) -> [UInt8] {
        let body = code.map { [UInt8($0 >> 8), UInt8($0 & 0xFF)] } ?? []
        guard masked else { return [0x88, UInt8(body.count)] + body }
        let key: [UInt8] = [0x11, 0x22, 0x33, 0x44]
        return [0x88, 0x80 | UInt8(body.count)] + key + body.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }

    @Test func bothClosesAreAClean() {
        let (ending, lines) = Self.end(Self.upgraded + [
            (.serverToClient, Self.close(1001, masked: false)), (.clientToServer, Self.close(1001, masked: true)),
        ], reason: .finished)
        #expect(ending?.outcome == .closedCleanly && ending?.tcpEnd == .fin)
        #expect(ending?.websocket?.closedFirst == .server && ending?.websocket?.effectiveCode == 1001)
        #expect(ending?.websocket?.handshakeCompleted == true)
        #expect(!lines.contains { $0.hasPrefix("issue") })
    }

    @Test func finWithoutCloseIsAnAbnormalClosure() {
        let (ending, lines) = Self.end(Self.upgraded + [(.serverToClient, frame(0x1, "hi", masked: false))], reason: .finished)
        #expect(ending?.outcome == .abnormalClosure && ending?.websocket?.effectiveCode == 1006)
        #expect(ending?.websocket?.closedFirst == Closer.none)
        #expect(lines.contains("issue abnormal-closure"))
    }

    @Test func resetAfterOneCloseIsAReset() {
        let (ending, lines) = Self.end(Self.upgraded + [(.serverToClient, Self.close(1011, masked: false))], reason: .reset)
        #expect(ending?.outcome == .reset && ending?.tcpEnd == .rst && ending?.websocket?.effectiveCode == 1011)
        #expect(lines.contains("issue connection-reset") && lines.contains("issue close-error-code"))
    }

    @Test func oneCloseThenFinIsUnanswered() {
        let (ending, lines) = Self.end(Self.upgraded + [(.clientToServer, Self.close(nil, masked: true))], reason: .finished)
        #expect(ending?.outcome == .closeUnanswered && ending?.websocket?.closedFirst == .client)
        #expect(ending?.websocket?.effectiveCode == 1005, "a Close without a code is 1005")
        #expect(lines.contains("issue close-unanswered"))
    }

    @Test func stillOpenAtTheEndAndIdle() {
        #expect(Self.end(Self.upgraded, reason: .endOfCapture).0?.outcome == .openAtEnd)
        #expect(Self.end(Self.upgraded, reason: .idleTimeout).0?.outcome == .idleEvicted)
        #expect(Self.end(Self.upgraded, reason: .evicted).0?.tcpEnd == TCPEnd.none)
    }

    /// A pong answers the ping with its payload and every ping before it; a ping nobody answered
    /// is counted for its sender.
    @Test func pingsWithoutAPongAreCounted() {
        let (ending, lines) = Self.end(Self.upgraded + [
            (.clientToServer, frame(0x9, "p1", masked: true) + frame(0x9, "p2", masked: true)),
            (.serverToClient, frame(0xA, "p2", masked: false) + frame(0x9, "s1", masked: false)),
            (.clientToServer, frame(0x9, "p3", masked: true) + Self.close(1000, masked: true)),
            (.serverToClient, Self.close(1000, masked: false)),
        ], reason: .finished)
        #expect(ending?.outcome == .closedCleanly)
        #expect(ending?.websocket?.unansweredPings == DirectionPair(1))
        #expect(lines.filter { $0 == "issue pings-unanswered" }.count == 2)
    }

    @Test func upgradesThatDidNotSwitch() {
        let refused = Self.end([
            (.clientToServer, Array(ConnectionChainTests.upgradeRequest.utf8)),
            (.serverToClient, Array("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".utf8)),
        ], reason: .finished).0
        #expect(refused?.outcome == .refused && refused?.websocket == nil)
        let unanswered = Self.end([(.clientToServer, Array(ConnectionChainTests.upgradeRequest.utf8))], reason: .finished).0
        #expect(unanswered?.outcome == .noResponse)
        let plain = Self.end([(.clientToServer, Array("GET / HTTP/1.1\r\n\r\n".utf8))], reason: .finished).0
        #expect(plain?.outcome == .http)
    }
}
