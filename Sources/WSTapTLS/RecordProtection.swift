import Crypto
import _CryptoExtras
import Foundation

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
