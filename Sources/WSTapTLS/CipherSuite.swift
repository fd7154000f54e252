import Crypto

/// A TLS cipher suite as wstap knows it: its name, and for the ones it decrypts, how records are
/// protected and which hash the key schedule uses.
public struct CipherSuite: Hashable, Sendable {
    public var code: UInt16

    public init(code: UInt16) { self.code = code }

    /// The record protection of the suites wstap can decrypt.
    enum Protection: Sendable {
        case aesGCM(keyLength: Int)
        case chaCha20Poly1305
    }

    enum Hash: Sendable {
        case sha256
        case sha384

        var length: Int { self == .sha256 ? 32 : 48 }
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
        // TLS 1.2 CBC suites: named, not decrypted yet.
        0x002F: ("TLS_RSA_WITH_AES_128_CBC_SHA", nil, .sha256),
        0x0035: ("TLS_RSA_WITH_AES_256_CBC_SHA", nil, .sha256),
        0x003C: ("TLS_RSA_WITH_AES_128_CBC_SHA256", nil, .sha256),
        0x003D: ("TLS_RSA_WITH_AES_256_CBC_SHA256", nil, .sha256),
        0xC009: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", nil, .sha256),
        0xC00A: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", nil, .sha256),
        0xC013: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", nil, .sha256),
        0xC014: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", nil, .sha256),
        0xC023: ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", nil, .sha256),
        0xC024: ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", nil, .sha384),
        0xC027: ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", nil, .sha256),
        0xC028: ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", nil, .sha384),
    ]
}

extension String {
    func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}

/// Keys and nonces of one direction, and its record sequence number.
struct RecordProtection {
    let protection: CipherSuite.Protection
    let key: SymmetricKey
    /// The full 12-byte IV (TLS 1.3, ChaCha20 in TLS 1.2), or the 4-byte implicit part (AES-GCM in TLS 1.2).
    let iv: [UInt8]
    let tls13: Bool
    var sequence: UInt64 = 0

    enum Failure: Error {
        case tooShort
        case authentication
    }

    /// Opens one record's fragment: the plaintext (for TLS 1.3 still with its content type and padding).
    mutating func open(_ fragment: UnsafeRawBufferPointer, header: (type: UInt8, version: UInt16)) throws(Failure) -> [UInt8] {
        defer { sequence &+= 1 }
        let explicitNonce = !tls13 && isAESGCM ? 8 : 0
        guard fragment.count >= explicitNonce + 16 else { throw .tooShort }
        var nonce = [UInt8](repeating: 0, count: 12)
        if explicitNonce > 0 {
            nonce[0..<4] = iv[0..<4]
            nonce[4..<12] = ArraySlice(fragment[0..<8])
        } else {
            nonce = iv
            for index in 0..<8 { nonce[4 + index] ^= UInt8(truncatingIfNeeded: sequence >> (56 - 8 * UInt64(index))) }
        }
        let ciphertext = fragment[explicitNonce..<(fragment.count - 16)]
        let tag = fragment[(fragment.count - 16)...]
        var additional: [UInt8]
        if tls13 {
            let length = fragment.count
            additional = [header.type, UInt8(header.version >> 8), UInt8(header.version & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF)]
        } else {
            additional = (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (56 - 8 * UInt64($0))) }
            additional += [header.type, UInt8(header.version >> 8), UInt8(header.version & 0xFF),
                           UInt8(ciphertext.count >> 8), UInt8(ciphertext.count & 0xFF)]
        }
        do {
            switch protection {
            case .aesGCM:
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                return Array(try AES.GCM.open(box, using: key, authenticating: additional))
            case .chaCha20Poly1305:
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ciphertext, tag: tag)
                return Array(try ChaChaPoly.open(box, using: key, authenticating: additional))
            }
        } catch {
            throw .authentication
        }
    }

    private var isAESGCM: Bool {
        if case .aesGCM = protection { return true }
        return false
    }
}

