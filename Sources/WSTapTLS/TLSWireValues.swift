/// TLS record content types (RFC 8446 §5.1, RFC 5246 §6.2.1): wire numbers named once.
public struct TLSContentType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let changeCipherSpec = TLSContentType(rawValue: 20)
    public static let alert = TLSContentType(rawValue: 21)
    public static let handshake = TLSContentType(rawValue: 22)
    public static let applicationData = TLSContentType(rawValue: 23)
    /// RFC 6520: allowed on the wire, ignored here.
    public static let heartbeat = TLSContentType(rawValue: 24)

    /// The four types a record may carry (a stream that starts with another byte is not TLS).
    public static let known: ClosedRange<UInt8> = 20...23
}

/// TLS handshake message types (RFC 8446 §4, RFC 5246 §7.4).
public struct TLSHandshakeType: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let clientHello = TLSHandshakeType(rawValue: 1)
    public static let serverHello = TLSHandshakeType(rawValue: 2)
    public static let encryptedExtensions = TLSHandshakeType(rawValue: 8)
    public static let finished = TLSHandshakeType(rawValue: 20)
    public static let keyUpdate = TLSHandshakeType(rawValue: 24)
}

/// TLS extension types the handshake reader looks at (RFC 8446 §4.2).
enum TLSExtensionType {
    static let serverName: UInt16 = 0
    static let alpn: UInt16 = 16
    static let encryptThenMAC: UInt16 = 22
    static let earlyData: UInt16 = 42
    static let supportedVersions: UInt16 = 43
}

/// TLS protocol versions as their two wire bytes.
enum TLSVersion {
    static let tls12: UInt16 = 0x0303
    static let tls13: UInt16 = 0x0304

    static func name(_ version: UInt16) -> String {
        switch version {
        case 0x0300: "SSL 3.0"
        case 0x0301: "TLS 1.0"
        case 0x0302: "TLS 1.1"
        case tls12: "TLS 1.2"
        case tls13: "TLS 1.3"
        default: "0x" + String(version, radix: 16)
        }
    }
}
