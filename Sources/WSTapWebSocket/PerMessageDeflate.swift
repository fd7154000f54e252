/// The permessage-deflate parameters a 101 accepted (RFC 7692 §7.1).
public struct PerMessageDeflateParameters: Hashable, Sendable {
    public var serverNoContextTakeover = false
    public var clientNoContextTakeover = false
    public var serverMaxWindowBits: Int?
    public var clientMaxWindowBits: Int?

    public init() {}

    /// Whether messages sent by `role` are compressed without reusing earlier messages' window.
    public func resetsContext(for role: WebSocketRole) -> Bool {
        role == .client ? clientNoContextTakeover : serverNoContextTakeover
    }

    /// Reads an accepted `permessage-deflate` element and checks it against the offers.
    public static func negotiate(
        accepted: ExtensionOffer, offers: [ExtensionOffer]
    ) -> (PerMessageDeflateParameters, [DeflateNegotiationViolation]) {
        var parameters = PerMessageDeflateParameters()
        var violations: [DeflateNegotiationViolation] = []
        var seen: Set<String> = []
        let deflateOffers = offers.filter { $0.name.caseInsensitiveEquals("permessage-deflate") }
        for (rawName, value) in accepted.parameters {
            let name = rawName.lowercased()
            if !seen.insert(name).inserted { violations.append(.duplicateParameter(name)) }
            switch name {
            case "server_no_context_takeover", "client_no_context_takeover":
                if value != nil { violations.append(.invalidValue(name, value ?? "")) }
                if name == "server_no_context_takeover" { parameters.serverNoContextTakeover = true }
                else { parameters.clientNoContextTakeover = true }
            case "server_max_window_bits", "client_max_window_bits":
                guard let value, let bits = Int(value), (8...15).contains(bits), value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    violations.append(.invalidValue(name, value ?? ""))
                    continue
                }
                if name == "server_max_window_bits" { parameters.serverMaxWindowBits = bits }
                else {
                    parameters.clientMaxWindowBits = bits
                    // The server may send client_max_window_bits only if the client offered it (§7.1.2.2).
                    let offered = deflateOffers.contains { $0.parameters.contains { $0.name.caseInsensitiveEquals(name) } }
                    if !deflateOffers.isEmpty, !offered { violations.append(.unofferedParameter(name)) }
                }
            default:
                violations.append(.unknownParameter(name))
            }
        }
        return (parameters, violations)
    }
}

/// A problem in the permessage-deflate answer of a 101.
public enum DeflateNegotiationViolation: Hashable, Sendable {
    case unknownParameter(String)
    case duplicateParameter(String)
    case invalidValue(String, String)
    case unofferedParameter(String)
}

/// How data messages of a connection are compressed, from the accepted extensions.
public enum MessageCompression: Hashable, Sendable {
    case none
    case perMessageDeflate(PerMessageDeflateParameters)
    /// An extension wstap does not decode (e.g. `x-webkit-deflate-frame`): frames are shown, messages are not decoded.
    case unsupported(String)

    /// The compression a handshake's accepted extensions imply, and negotiation problems.
    public static func from(_ handshake: WebSocketHandshake) -> (MessageCompression, [DeflateNegotiationViolation]) {
        guard let accepted = handshake.extensions, !accepted.isEmpty else { return (.none, []) }
        let offers = handshake.extensionsOffered.map(ExtensionOffer.init)
        for element in accepted {
            let offer = ExtensionOffer(element)
            if !offer.name.caseInsensitiveEquals("permessage-deflate") { return (.unsupported(offer.name), []) }
        }
        let (parameters, violations) = PerMessageDeflateParameters.negotiate(
            accepted: ExtensionOffer(accepted[0]), offers: offers)
        return (.perMessageDeflate(parameters), violations)
    }
}