/// The key schedules: TLS 1.2's PRF (RFC 5246 §5) and TLS 1.3's HKDF-Expand-Label (RFC 8446 §7.1).
enum KeySchedule {
    /// Both directions' record protection for TLS 1.2, from the master secret and the randoms.
    static func tls12(
        suite: CipherSuite, masterSecret: [UInt8], clientRandom: [UInt8], serverRandom: [UInt8]
    ) -> (client: RecordProtection, server: RecordProtection)? {
        guard let (protection, hash) = suite.parameters else { return nil }
        let (keyLength, ivLength): (Int, Int)
        switch protection {
        case .aesGCM(let length): (keyLength, ivLength) = (length, 4)
        case .chaCha20Poly1305: (keyLength, ivLength) = (32, 12)
        }
        let block = prf(hash, secret: masterSecret, label: "key expansion", seed: serverRandom + clientRandom,
                        count: 2 * keyLength + 2 * ivLength)
        let clientKey = Array(block[0..<keyLength])
        let serverKey = Array(block[keyLength..<(2 * keyLength)])
        let clientIV = Array(block[(2 * keyLength)..<(2 * keyLength + ivLength)])
        let serverIV = Array(block[(2 * keyLength + ivLength)...])
        return (RecordProtection(protection: protection, key: SymmetricKey(data: clientKey), iv: clientIV, tls13: false),
                RecordProtection(protection: protection, key: SymmetricKey(data: serverKey), iv: serverIV, tls13: false))
    }

    /// One direction's record protection for TLS 1.3 from a traffic secret.
    static func tls13(suite: CipherSuite, secret: [UInt8]) -> RecordProtection? {
        guard let (protection, hash) = suite.parameters else { return nil }
        let keyLength: Int
        switch protection {
        case .aesGCM(let length): keyLength = length
        case .chaCha20Poly1305: keyLength = 32
        }
        let key = expandLabel(hash, secret: secret, label: "key", length: keyLength)
        let iv = expandLabel(hash, secret: secret, label: "iv", length: 12)
        return RecordProtection(protection: protection, key: SymmetricKey(data: key), iv: iv, tls13: true)
    }

    /// The traffic secret after a KeyUpdate (RFC 8446 §7.2).
    static func nextTrafficSecret(suite: CipherSuite, secret: [UInt8]) -> [UInt8]? {
        guard let (_, hash) = suite.parameters else { return nil }
        return expandLabel(hash, secret: secret, label: "traffic upd", length: hash.length)
    }

    static func expandLabel(_ hash: CipherSuite.Hash, secret: [UInt8], label: String, length: Int) -> [UInt8] {
        let fullLabel = Array("tls13 \(label)".utf8)
        let info = [UInt8(length >> 8), UInt8(length & 0xFF), UInt8(fullLabel.count)] + fullLabel + [0]
        let key: SymmetricKey
        switch hash {
        case .sha256: key = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: info, outputByteCount: length)
        case .sha384: key = HKDF<SHA384>.expand(pseudoRandomKey: secret, info: info, outputByteCount: length)
        }
        return key.withUnsafeBytes { Array($0) }
    }

    /// P_hash (RFC 5246 §5) with `label` and `seed`, `count` bytes.
    static func prf(_ hash: CipherSuite.Hash, secret: [UInt8], label: String, seed: [UInt8], count: Int) -> [UInt8] {
        let labelSeed = Array(label.utf8) + seed
        let key = SymmetricKey(data: secret)
        func mac(_ data: [UInt8]) -> [UInt8] {
            switch hash {
            case .sha256: Array(HMAC<SHA256>.authenticationCode(for: data, using: key))
            case .sha384: Array(HMAC<SHA384>.authenticationCode(for: data, using: key))
            }
        }
        var output: [UInt8] = []
        var a = labelSeed
        while output.count < count {
            a = mac(a)
            output += mac(a + labelSeed)
        }
        return Array(output.prefix(count))
    }
}
