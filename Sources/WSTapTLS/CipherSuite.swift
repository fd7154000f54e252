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

/// Keys and nonces of one direction, and its record sequence number.
struct RecordProtection {
    let protection: CipherSuite.Protection
    let key: SymmetricKey
    /// The full 12-byte IV (TLS 1.3, ChaCha20 in TLS 1.2), or the 4-byte implicit part (AES-GCM in TLS 1.2).
    let iv: [UInt8]
    let tls13: Bool
    /// CBC suites: the HMAC key, and whether the MAC covers the ciphertext (RFC 7366).
    var macKey: SymmetricKey? = nil
    var encryptThenMAC = false
    var sequence: UInt64 = 0

    enum Failure: Error {
        case tooShort
        case authentication
    }

    /// Opens one record's fragment: the plaintext (for TLS 1.3 still with its content type and padding).
    mutating func open(_ fragment: UnsafeRawBufferPointer, header: (type: UInt8, version: UInt16)) throws(Failure) -> [UInt8] {
        defer { sequence &+= 1 }
        if case .aesCBC(_, let mac) = protection { return try openCBC(fragment, header: header, mac: mac) }
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
            case .aesCBC:
                throw Failure.authentication  // opened by openCBC
            }
        } catch {
            throw .authentication
        }
    }

    /// The sequence number and record header the TLS 1.2 MAC covers, with `length`.
    private func macHeader(_ header: (type: UInt8, version: UInt16), length: Int) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: sequence >> (56 - 8 * UInt64($0))) }
            + [header.type, UInt8(header.version >> 8), UInt8(header.version & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF)]
    }

    private func hmac(_ mac: CipherSuite.MAC, _ data: [UInt8]) -> [UInt8] {
        guard let macKey else { return [] }
        switch mac {
        case .sha1: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: data, using: macKey))
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: macKey))
        case .sha384: return Array(HMAC<SHA384>.authenticationCode(for: data, using: macKey))
        }
    }

    /// A TLS 1.2 CBC record: explicit IV, blocks, HMAC and padding; the MAC checked before the
    /// content is used (RFC 5246 §6.2.3.2; RFC 7366 when the MAC comes after the encryption).
    private func openCBC(_ fragment: UnsafeRawBufferPointer, header: (type: UInt8, version: UInt16), mac: CipherSuite.MAC) throws(Failure) -> [UInt8] {
        let bytes = Array(fragment)
        var encrypted = bytes
        if encryptThenMAC {
            guard bytes.count >= 32 + mac.length else { throw .tooShort }
            encrypted = Array(bytes[..<(bytes.count - mac.length)])
            let expected = hmac(mac, macHeader(header, length: encrypted.count) + encrypted)
            guard expected == Array(bytes[(bytes.count - mac.length)...]) else { throw .authentication }
        }
        guard encrypted.count >= 32, encrypted.count % 16 == 0 else { throw .tooShort }
        let blocks: [UInt8]
        do {
            let iv = try AES._CBC.IV(ivBytes: encrypted[0..<16])
            blocks = Array(try AES._CBC.decrypt(encrypted[16...], using: key, iv: iv, noPadding: true))
        } catch {
            throw .authentication
        }
        let padding = Int(blocks[blocks.count - 1])
        let macLength = encryptThenMAC ? 0 : mac.length
        guard padding + 1 + macLength <= blocks.count,
              blocks[(blocks.count - 1 - padding)...].allSatisfy({ Int($0) == padding })
        else { throw .authentication }
        let unpadded = blocks[..<(blocks.count - 1 - padding)]
        if encryptThenMAC { return Array(unpadded) }
        let content = Array(unpadded[..<(unpadded.count - macLength)])
        let expected = hmac(mac, macHeader(header, length: content.count) + content)
        guard expected == Array(unpadded[(unpadded.count - macLength)...]) else { throw .authentication }
        return content
    }

    /// TLS 1.2 AES-GCM: each record carries 8 bytes of nonce.
    var isExplicitNonceGCM: Bool { !tls13 && isAESGCM }

    private var isAESGCM: Bool {
        if case .aesGCM = protection { return true }
        return false
    }
}

/// The key schedules: TLS 1.2's PRF (RFC 5246 §5) and TLS 1.3's HKDF-Expand-Label (RFC 8446 §7.1).
enum KeySchedule {
    /// Both directions' record protection for TLS 1.2, from the master secret and the randoms.
    static func tls12(
        suite: CipherSuite, masterSecret: [UInt8], clientRandom: [UInt8], serverRandom: [UInt8], encryptThenMAC: Bool
    ) -> (client: RecordProtection, server: RecordProtection)? {
        guard let (protection, hash) = suite.parameters else { return nil }
        let (keyLength, ivLength, macLength): (Int, Int, Int)
        switch protection {
        case .aesGCM(let length): (keyLength, ivLength, macLength) = (length, 4, 0)
        case .chaCha20Poly1305: (keyLength, ivLength, macLength) = (32, 12, 0)
        case .aesCBC(let length, let mac): (keyLength, ivLength, macLength) = (length, 16, mac.length)
        }
        // client MAC key, server MAC key, client key, server key, client IV, server IV (RFC 5246 §6.3).
        let block = prf(hash, secret: masterSecret, label: "key expansion", seed: serverRandom + clientRandom,
                        count: 2 * macLength + 2 * keyLength + 2 * ivLength)
        var offset = 0
        func take(_ count: Int) -> [UInt8] {
            defer { offset += count }
            return Array(block[offset..<(offset + count)])
        }
        let (clientMAC, serverMAC) = (take(macLength), take(macLength))
        let (clientKey, serverKey) = (take(keyLength), take(keyLength))
        let (clientIV, serverIV) = (take(ivLength), take(ivLength))
        var client = RecordProtection(protection: protection, key: SymmetricKey(data: clientKey), iv: clientIV, tls13: false)
        var server = RecordProtection(protection: protection, key: SymmetricKey(data: serverKey), iv: serverIV, tls13: false)
        if macLength > 0 {
            client.macKey = SymmetricKey(data: clientMAC)
            server.macKey = SymmetricKey(data: serverMAC)
            client.encryptThenMAC = encryptThenMAC
            server.encryptThenMAC = encryptThenMAC
        }
        return (client, server)
    }

    /// One direction's record protection for TLS 1.3 from a traffic secret.
    static func tls13(suite: CipherSuite, secret: [UInt8]) -> RecordProtection? {
        guard let (protection, hash) = suite.parameters else { return nil }
        let keyLength: Int
        switch protection {
        case .aesGCM(let length): keyLength = length
        case .chaCha20Poly1305: keyLength = 32
        case .aesCBC: return nil  // not a TLS 1.3 protection
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
