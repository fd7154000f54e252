import Foundation
import Testing
import WSTap
import WSTapCore
import WSTapOutput
@testable import WSTapTLS

/// The TLS stage on the recorded wss:// captures, whole and damaged, and the key log parser.
struct TLSTests {
    static let directory = GoldenTests.capturesDirectory

    /// The records of a capture: (offset of the TCP payload in the file, its length), from the
    /// pcap's Ethernet/IPv4/TCP headers, in file order.
    static func payloads(_ file: [UInt8]) -> [(offset: Int, length: Int, fromClient: Bool)] {
        var found: [(Int, Int, Bool)] = []
        var offset = 24
        let linkHeader = file[20] == 1 ? 14 : 4  // Ethernet, or loopback's null header
        while offset + 16 <= file.count {
            let length = Int(file[offset + 8]) | Int(file[offset + 9]) << 8 | Int(file[offset + 10]) << 16
            let ip = offset + 16 + linkHeader
            let tcp = ip + Int(file[ip] & 0x0F) * 4
            let payload = tcp + Int(file[tcp + 12] >> 4) * 4
            let end = offset + 16 + length
            let serverPort = Int(file[tcp + 2]) << 8 | Int(file[tcp + 3])
            if payload < end { found.append((payload, end - payload, serverPort != 0 && serverPort < 30000)) }
            offset = end
        }
        return found
    }

    static func decode(_ bytes: [UInt8], keys: String?) throws -> MessageCollector {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wstap-tls-\(UUID()).pcap").path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: path) }
        var options = AnalyzerOptions()
        if let keys { options.keyLog = try KeyLog(path: directory.appendingPathComponent(keys).path, source: "test") }
        let collector = MessageCollector()
        _ = analyze(try CaptureFileReader(path: path), with: Analyzer(options: options, sink: collector))
        return collector
    }

