import WSTapCore
import Crypto
import WSTapHTTP

/// The WebSocket fields of an opening handshake (RFC 6455 §4.1-4.2).
public struct WebSocketHandshake: Hashable, Sendable {
    public var key: String?
    public var version: String?
    public var accept: String?
    /// base64(SHA-1(key + GUID)), when the key is present.
    public var expectedAccept: String?
    /// nil when there is no accept to check (no key, no 101, or no accept header).
    public var acceptValid: Bool?
    public var subprotocolsOffered: [String]
    public var subprotocol: String?
    /// Extension offers of the request, one element per comma-separated offer.
    public var extensionsOffered: [String]
    /// Extensions the 101 accepted, one element per comma-separated entry; nil when none.
    public var extensions: [String]?
    /// Versions a 426 response listed in `Sec-WebSocket-Version`.
    public var serverVersions: [String]

    /// RSV bits the accepted extensions give meaning to (RSV1 = 4 for permessage-deflate).
    public var allowedReservedBits: UInt8 {
        var bits: UInt8 = 0
        for element in extensions ?? [] {
            let name = ExtensionOffer(element).name
            bits |= name.caseInsensitiveEquals("permessage-deflate") ? FrameHeader.rsv1Bit : 0b111
        }
        return bits
    }
}

/// One `Sec-WebSocket-Extensions` element: a name and `;`-separated parameters.
public struct ExtensionOffer: Hashable, Sendable {
    public var name: String
    public var parameters: [(name: String, value: String?)]

    public init(_ element: String) {
        let parts = TokenList.split(element, separator: ";")
        name = parts.first ?? ""
        parameters = parts.dropFirst().map { part in
            guard let equals = part.utf8.firstIndex(of: UInt8(ascii: "=")) else { return (part, nil) }
            var value = String(part[part.utf8.index(after: equals)...]).trimmingOptionalWhitespace()
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            return (String(part[..<equals]).trimmingOptionalWhitespace(), value)
        }
    }

    public static func == (lhs: ExtensionOffer, rhs: ExtensionOffer) -> Bool {
        lhs.name == rhs.name && lhs.parameters.elementsEqual(rhs.parameters) { $0 == $1 }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        for parameter in parameters {
            hasher.combine(parameter.name)
            hasher.combine(parameter.value)
        }
    }
}

/// A breach of the opening handshake rules.
public enum HandshakeViolation: Hashable, Sendable {
    case missingKey
    /// The key is not base64 of 16 bytes.
    case invalidKey(String)
    case missingVersion
    case unsupportedVersion(String)
    /// The server answered 426 and listed the versions it supports.
    case versionMismatch(requested: String?, supported: [String])
    case requestNotGET(String)
    case missingAccept
    case badAccept(received: String, expected: String)
    /// The 101 lacks `Upgrade: websocket`.
    case missingUpgradeHeader
    /// The 101 lacks `Connection: upgrade`.
    case missingConnectionHeader
    case unofferedSubprotocol(String)
    case multipleSubprotocols(String)
    /// The names, as `TokenList.listing` writes them (one report for all of them).
    case unofferedExtension(String)
    /// The server refused the upgrade with a final status other than 101 or 426.
    case rejected(status: Int, reason: String)
    /// An HTTP/2 stream opened for WebSocket is not an extended CONNECT (RFC 8441 §4): its
    /// `:method` is not CONNECT or its `:protocol` is not websocket.
    case notExtendedConnect(method: String?, protocol: String?)
    /// A pseudo-header RFC 8441 §4 requires of an extended CONNECT is missing (`:scheme`, `:path`,
    /// `:authority`).
    case missingPseudoHeader(String)
    /// The client used extended CONNECT before the server's SETTINGS enabled it
    /// (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441 §3).
    case connectProtocolNotEnabled

    /// Violations after which a client must fail the connection (RFC 6455 §4.1).
    public var failsConnection: Bool {
        switch self {
        case .missingAccept, .badAccept, .missingUpgradeHeader, .missingConnectionHeader,
             .unofferedSubprotocol, .multipleSubprotocols, .unofferedExtension:
            true
        default:
            false
        }
    }
}

