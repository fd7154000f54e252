import WSTapCore

/// What a TLS connection is, as far as its handshake and the key log show.
public struct TLSSession: Sendable, Equatable {
    /// `TLS 1.3`, `TLS 1.2`, …; nil when no ServerHello was captured.
    public var version: String?
    public var cipherSuite: String?
    /// The ClientHello's `server_name`.
    public var serverName: String?
    /// The protocols the client offered by ALPN, and the one the server chose.
    public var alpnOffered: [String] = []
    public var alpn: String?
    public var decrypted = false
    /// Why it is not decrypted (nil when it is).
    public var reason: String?
    /// TLS record bytes per direction (client to server first).
    public var recordBytes = DirectionPair<UInt64>(0)

    public init() {}
}

/// A finding of the TLS stage.
public enum TLSViolation: Hashable, Sendable {
    /// The key log has no secrets for this connection's client random.
    case noKey
    case unsupportedCipherSuite(String)
    /// Records flow without a captured ClientHello and ServerHello: nothing can be decrypted.
    case handshakeNotCaptured
    /// A record did not authenticate with the keys derived from the key log (wrong key, damaged
    /// bytes): it is not shown, and this direction is no longer decrypted.
    case recordNotAuthentic(sequence: UInt64)
    /// A TLS alert (RFC 8446 §6), in the clear or decrypted.
    case alert(level: UInt8, description: UInt8)
    /// Bytes that are not a TLS record where one should start.
    case malformedRecord(String)
    /// Bytes lost in a direction before its records were protected (the handshake): that
    /// direction can no longer be decrypted.
    case streamGap(bytes: UInt64)
    /// Bytes lost among protected records: decryption resumed at the next record that
    /// authenticated, `records` sequence numbers later.
    case resumedAfterGap(bytes: UInt64, records: UInt64)
    /// Bytes lost among protected records and no later record authenticated within the search
    /// bound (a KeyUpdate may have been lost): that direction is no longer decrypted.
    case notResumedAfterGap(bytes: UInt64)
    /// TLS 1.3 0-RTT data from the client (before the server's Finished): not decrypted; the
    /// records are skipped and counted.
    case earlyDataNotDecrypted(records: UInt64)
}

/// A TLS event and the capture time of the record behind it.
public struct TimedTLSEvent {
    public var event: TLSEvent
    public var time: CaptureTimestamp
}

/// What the TLS stage found, in stream order.
public enum TLSEvent {
    /// The handshake is known (or known to be missing): emitted once per connection.
    case session(TLSSession)
    /// Application data, decrypted; borrowed for the call.
    case plaintext(UnsafeRawBufferPointer, StreamDirection)
    /// About this many plaintext bytes were lost in a gap (exact for AEAD records without padding;
    /// the next plaintext may not start where a unit of the protocol inside does).
    case plaintextGap(UInt64, StreamDirection)
    case violation(TLSViolation, StreamDirection?)
}

/// Names of TLS alert descriptions (RFC 8446 §6).
public enum TLSAlert {
    public static func name(_ description: UInt8) -> String {
        switch description {
        case 0: "close_notify"
        case 10: "unexpected_message"
        case 20: "bad_record_mac"
        case 22: "record_overflow"
        case 40: "handshake_failure"
        case 42: "bad_certificate"
        case 43: "unsupported_certificate"
        case 44: "certificate_revoked"
        case 45: "certificate_expired"
        case 46: "certificate_unknown"
        case 47: "illegal_parameter"
        case 48: "unknown_ca"
        case 49: "access_denied"
        case 50: "decode_error"
        case 51: "decrypt_error"
        case 70: "protocol_version"
        case 71: "insufficient_security"
        case 80: "internal_error"
        case 86: "inappropriate_fallback"
        case 90: "user_canceled"
        case 109: "missing_extension"
        case 110: "unsupported_extension"
        case 112: "unrecognized_name"
        case 113: "bad_certificate_status_response"
        case 115: "unknown_psk_identity"
        case 116: "certificate_required"
        case 120: "no_application_protocol"
        default: "unknown"
        }
    }
}
