import Crypto
import _CryptoExtras
import Foundation

/// A TLS cipher suite as wstap knows it: its name, and for the ones it decrypts, how records are
/// protected and which hash the key schedule uses.
public struct CipherSuite: Hashable, Sendable {
    public var code: UInt16

    public init(code: UInt16) { self.code = code }

    /// The record protection of the suites wstap can decrypt.
    enum Protection: Sendable {
        case aesGCM(keyLength: Int)
        case chaCha20Poly1305
        /// TLS 1.2 CBC with HMAC, MAC-then-encrypt or encrypt-then-MAC (RFC 7366).
        case aesCBC(keyLength: Int, mac: MAC)
    }

    enum MAC: Sendable {
        case sha1, sha256, sha384

        var length: Int {
            switch self {
            case .sha1: 20
            case .sha256: 32
            case .sha384: 48
            }
        }
    }

    enum Hash: Sendable {
        case sha256
        case sha384

        var length: Int { self == .sha256 ? 32 : 48 }
    }

    var isCBC: Bool {
        if case .aesCBC? = parameters?.protection { return true }
        return false
    }

    /// IANA name, or the number in hex for one wstap does not know.
    public var name: String {
        Self.known[code]?.name ?? "0x" + String(code, radix: 16, uppercase: true).leftPadded(to: 4)
    }

    /// How records are protected and the key schedule's hash; nil when wstap cannot decrypt it.
    var parameters: (protection: Protection, hash: Hash)? {
        guard let known = Self.known[code], let protection = known.protection else { return nil }
        return (protection, known.hash)
    }

    private static let known: [UInt16: (name: String, protection: Protection?, hash: Hash)] = [
        // TLS 1.3 (RFC 8446 §B.4)
        0x1301: ("TLS_AES_128_GCM_SHA256", .aesGCM(keyLength: 16), .sha256),
        0x1302: ("TLS_AES_256_GCM_SHA384", .aesGCM(keyLength: 32), .sha384),
        0x1303: ("TLS_CHACHA20_POLY1305_SHA256", .chaCha20Poly1305, .sha256),
        0x1304: ("TLS_AES_128_CCM_SHA256", nil, .sha256),
        0x1305: ("TLS_AES_128_CCM_8_SHA256", nil, .sha256),
        // TLS 1.2 AEAD suites (RFC 5288, 5289, 7905)
        0x009C: ("TLS_RSA_WITH_AES_128_GCM_SHA256", .aesGCM(keyLength: 16), .sha256),
        0x009D: ("TLS_RSA_WITH_AES_256_GCM_SHA384", .aesGCM(keyLength: 32), .sha384),
        0x009E: ("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", .aesGCM(keyLength: 16), .sha256),
        0x009F: ("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", .aesGCM(keyLength: 32), .sha384),
        0xC02B: ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", .aesGCM(keyLength: 16), .sha256),
        0xC02C: ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", .aesGCM(keyLength: 32), .sha384),
        0xC02F: ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", .aesGCM(keyLength: 16), .sha256),
        0xC030: ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", .aesGCM(keyLength: 32), .sha384),
        0xCCA8: ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", .chaCha20Poly1305, .sha256),
        0xCCA9: ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", .chaCha20Poly1305, .sha256),
        0xCCAA: ("TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", .chaCha20Poly1305, .sha256),
        // TLS 1.2 CBC suites with HMAC (RFC 5246, 5289)
        0x002F: ("TLS_RSA_WITH_AES_128_CBC_SHA", .aesCBC(keyLength: 16, mac: .sha1), .sha256),
        0x0033: ("TLS_DHE_RSA_WITH_AES_128_CBC_SHA", .aesCBC(keyLength: 16, mac: .sha1), .sha256),
        0x0035: ("TLS_RSA_WITH_AES_256_CBC_SHA", .aesCBC(keyLength: 32, mac: .sha1), .sha256),
        0x0039: ("TLS_DHE_RSA_WITH_AES_256_CBC_SHA", .aesCBC(keyLength: 32, mac: .sha1), .sha256),
        0x003C: ("TLS_RSA_WITH_AES_128_CBC_SHA256", .aesCBC(keyLength: 16, mac: .sha256), .sha256),
        0x003D: ("TLS_RSA_WITH_AES_256_CBC_SHA256", .aesCBC(keyLength: 32, mac: .sha256), .sha256),
        0x0067: ("TLS_DHE_RSA_WITH_AES_128_CBC_SHA256", .aesCBC(keyLength: 16, mac: .sha256), .sha256),
        0x006B: ("TLS_DHE_RSA_WITH_AES_256_CBC_SHA256", .aesCBC(keyLength: 32, mac: .sha256), .sha256),
        0xC009: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", .aesCBC(keyLength: 16, mac: .sha1), .sha256),
        0xC00A: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", .aesCBC(keyLength: 32, mac: .sha1), .sha256),
        0xC013: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", .aesCBC(keyLength: 16, mac: .sha1), .sha256),
        0xC014: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", .aesCBC(keyLength: 32, mac: .sha1), .sha256),
        0xC023: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", .aesCBC(keyLength: 16, mac: .sha256), .sha256),
        0xC024: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", .aesCBC(keyLength: 32, mac: .sha384), .sha384),
        0xC027: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", .aesCBC(keyLength: 16, mac: .sha256), .sha256),
        0xC028: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", .aesCBC(keyLength: 32, mac: .sha384), .sha384),
    ]
}

extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