/// Checks a WebSocket opening handshake: the client's request and the server's answer.
public enum HandshakeValidator {
    /// The GUID of RFC 6455 §1.3 appended to the key before hashing.
    public static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// `Sec-WebSocket-Accept` for a given `Sec-WebSocket-Key`.
    public static func acceptValue(forKey key: String) -> String {
        var hasher = Insecure.SHA1()
        var key = key, guid = acceptGUID
        key.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        guid.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        return hasher.finalize().withUnsafeBytes { digest in
            let length = Base64.encodedLength(digest.count)
            return String(unsafeUninitializedCapacity: length) { text in
                Base64.encode(digest, into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(text)[0..<length]))
                return length
            }
        }
    }

    /// Validates an HTTP/1.1 Upgrade: `request` and, when present, `response` (RFC 6455 §4.1-4.2).
    public static func validate(
        request: HTTPRequestHead, response: HTTPResponseHead?
    ) -> (WebSocketHandshake, [HandshakeViolation]) {
        var violations: [HandshakeViolation] = []
        let headers = request.headers
        let key = headers.combinedValue("Sec-WebSocket-Key")
        if request.method != "GET" { violations.append(.requestNotGET(request.method)) }
        if let key {
            if Base64.decode(key)?.count != 16 { violations.append(.invalidKey(key)) }
        } else {
            violations.append(.missingKey)
        }
        var handshake = offer(headers, key: key, violations: &violations)
        guard let response else { return (handshake, violations) }
        switch response.status {
        case 101:
            validateAccept(response.headers, handshake: &handshake, violations: &violations)
            validateNegotiation(response.headers, handshake: &handshake, violations: &violations)
        default:
            validateRefusal(status: response.status, reason: response.reason, response.headers, handshake: &handshake, violations: &violations)
        }
        return (handshake, violations)
    }

    /// Validates a WebSocket over HTTP/2 (RFC 8441 §4-5): the extended CONNECT's header fields
    /// (pseudo-headers included, as HPACK decoded them) and, when present, the response's
    /// `:status` and fields. A 2xx accepts; the key and accept of HTTP/1.1 are not used.
    /// `connectProtocolEnabled`: whether the server's SETTINGS enabled extended CONNECT before
    /// the request (nil when its SETTINGS were not captured).
    public static func validateExtendedConnect(
        request: HTTPHeaders, response: (status: Int, headers: HTTPHeaders)?, connectProtocolEnabled: Bool?
    ) -> (WebSocketHandshake, [HandshakeViolation]) {
        var violations: [HandshakeViolation] = []
        let method = request.combinedValue(":method")
        let upgrade = request.combinedValue(":protocol")
        if method != "CONNECT" || !(upgrade?.caseInsensitiveEquals("websocket") ?? false) {
            violations.append(.notExtendedConnect(method: method, protocol: upgrade))
        }
        for name in [":scheme", ":path", ":authority"] where request.combinedValue(name) == nil {
            violations.append(.missingPseudoHeader(name))
        }
        if connectProtocolEnabled == false { violations.append(.connectProtocolNotEnabled) }
        var handshake = offer(request, key: nil, violations: &violations)
        guard let response else { return (handshake, violations) }
        switch response.status {
        case 200..<300:
            validateNegotiation(response.headers, handshake: &handshake, violations: &violations)
        default:
            validateRefusal(status: response.status, reason: "", response.headers, handshake: &handshake, violations: &violations)
        }
        return (handshake, violations)
    }

    /// The client's offer: version, subprotocols and extensions (the same over HTTP/1.1 and HTTP/2).
    private static func offer(_ headers: HTTPHeaders, key: String?, violations: inout [HandshakeViolation]) -> WebSocketHandshake {
        let version = headers.combinedValue("Sec-WebSocket-Version")
        if let version {
            if version != "13" { violations.append(.unsupportedVersion(version)) }
        } else {
            violations.append(.missingVersion)
        }
        return WebSocketHandshake(
            key: key, version: version, accept: nil, expectedAccept: key.map(acceptValue(forKey:)),
            acceptValid: nil, subprotocolsOffered: headers.tokens("Sec-WebSocket-Protocol"),
            subprotocol: nil, extensionsOffered: headers.tokens("Sec-WebSocket-Extensions"),
            extensions: nil, serverVersions: [])
    }

    /// An answer that does not accept: 426 lists the versions the server supports, another final
    /// status refuses.
    private static func validateRefusal(
        status: Int, reason: String, _ answer: HTTPHeaders, handshake: inout WebSocketHandshake,
        violations: inout [HandshakeViolation]
    ) {
        switch status {
        case 426:
            handshake.serverVersions = answer.tokens("Sec-WebSocket-Version")
            violations.append(.versionMismatch(requested: handshake.version, supported: handshake.serverVersions))
        case 200...:
            violations.append(.rejected(status: status, reason: reason))
        default:
            break
        }
    }

    /// A 101's `Upgrade`, `Connection` and `Sec-WebSocket-Accept` (HTTP/1.1 only).
    private static func validateAccept(
        _ answer: HTTPHeaders, handshake: inout WebSocketHandshake, violations: inout [HandshakeViolation]
    ) {
        if !answer.hasToken("websocket", in: "Upgrade") { violations.append(.missingUpgradeHeader) }
        if !answer.hasToken("upgrade", in: "Connection") { violations.append(.missingConnectionHeader) }
        handshake.accept = answer.combinedValue("Sec-WebSocket-Accept")
        if let accept = handshake.accept, let expected = handshake.expectedAccept {
            let valid = accept.trimmingOptionalWhitespace() == expected
            handshake.acceptValid = valid
            if !valid { violations.append(.badAccept(received: accept, expected: expected)) }
        } else if handshake.accept == nil {
            violations.append(.missingAccept)
        }
    }

    /// The subprotocol and extensions an accepting answer selected, against what was offered.
    private static func validateNegotiation(
        _ answer: HTTPHeaders, handshake: inout WebSocketHandshake, violations: inout [HandshakeViolation]
    ) {
        if let chosen = answer.combinedValue("Sec-WebSocket-Protocol") {
            handshake.subprotocol = chosen
            if TokenList.split(chosen).count > 1 {
                violations.append(.multipleSubprotocols(chosen))
            } else if !handshake.subprotocolsOffered.contains(chosen) {
                violations.append(.unofferedSubprotocol(chosen))
            }
        }
        let accepted = answer.tokens("Sec-WebSocket-Extensions")
        if !accepted.isEmpty {
            handshake.extensions = accepted
            let unoffered = TokenList.notOffered(
                accepted.map { ExtensionOffer($0).name }, offered: handshake.extensionsOffered.map { ExtensionOffer($0).name })
            if !unoffered.isEmpty { violations.append(.unofferedExtension(TokenList.listing(unoffered))) }
        }
    }
}
