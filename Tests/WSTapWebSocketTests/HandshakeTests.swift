import Testing
import WSTapHTTP
@testable import WSTapWebSocket

func head(_ lines: [String]) -> HTTPHeaders {
    HTTPHeaders(lines.map { line in
        let parts = line.split(separator: ":", maxSplits: 1)
        return HTTPHeader(name: String(parts[0]), value: String(parts[1]).trimmingOptionalWhitespace())
    })
}

struct HandshakeTests {
    let request = HTTPRequestHead(method: "GET", target: "/chat", version: "HTTP/1.1", headers: head([
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: superchat",
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
    ]))

    func response(_ status: Int = 101, _ lines: [String]) -> HTTPResponseHead {
        HTTPResponseHead(version: "HTTP/1.1", status: status, reason: "", headers: head(lines))
    }

    @Test func validHandshake() {
        let (handshake, violations) = HandshakeValidator.validate(request: request, response: response(101, [
            "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
            "Sec-WebSocket-Protocol: superchat", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10",
        ]))
        #expect(violations.isEmpty)
        #expect(handshake.acceptValid == true)
        #expect(handshake.subprotocolsOffered == ["chat", "superchat"] && handshake.subprotocol == "superchat")
        #expect(handshake.allowedReservedBits == 0b100)
    }

    @Test func everyResponseRuleIsChecked() {
        let (handshake, violations) = HandshakeValidator.validate(request: request, response: response(101, [
            "Sec-WebSocket-Accept: wrong", "Sec-WebSocket-Protocol: other", "Sec-WebSocket-Extensions: x-webkit-deflate-frame",
        ]))
        #expect(handshake.acceptValid == false)
        #expect(violations == [
            .missingUpgradeHeader, .missingConnectionHeader,
            .badAccept(received: "wrong", expected: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            .unofferedSubprotocol("other"), .unofferedExtension("'x-webkit-deflate-frame'"),
        ])
        #expect(violations.allSatisfy { $0.failsConnection })
    }

    @Test func requestRulesAndVersionMismatch() {
        let bad = HTTPRequestHead(method: "POST", target: "/", version: "HTTP/1.1", headers: head([
            "Upgrade: websocket", "Connection: upgrade", "Sec-WebSocket-Key: c2hvcnQ=", "Sec-WebSocket-Version: 8",
        ]))
        let (handshake, violations) = HandshakeValidator.validate(
            request: bad, response: response(426, ["Sec-WebSocket-Version: 13, 8"]))
        #expect(violations == [
            .requestNotGET("POST"), .invalidKey("c2hvcnQ="), .unsupportedVersion("8"),
            .versionMismatch(requested: "8", supported: ["13", "8"]),
        ])
        #expect(handshake.serverVersions == ["13", "8"])
        let (_, refused) = HandshakeValidator.validate(request: request, response: response(403, []))
        #expect(refused == [.rejected(status: 403, reason: "")])
    }

    @Test func deflateParametersAreNegotiatedPerDirection() {
        let offers = [ExtensionOffer("permessage-deflate; client_max_window_bits")]
        let (parameters, problems) = PerMessageDeflateParameters.negotiate(
            accepted: ExtensionOffer("permessage-deflate; client_no_context_takeover; server_max_window_bits=\"9\"; client_max_window_bits=15"),
            offers: offers)
        #expect(problems.isEmpty)
        #expect(parameters.resetsContext(for: .client) && !parameters.resetsContext(for: .server))
        #expect(parameters.serverMaxWindowBits == 9 && parameters.clientMaxWindowBits == 15)
        let (_, bad) = PerMessageDeflateParameters.negotiate(
            accepted: ExtensionOffer("permessage-deflate; server_max_window_bits=16; mystery; mystery; client_max_window_bits=10"),
            offers: [ExtensionOffer("permessage-deflate")])
        #expect(bad == [
            .invalidValue("server_max_window_bits", "16"), .unknownParameter("mystery"),
            .duplicateParameter("mystery"), .unknownParameter("mystery"), .unofferedParameter("client_max_window_bits"),
        ])
    }
}

/// WebSocket over HTTP/2 (RFC 8441): the extended CONNECT's pseudo-headers, a 2xx accepting, and
/// the same subprotocol and extension negotiation as over HTTP/1.1.
struct ExtendedConnectTests {
    static func fields(_ pairs: [(String, String)]) -> HTTPHeaders {
        HTTPHeaders(pairs.map { HTTPHeader(name: $0.0, value: $0.1) })
    }

    let request = fields([
        (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":path", "/chat"),
        (":authority", "example.com"), ("sec-websocket-version", "13"), ("sec-websocket-protocol", "chat, superchat"),
        ("sec-websocket-extensions", "permessage-deflate"),
    ])

    @Test func aValidExtendedConnectIsAcceptedByA200() {
        let (handshake, violations) = HandshakeValidator.validateExtendedConnect(
            request: request,
            response: (200, Self.fields([(":status", "200"), ("sec-websocket-protocol", "chat"), ("sec-websocket-extensions", "permessage-deflate")])),
            connectProtocolEnabled: true)
        #expect(violations.isEmpty)
        #expect(handshake.subprotocol == "chat" && handshake.extensions == ["permessage-deflate"])
        #expect(handshake.key == nil && handshake.acceptValid == nil, "no key or accept over HTTP/2")
        #expect(handshake.allowedReservedBits == FrameHeader.rsv1Bit)
    }

    @Test func pseudoHeadersAndSettingsAreChecked() {
        let plain = Self.fields([(":method", "GET"), (":path", "/chat"), ("sec-websocket-version", "8")])
        let (_, violations) = HandshakeValidator.validateExtendedConnect(request: plain, response: nil, connectProtocolEnabled: false)
        #expect(violations == [
            .notExtendedConnect(method: "GET", protocol: nil), .missingPseudoHeader(":scheme"),
            .missingPseudoHeader(":authority"), .connectProtocolNotEnabled, .unsupportedVersion("8"),
        ])
    }

    @Test func anythingButA2xxRefuses() {
        let (handshake, refused) = HandshakeValidator.validateExtendedConnect(
            request: request, response: (426, Self.fields([("sec-websocket-version", "13")])), connectProtocolEnabled: nil)
        #expect(refused == [.versionMismatch(requested: "13", supported: ["13"])] && handshake.serverVersions == ["13"])
        let (_, forbidden) = HandshakeValidator.validateExtendedConnect(request: request, response: (403, HTTPHeaders()), connectProtocolEnabled: nil)
        #expect(forbidden == [.rejected(status: 403, reason: "")])
        let (_, unoffered) = HandshakeValidator.validateExtendedConnect(
            request: request, response: (200, Self.fields([("sec-websocket-protocol", "mqtt")])), connectProtocolEnabled: true)
        #expect(unoffered == [.unofferedSubprotocol("mqtt")])
    }
}