    static func capture(_ name: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: directory.appendingPathComponent(name)))
    }

    /// A changed byte in an application record fails its tag: the record is reported, never shown.
    @Test(arguments: ["wss-tls13-aes256", "wss-tls12-aes128", "wss-tls12-chacha"])
    func aRecordThatDoesNotAuthenticateIsReportedNotShown(_ name: String) throws {
        var bytes = try Self.capture("\(name).pcap")
        let whole = try Self.decode(bytes, keys: "\(name).keys")
        #expect(whole.messages.count == 6 && !whole.issueCodes.contains("tls-record-not-authentic"))
        // The last server payload before the close: an encrypted record of the conversation.
        let serverPayloads = Self.payloads(bytes).filter { !$0.fromClient && $0.length > 40 }
        let target = try #require(serverPayloads.last)
        bytes[target.offset + target.length - 20] ^= 0x01
        let damaged = try Self.decode(bytes, keys: "\(name).keys")
        #expect(damaged.issueCodes.contains("tls-record-not-authentic"))
        #expect(damaged.messages.count < whole.messages.count)
        // Nothing shown differs from what the peers sent: what was decrypted is a prefix.
        let sent = whole.messages.filter { $0.direction == "s2c" }.map(\.summary)
        let shown = damaged.messages.filter { $0.direction == "s2c" }.map(\.summary)
        #expect(Array(sent.prefix(shown.count)) == shown)
    }

    /// A client packet lost among the application records: decryption resumes at the next record
    /// that authenticates (its sequence number found), and WebSocket decoding after it, as for
    /// plaintext: every message after the gap is decoded, in both directions.
    @Test(arguments: ["wss-tls12-aes128", "wss-tls13-aes256", "wss-tls12-cbc-sha384"])
    func decryptionResumesAfterAGap(_ name: String) throws {
        let bytes = try Self.capture("\(name).pcap")
        let whole = try Self.decode(bytes, keys: "\(name).keys")
        // Drop the pcap record of the client's binary message: of its packets carrying
        // application records, the one before the text message and the close (and in TLS 1.3,
        // where alerts are application records too, the close_notify).
        let records = Self.payloads(bytes).filter { $0.fromClient && bytes[$0.offset] == 23 }
        let dropped = records[records.count - (name.contains("tls13") ? 4 : 3)]
        var recordStart = 24
        while true {
            let length = Int(bytes[recordStart + 8]) | Int(bytes[recordStart + 9]) << 8 | Int(bytes[recordStart + 10]) << 16
            if recordStart + 16 + length > dropped.offset { break }
            recordStart += 16 + length
        }
        let recordLength = Int(bytes[recordStart + 8]) | Int(bytes[recordStart + 9]) << 8 | Int(bytes[recordStart + 10]) << 16
        let damaged = try Self.decode(Array(bytes[..<recordStart]) + Array(bytes[(recordStart + 16 + recordLength)...]), keys: "\(name).keys")
        #expect(damaged.issueCodes.contains("tls-gap") && !damaged.issueCodes.contains("tls-record-not-authentic"))
        // Every server message is still there; of the client's, all but the lost one.
        #expect(damaged.messages.filter { $0.direction == "s2c" }.map(\.summary) == whole.messages.filter { $0.direction == "s2c" }.map(\.summary))
        let clientWhole = whole.messages.filter { $0.direction == "c2s" }.map(\.summary)
        let clientDamaged = damaged.messages.filter { $0.direction == "c2s" }.map(\.summary)
        #expect(clientDamaged.first == clientWhole.first)
        if name.contains("tls13") {
            // permessage-deflate with context takeover: what follows the lost message is still framed.
            #expect(damaged.frames > 0)
        } else {
            #expect(clientDamaged == [clientWhole[0], clientWhole[2]])
        }
    }

    /// A TLS 1.2-only client refused by a TLS 1.3-only server: the fatal alert is reported with
    /// its description, and the connection is TLS that was not decrypted.
    @Test func aRefusedHandshakeReportsItsAlert() throws {
        let decoded = try Self.decode(try Self.capture("tls-alert.pcap"), keys: "tls-alert.keys")
        #expect(decoded.issueCodes.contains("tls-alert") && decoded.protocols == ["tls"])
        let output = OutputChannel(inMemory: ())
        let path = Self.directory.appendingPathComponent("tls-alert.pcap").path
        _ = analyze(try CaptureFileReader(path: path), with: Analyzer(sink: TextExporter(output: output)))
        #expect(String(decoding: output.memory, as: UTF8.self).contains("fatal protocol_version (70)"))
    }

    /// Without the key log, or with one that lacks the connection, the connection is named as TLS.
    @Test func withoutKeysTheConnectionIsReportedAsTLS() throws {
        let bytes = try Self.capture("wss-tls13-chacha.pcap")
        let none = try Self.decode(bytes, keys: nil)
        #expect(none.messages.isEmpty && none.protocols == ["tls"])
        let other = try Self.decode(bytes, keys: "wss-tls12-aes128.keys")
        #expect(other.messages.isEmpty && other.issueCodes.contains("tls-no-key"))
    }

    /// A capture that starts after the handshake: TLS, said to be undecryptable, no guesswork.
    @Test func aCaptureStartingAfterTheHandshakeIsSaidToBeUndecryptable() throws {
        var bytes = try Self.capture("wss-tls12-aes256.pcap")
        // Keep the file header and the records from the first application data record on.
        let start = try #require(Self.payloads(bytes).first { bytes[$0.offset] == 23 })
        var recordStart = 24
        while recordStart < start.offset {
            let length = Int(bytes[recordStart + 8]) | Int(bytes[recordStart + 9]) << 8
            if recordStart + 16 + length > start.offset { break }
            recordStart += 16 + length
        }
        bytes = Array(bytes[0..<24]) + Array(bytes[recordStart...])
        let decoded = try Self.decode(bytes, keys: "wss-tls12-aes256.keys")
        #expect(decoded.messages.isEmpty)
        #expect(decoded.issueCodes.contains("tls-handshake-not-captured"))
    }

    /// openssl s_client and s_server: a KeyUpdate between two requests, and a HelloRetryRequest
    /// before the real ServerHello. Every request decrypts.
    @Test(arguments: [
        ("tls13-key-update", ["GET /before-key-update", "GET /after-key-update"]),
        ("tls13-hello-retry", ["GET /after-hello-retry"]),
        ("tls13-early-data", ["GET /first", "GET /after-early-data", "tls-early-data: 2 records"]),
    ])
    func openSSLPeersDecrypt(_ name: String, requests: [String]) throws {
        let path = Self.directory.appendingPathComponent("\(name).pcap").path
        let output = OutputChannel(inMemory: ())
        var options = AnalyzerOptions()
        options.keyLog = try KeyLog(path: Self.directory.appendingPathComponent("\(name).keys").path, source: "test")
        _ = analyze(try CaptureFileReader(path: path), with: Analyzer(options: options, sink: TextExporter(output: output)))
        let text = String(decoding: output.memory, as: UTF8.self)
        for request in requests { #expect(text.contains(request), "\(name): \(request)") }
        #expect(!text.contains("tls-record-not-authentic") && text.contains("decrypted with the key log"))
    }

    @Test func keyLogLinesAreParsedAndBadOnesNumbered() {
        let random = String(repeating: "ab", count: 32)
        let log = KeyLog(text: """
            # comment
            CLIENT_RANDOM \(random) \(String(repeating: "01", count: 48))
            EXPORTER_SECRET \(random) 00
            CLIENT_TRAFFIC_SECRET_0 \(random) zz
            CLIENT_RANDOM short 00

            SERVER_TRAFFIC_SECRET_0 \(random) \(String(repeating: "02", count: 32))
            """)
        let secrets = log.secrets(clientRandom: [UInt8](repeating: 0xAB, count: 32))
        #expect(secrets?.masterSecret == [UInt8](repeating: 1, count: 48))
        #expect(secrets?.serverTraffic0 == [UInt8](repeating: 2, count: 32))
        #expect(secrets?.clientTraffic0 == nil)
        #expect(log.malformedLines.map(\.number) == [4, 5])
    }

    @Test func aKeyLogBeingWrittenIsReadAsItGrows() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wstap-keys-\(UUID()).log").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let random = String(repeating: "cd", count: 32)
        let line = "CLIENT_RANDOM \(random) \(String(repeating: "03", count: 48))\n"
        FileManager.default.createFile(atPath: path, contents: Data(line.prefix(40).utf8))
        let log = try KeyLog(path: path, source: "test")
        let key = [UInt8](repeating: 0xCD, count: 32)
        #expect(log.secrets(clientRandom: key) == nil)  // half a line waits for its end
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(line.dropFirst(40).utf8))
        try handle.close()
        #expect(log.secrets(clientRandom: key, refreshing: true)?.masterSecret == [UInt8](repeating: 3, count: 48))
        #expect(log.malformedLines.isEmpty)
    }

    /// The records of every wss:// capture cut at every offset decode to the same messages.
    @Test func recordsCutAnywhereDecodeTheSame() throws {
        let bytes = try Self.capture("wss-tls13-aes128.pcap")
        let keys = try KeyLog(path: Self.directory.appendingPathComponent("wss-tls13-aes128.keys").path, source: "test")
        // Both directions' TCP payloads, in order, as one conversation.
        let pieces = Self.payloads(bytes).map { (Array(bytes[$0.offset..<($0.offset + $0.length)]), $0.fromClient) }
        func run(cut: Int) -> [String] {
            var decoder = TLSConnectionDecoder(keyLog: keys)
            var plaintext: [String: [UInt8]] = ["c2s": [], "s2c": []]
            for (piece, fromClient) in pieces {
                let direction: StreamDirection = fromClient ? .clientToServer : .serverToClient
                var start = 0
                while start < piece.count {
                    let end = min(piece.count, start + cut)
                    piece[start..<end].withUnsafeBytes {
                        decoder.receive($0, direction: direction, at: .zero) { timed in
                            if case .plaintext(let bytes, let direction) = timed.event { plaintext[direction.label, default: []] += bytes }
                        }
                    }
                    start = end
                }
            }
            return [String(decoding: plaintext["c2s"]!.prefix(60), as: UTF8.self), "\(plaintext["c2s"]!.count)", "\(plaintext["s2c"]!.count)"]
        }
        let whole = run(cut: .max)
        #expect(whole[0].hasPrefix("GET /secure HTTP/1.1"))
        for cut in [1, 2, 3, 5, 7, 100, 1000] { #expect(run(cut: cut) == whole, "cut every \(cut) bytes") }
    }
}
