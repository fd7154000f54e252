/// TLS record content types (RFC 8446 §5.1, RFC 5246 §6.2.1): wire numbers named once.
public struct TLSContentType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let changeCipherSpec = TLSContentType(rawValue: 20)
    public static let alert = TLSContentType(rawValue: 21)
    public static let handshake = TLSContentType(rawValue: 22)
    public static let applicationData = TLSContentType(rawValue: 23)

    /// The four types a record may carry (a stream that starts with another byte is not TLS).
    public static let known: ClosedRange<UInt8> = 20...23
}

/// TLS handshake message types (RFC 8446 §4, RFC 5246 §7.4).
public struct TLSHandshakeType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let clientHello = TLSHandshakeType(rawValue: 1)
    public static let serverHello = TLSHandshakeType(rawValue: 2)
}
