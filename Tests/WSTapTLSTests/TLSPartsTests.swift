import Testing
import WSTapCore
@testable import WSTapTLS

/// The parts of the TLS stage on their own: the record layer, the handshake reader and the key
/// schedules (with the RFCs' test vectors).
struct TLSRecordLayerTests {
    static func record(_ type: UInt8, _ fragment: [UInt8]) -> [UInt8] {
        [type, 3, 3, UInt8(fragment.count >> 8), UInt8(fragment.count & 0xFF)] + fragment
    }

    /// Records cut anywhere come out whole and in order, once each.
    @Test func recordsComeOutWholeAtEveryCut() {
        let stream = Self.record(22, [1, 2, 3]) + Self.record(23, Array(repeating: 7, count: 300)) + Self.record(21, [1, 0])
        for cut in 0...stream.count {
            var layer = TLSRecordLayer()
            var records: [(UInt8, Int)] = []
            for part in [Array(stream[..<cut]), Array(stream[cut...])] {
                part.withUnsafeBytes { layer.append($0) }
                while case .record(let record) = layer.next() { records.append((record.type.rawValue, record.fragment.count)) }
                layer.compact()
            }
            #expect(records.map(\.0) == [22, 23, 21] && records.map(\.1) == [3, 300, 2], "cut at \(cut)")
            #expect(layer.held == 0)
        }
    }

    @Test func bytesThatAreNoRecordAreSaidToBeSo() {
        var layer = TLSRecordLayer()
        Array("GET / HTTP/1.1\r\n".utf8).withUnsafeBytes { layer.append($0) }
        guard case .malformed(let description) = layer.next() else { return #expect(Bool(false)) }
        #expect(description.hasPrefix("record type 71"))
        var long = TLSRecordLayer()
        [23, 3, 3, 0xFF, 0xFF].withUnsafeBytes { long.append($0) }
        if case .malformed = long.next() {} else { #expect(Bool(false), "a record longer than 2^14 + 2048 is not TLS") }
    }

    /// After a gap, a header is plausible only where a protected record could start.
    @Test func plausibleHeadersAfterAGap() {
        var layer = TLSRecordLayer()
        (Self.record(23, Array(repeating: 0, count: 40)) + Self.record(22, Array(repeating: 0, count: 40))).withUnsafeBytes { layer.append($0) }
        #expect(layer.plausibleRecord(at: 0, tls13: true) == (true, 40))
        #expect(layer.plausibleRecord(at: 45, tls13: true).plausible == false, "TLS 1.3 protects everything as application data")
        #expect(layer.plausibleRecord(at: 45, tls13: false).plausible == true)
        #expect(layer.discard() == 90 && layer.held == 0)
    }
}

struct TLSHandshakeReaderTests {
    static func message(_ type: UInt8, _ body: [UInt8]) -> [UInt8] {
        [type, 0, UInt8(body.count >> 8), UInt8(body.count & 0xFF)] + body
    }

    static func vector(_ length: Int, _ bytes: [UInt8]) -> [UInt8] {
        (length == 2 ? [UInt8(bytes.count >> 8)] : []) + [UInt8(bytes.count & 0xFF)] + bytes
    }

    static func `extension`(_ type: UInt16, _ data: [UInt8]) -> [UInt8] {
        [UInt8(type >> 8), UInt8(type & 0xFF)] + vector(2, data)
    }

    static let alpn = vector(2, vector(1, Array("h2".utf8)) + vector(1, Array("http/1.1".utf8)))

    static let clientHello: [UInt8] = message(1, [3, 3] + Array(repeating: 0xAA, count: 32) + vector(1, []) + vector(2, [0x13, 0x01])
        + vector(1, [0]) + vector(2, `extension`(0, vector(2, [0] + vector(2, Array("example.com".utf8)))) + `extension`(16, alpn)
            + `extension`(42, [])))

    /// A hello split over records, and two messages in one record, are read the same.
    @Test func helloesAcrossRecordsAreRead() {
        var reader = TLSHandshakeReader()
        let half = Self.clientHello.count / 2
        #expect(reader.add(Array(Self.clientHello[..<half]), direction: .clientToServer).messages.isEmpty)
        let (messages, malformed) = reader.add(Array(Self.clientHello[half...]) + Self.message(20, [1, 2]), direction: .clientToServer)
        #expect(malformed == nil && messages.count == 2)
        guard case .clientHello(let hello) = messages.first else { return #expect(Bool(false)) }
        #expect(hello.random == Array(repeating: 0xAA, count: 32))
        #expect(hello.serverName == "example.com" && hello.alpnOffered == ["h2", "http/1.1"] && hello.earlyDataOffered)
        guard case .finished = messages.last else { return #expect(Bool(false)) }
    }

    @Test func serverHelloVersionsAndRetries() {
        var reader = TLSHandshakeReader()
        let selected = Self.vector(2, Self.vector(1, Array("h2".utf8)))
        let hello = Self.message(2, [3, 3] + Array(repeating: 0xBB, count: 32) + Self.vector(1, []) + [0x13, 0x01, 0]
            + Self.vector(2, Self.extension(43, [3, 4]) + Self.extension(16, selected)))
        guard case .serverHello(let server) = reader.add(hello, direction: .serverToClient).messages.first else {
            return #expect(Bool(false))
        }
        #expect(server.version == TLSVersion.tls13 && server.cipherSuite == 0x1301 && server.alpn == .some("h2"))
        let retryRandom: [UInt8] = [
            0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
            0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
        ]
        let retry = Self.message(2, [3, 3] + retryRandom + Self.vector(1, []) + [0x13, 0x01, 0])
        guard case .helloRetryRequest = reader.add(retry, direction: .serverToClient).messages.first else { return #expect(Bool(false)) }
    }

    @Test func anOversizedMessageStopsTheDirection() {
        var reader = TLSHandshakeReader()
        let (messages, malformed) = reader.add([1, 0x10, 0, 0], direction: .clientToServer)
        #expect(messages.isEmpty && malformed == "a handshake message of 1048576 bytes")
    }
}

struct KeyScheduleTests {
    /// RFC 8448 §3: the server's handshake traffic key and IV from its traffic secret.
    @Test func tls13ExpandLabelMatchesRFC8448() {
        let secret = hex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
        #expect(KeySchedule.expandLabel(.sha256, secret: secret, label: "key", length: 16) == hex("3fce516009c21727d0f2e4e86ee403bc"))
        #expect(KeySchedule.expandLabel(.sha256, secret: secret, label: "iv", length: 12) == hex("5d313eb2671276ee13000b30"))
    }

    /// The TLS 1.2 PRF with SHA-256: the test vector published for RFC 5246's P_SHA256.
    @Test func tls12PRFMatchesTheTestVector() {
        let output = KeySchedule.prf(
            .sha256, secret: hex("9bbe436ba940f017b17652849a71db35"), label: "test label",
            seed: hex("a0ba9f936cda311827a6f796ffd5198c"), count: 100)
        #expect(output == hex("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"))
    }

    private func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }
}
