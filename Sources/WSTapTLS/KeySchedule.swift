import Crypto
import _CryptoExtras
import Foundation

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
