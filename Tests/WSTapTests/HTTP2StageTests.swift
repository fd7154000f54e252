import NIOCore
import NIOHPACK
import Testing
import TestSupport
import WSTapCore
import WSTapTCP
@testable import WSTap

/// HTTP/2 on hand-built frames (header blocks HPACK-encoded by swift-nio-http2's encoder): an
/// extended CONNECT becomes a WebSocket stream with its own frames and messages, an ordinary
/// request an HTTP exchange on its stream; every cut of the bytes gives the same timeline.
struct HTTP2StageTests {
    static func h2(_ type: UInt8, flags: UInt8 = 0, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(payload.count >> 16 & 0xFF), UInt8(payload.count >> 8 & 0xFF), UInt8(payload.count & 0xFF), type, flags,
         UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    static func block(_ encoder: inout HPACKEncoder, _ fields: [(String, String)]) throws -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        try encoder.encode(headers: HPACKHeaders(fields), to: &buffer)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// SETTINGS with ENABLE_CONNECT_PROTOCOL (8) = 1.
    static let serverSettings = h2(4, stream: 0, [0, 8, 0, 0, 0, 1])

    static func steps() throws -> [(StreamDirection, [UInt8])] {
        var client = HPACKEncoder(allocator: ByteBufferAllocator())
        var server = HPACKEncoder(allocator: ByteBufferAllocator())
        let connect = try block(&client, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"), (":path", "/chat"),
            (":authority", "example.test"), ("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat"),
        ])
        let get = try block(&client, [(":method", "GET"), (":scheme", "http"), (":path", "/hello"), (":authority", "example.test")])
        let accepted = try block(&server, [(":status", "200"), ("sec-websocket-protocol", "chat")])
        let ok = try block(&server, [(":status", "200"), ("content-type", "text/plain")])
        let hello = frame(0x1, "hello over h2", masked: true)
        return [
            (.clientToServer, Self.preface + h2(4, stream: 0, []) + h2(1, flags: 0x4, stream: 1, connect)),
            (.serverToClient, Self.serverSettings + h2(1, flags: 0x4, stream: 1, accepted)),
            // A WebSocket frame cut across two DATA frames, then an ordinary request on stream 3.
            (.clientToServer, h2(0, stream: 1, Array(hello[..<5])) + h2(0, stream: 1, Array(hello[5...]))
                + h2(1, flags: 0x5, stream: 3, get)),
            (.serverToClient, h2(0, stream: 1, frame(0x1, "hi", masked: false)) + h2(1, flags: 0x4, stream: 3, ok)
                + h2(0, flags: 0x1, stream: 3, Array("hello".utf8))),
            (.clientToServer, h2(0, stream: 1, OutcomeTests.close(1000, masked: true))),
            (.serverToClient, h2(0, stream: 1, OutcomeTests.close(1000, masked: false)) + h2(3, stream: 1, [0, 0, 0, 8])),
        ]
    }

    @Test func websocketAndHTTPStreamsOnOneConnection() throws {
        let lines = ConnectionChainTests.run(try Self.steps())
        #expect(lines == [
            "open 50000->8080", "s1 request /chat", "s1 response 200", "pair /chat 200", "upgrade upgraded websocket",
            "s1 frame c2s text", "s1 message c2s hello over h2", "s3 request /hello", "s1 frame s2c text", "s1 message s2c hi",
            "s3 response 200", "pair /hello 200", "s3 stream closed end-stream http frames 0 http",
            "s1 frame c2s close", "s1 frame s2c close", "s1 stream closed rst-stream CANCEL websocket frames 4 closed-cleanly",
            "close http2 -",
        ])
    }

    /// Without SETTINGS_ENABLE_CONNECT_PROTOCOL from the server, an extended CONNECT is reported.
    @Test func extendedConnectBeforeTheServerEnablesItIsReported() throws {
        var steps = try Self.steps()
        steps[1].1 = Array(steps[1].1.dropFirst(Self.serverSettings.count))
        let feed = ConnectionFeed()
        var lines: [String] = []
        for (direction, bytes) in steps { bytes.withUnsafeBytes { feed.connection.receive($0, direction: direction, at: .zero) } }
        feed.connection.closed(reason: .finished, at: .zero)
        lines = feed.events.lines
        #expect(!lines.contains("issue connect-protocol-not-enabled"), "no server SETTINGS seen: not known")
        var withoutConnect = try Self.steps()
        withoutConnect[1].1 = Self.h2(4, stream: 0, [0, 8, 0, 0, 0, 0]) + Array(withoutConnect[1].1.dropFirst(Self.serverSettings.count))
        let disabled = ConnectionFeed()
        for (direction, bytes) in withoutConnect { bytes.withUnsafeBytes { disabled.connection.receive($0, direction: direction, at: .zero) } }
        disabled.connection.closed(reason: .finished, at: .zero)
        #expect(disabled.events.lines.contains("s1 issue connect-protocol-not-enabled"))
    }

    /// A classic CONNECT answered 200 is a tunnel: its DATA is a new connection's bytes (here an
    /// HTTP/1.1 WebSocket upgrade), on the stream. A GOAWAY from the server ends the streams the
    /// client opened above its last stream; the ones below go on.
    @Test func aClassicConnectIsATunnelAndGOAWAYEndsUnprocessedStreams() throws {
        var client = HPACKEncoder(allocator: ByteBufferAllocator())
        var server = HPACKEncoder(allocator: ByteBufferAllocator())
        let connect = try Self.block(&client, [(":method", "CONNECT"), (":authority", "origin.test:80")])
        let get = try Self.block(&client, [(":method", "GET"), (":scheme", "http"), (":path", "/late"), (":authority", "x")])
        let ok = try Self.block(&server, [(":status", "200")])
        let upgrade = Array(ConnectionChainTests.upgradeRequest.utf8)
        let switched = Array(ConnectionChainTests.switchResponse.utf8)
        let goAway = Self.h2(7, stream: 0, [0, 0, 0, 1, 0, 0, 0, 0])  // last stream 1, NO_ERROR
        let lines = ConnectionChainTests.run([
            (.clientToServer, Self.preface + Self.h2(4, stream: 0, []) + Self.h2(1, flags: 0x4, stream: 1, connect)),
            (.serverToClient, Self.serverSettings + Self.h2(1, flags: 0x4, stream: 1, ok)),
            (.clientToServer, Self.h2(0, stream: 1, upgrade) + Self.h2(1, flags: 0x5, stream: 3, get)),
            (.serverToClient, Self.h2(0, stream: 1, switched) + goAway),
            (.clientToServer, Self.h2(0, stream: 1, frame(0x1, "through the tunnel", masked: true))),
        ])
        #expect(lines == [
            "open 50000->8080", "s1 request origin.test:80", "s1 response 200", "pair origin.test:80 200",
            "s1 request /chat", "s3 request /late", "s1 response 101", "upgrade upgraded websocket", "pair /chat 101",
            "issue http2-goaway", "s3 stream closed goaway http frames 0 http",
            "s1 frame c2s text", "s1 message c2s through the tunnel",
            "s1 issue abnormal-closure", "s1 stream closed connection-closed websocket frames 1 abnormal-closure", "close http2 -",
        ])
    }
}
