import Crypto
import Foundation
import Testing
import WSTap
import WSTapOutput

/// Every capture in captures/ decoded by the library and compared with
/// (1) what the recording peers themselves sent (NAME.peers.json), and
/// (2) the committed expected outputs (NAME.expected.json / NAME.expected.txt).
/// `RECORD_SNAPSHOTS=1 swift test --filter GoldenTests` rewrites the expected outputs.
struct GoldenTests {
    static let capturesDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("captures")

    static let captureNames: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: capturesDirectory.path)) ?? []
        return files.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted()
    }()

    @Test func capturesArePresent() {
        #expect(Self.captureNames.count >= 12, "captures/ should hold the recorded captures")
    }

    @Test(arguments: captureNames)
    func messagesMatchWhatThePeersSent(_ name: String) throws {
        let peers = try PeersLog(Self.capturesDirectory.appendingPathComponent(name))
        let collector = MessageCollector()
        try run(name, sink: collector)
        for direction in ["c2s", "s2c"] {
            if let sent = peers.messages(direction: direction) {
                let decoded = collector.messages.filter { $0.direction == direction }.map(\.summary)
                #expect(decoded == sent, "\(name) \(direction)")
            }
            // Peers that are application libraries logged their protocol's units, not WebSocket
            // messages: each must be decoded once, in order, with its key fields.
            if let logged = peers.applicationMessages(direction: direction) {
                let decoded = collector.applications.filter { $0.direction.label == direction && $0.protocolName != "engine.io" }
                #expect(decoded.map { $0.type.lowercased() } == logged.map { ($0["type"] as? String ?? "?").lowercased() }, "\(name) \(direction)")
                for (message, entry) in zip(decoded, logged) {
                    let values = Set(message.fields.flatMap { flatten($0.value) })
                    for (key, value) in entry where key != "dir" && key != "type" {
                        let wanted = (value as? [String: Any])?.values.map { "\($0)" } ?? ["\(value)"]
                        for text in wanted {
                            #expect(values.contains(text), "\(name) \(direction) \(message.type): \(key) \(text) not in \(values.sorted().prefix(8))")
                        }
                    }
                }
            }
        }
        #expect(peers.hasMessages || peers.hasApplicationMessages, "\(name): its peers log lists neither messages nor application messages")
        if let subprotocol = peers.subprotocol {
            #expect(collector.subprotocols == [subprotocol])
        }
    }

    @Test(arguments: captureNames)
    func jsonOutputMatchesExpected(_ name: String) throws {
        let output = OutputChannel(inMemory: ())
        try run(name, sink: JSONExporter(output: output, maxPayload: 256))
        try compare(output.memory, with: name, suffix: "expected.json")
        let document = try JSONSerialization.jsonObject(with: Data(output.memory)) as? [String: Any]
        #expect(document?["format_version"] as? Int == 1)
    }

    @Test(arguments: captureNames)
    func textOutputMatchesExpected(_ name: String) throws {
        let output = OutputChannel(inMemory: ())
        output.timeOrder = .file  // as `wstap read` writes the timeline
        try run(name, sink: TextExporter(output: output))
        try compare(output.memory, with: name, suffix: "expected.txt")
    }

    @Test func sameInputGivesByteIdenticalJSON() throws {
        let name = try #require(Self.captureNames.first { $0.hasPrefix("fragmented") })
        let first = OutputChannel(inMemory: ()), second = OutputChannel(inMemory: ())
        try run(name, sink: JSONExporter(output: first))
        try run(name, sink: JSONExporter(output: second))
        #expect(first.memory == second.memory)
        #expect(!first.memory.isEmpty)
    }

    /// Decodes a capture; a wss:// capture with the key log its client wrote (NAME.keys).
    private func run(_ name: String, sink: any TimelineSink) throws {
        let capture = Self.capturesDirectory.appendingPathComponent(name)
        let reader = try CaptureFileReader(path: capture.path)
        var options = AnalyzerOptions()
        let keys = capture.deletingPathExtension().appendingPathExtension("keys")
        if FileManager.default.fileExists(atPath: keys.path) {
            options.keyLog = try KeyLog(path: keys.path, source: "--keylog")
        }
        let (_, damage) = analyze(reader, with: Analyzer(options: options, sink: sink))
        #expect(damage == nil)
    }

    private func compare(_ actual: [UInt8], with name: String, suffix: String) throws {
        try compareSnapshot(actual, with: Self.capturesDirectory.appendingPathComponent(name), suffix: suffix)
    }
}

/// Compares output with `CAPTURE.SUFFIX` beside the capture, or rewrites it with RECORD_SNAPSHOTS=1.
func compareSnapshot(_ output: [UInt8], with capture: URL, suffix: String) throws {
        // Paths in messages are made relative to the repository, so any checkout compares equal.
        let root = GoldenTests.capturesDirectory.deletingLastPathComponent().path + "/"
        let actual = Array(String(decoding: output, as: UTF8.self).replacingOccurrences(of: root, with: "").utf8)
        let file = capture.deletingPathExtension().appendingPathExtension(suffix)
        if ProcessInfo.processInfo.environment["RECORD_SNAPSHOTS"] == "1" {
            try Data(actual).write(to: file)
            return
        }
        let expected = try [UInt8](Data(contentsOf: file))
        if actual != expected {
            let actualText = String(decoding: actual, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let expectedText = String(decoding: expected, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let line = zip(actualText, expectedText).enumerated().first { $0.element.0 != $0.element.1 }?.offset
                ?? min(actualText.count, expectedText.count)
            Issue.record("""
                \(file.lastPathComponent) differs at line \(line + 1):
                  got:  \(line < actualText.count ? String(actualText[line].prefix(300)) : "<end>")
                  want: \(line < expectedText.count ? String(expectedText[line].prefix(300)) : "<end>")
                """)
        }
}

/// Keeps a digest of each decoded data message, the negotiated subprotocols and the issue codes.
final class MessageCollector: TimelineSink {
    struct Entry {
        var direction: String
        var summary: String
        var complete: Bool
    }

    private(set) var messages: [Entry] = []
    private(set) var subprotocols: [String] = []
    private(set) var issueCodes: Set<String> = []
    /// Each connection's protocol as its end names it.
    private(set) var protocols: [String] = []
    private(set) var frames = 0
    private(set) var applications: [ApplicationMessage] = []

    func receive(_ event: TimelineEvent) {
        switch event.kind {
        case .application(let message):
            applications.append(message)
        case .message(let record) where record.message.isDecoded:
            let digest = SHA256.hash(data: Array(record.message.payload))
            let hex = digest.map { String(format: "%02x", $0) }.joined()
            messages.append(Entry(
                direction: record.direction.label,
                summary: "\(record.message.opcode.rawValue) \(record.message.payload.count) \(hex)",
                complete: record.message.isComplete))
        case .upgrade(let exchange):
            if let subprotocol = exchange.websocket?.subprotocol { subprotocols.append(subprotocol) }
        case .issue(let issue):
            issueCodes.insert(issue.code)
        case .connectionClosed(let end):
            protocols.append(end.protocolKind.rawValue)
        case .frame:
            frames += 1
        default:
            break
        }
    }

    func finish(_ summary: CaptureSummary) {}
}

/// What a recording's peers logged (NAME.peers.json beside the capture): the messages each sent,
/// as "opcode length sha256", and the subprotocol they agreed on.
struct PeersLog {
    private let sent: [[String: Any]]?
    private let application: [[String: Any]]?
    let subprotocol: String?

    init(_ capture: URL) throws {
        let data = try Data(contentsOf: capture.deletingPathExtension().appendingPathExtension("peers.json"))
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        sent = object?["messages"] as? [[String: Any]]
        application = object?["app"] as? [[String: Any]]
        subprotocol = object?["subprotocol"] as? String
    }

    var hasMessages: Bool { sent != nil }
    var hasApplicationMessages: Bool { application != nil }

    /// The WebSocket messages sent in `direction`; nil when the peers did not log them.
    func messages(direction: String) -> [String]? {
        sent.map { list in
            list.filter { $0["dir"] as? String == direction }.map {
                "\($0["opcode"] ?? "?") \($0["length"] ?? "?") \($0["sha256"] ?? "?")"
            }
        }
    }

    /// The application messages (`{"dir", "type", key fields}`) of `direction`, when logged.
    func applicationMessages(direction: String) -> [[String: Any]]? {
        application.map { list in list.filter { $0["dir"] as? String == direction } }
    }
}

/// Every scalar inside an application field's value, as text (`true`, `1`, `/queue/a`).
func flatten(_ value: ApplicationValue) -> [String] {
    switch value {
    case .null: ["null"]
    case .bool(let flag): ["\(flag)"]
    case .integer(let number): ["\(number)"]
    case .string(let text): [text]
    case .bytes: []
    case .json(let bytes):
        // A JSON string compares as its text (a JSON-RPC id "a" is a).
        bytes.count >= 2 && bytes.first == UInt8(ascii: "\"") && bytes.last == UInt8(ascii: "\"")
            ? [String(decoding: bytes.dropFirst().dropLast(), as: UTF8.self)] : [String(decoding: bytes, as: UTF8.self)]
    case .list(let items): items.flatMap(flatten)
    case .object(let fields): fields.flatMap { flatten($0.value) }
    }
}

/// Damaged and unusual captures made by captures/damage.py from the real recordings, each checked
/// against what its NAME.damage.json says must be recovered and reported.
struct DamagedCaptureTests {
    static let directory = GoldenTests.capturesDirectory.appendingPathComponent("damaged")

    static let captureNames: [String] = {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted()
    }()

    @Test func damagedCapturesArePresent() {
        #expect(Self.captureNames.count >= 15)
    }

    @Test(arguments: captureNames)
    func recoversWhatTheBytesHoldAndReportsTheRest(_ name: String) throws {
        let capture = Self.directory.appendingPathComponent(name)
        let spec = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: capture.deletingPathExtension().appendingPathExtension("damage.json"))) as? [String: Any])
        let sources = (spec["from"] as? [String] ?? []).map { GoldenTests.capturesDirectory.appendingPathComponent($0) }
        let collector = MessageCollector()
        let reader = try CaptureFileReader(path: capture.path)
        let (_, damage) = analyze(reader, with: Analyzer(sink: collector))
        #expect((damage == nil) == (spec["exit"] as? String == "ok"), "exit status of \(name)")
        for code in spec["issues"] as? [String] ?? [] {
            #expect(collector.issueCodes.contains(code), "\(name) should report \(code)")
        }
        for direction in ["c2s", "s2c"] {
            let expected = try sources.flatMap { try PeersLog($0).messages(direction: direction) ?? [] }
            let decoded = collector.messages.filter { $0.direction == direction }
            if spec["messages"] as? String == "same" {
                #expect(decoded.allSatisfy { $0.complete }, "\(name) \(direction): every message complete")
                if sources.count == 1 {
                    #expect(decoded.map(\.summary) == expected, "\(name) \(direction)")
                } else {
                    #expect(decoded.map(\.summary).sorted() == expected.sorted(), "\(name) \(direction)")
                }
            } else {
                // Never wrong data shown as right: each complete message is one the peer sent, in order.
                var remaining = expected[...]
                for message in decoded where message.complete {
                    guard let found = remaining.firstIndex(of: message.summary) else {
                        Issue.record("\(name) \(direction): decoded a message the peers never sent: \(message.summary)")
                        break
                    }
                    remaining = remaining[(found + 1)...]
                }
                #expect(decoded.contains { $0.complete } || expected.isEmpty, "\(name) \(direction): something recovered")
            }
        }
    }

    @Test(arguments: captureNames)
    func outputsMatchExpected(_ name: String) throws {
        let capture = Self.directory.appendingPathComponent(name)
        let json = OutputChannel(inMemory: ()), text = OutputChannel(inMemory: ())
        text.timeOrder = .file
        _ = analyze(try CaptureFileReader(path: capture.path), with: Analyzer(sink: JSONExporter(output: json, maxPayload: 256)))
        _ = analyze(try CaptureFileReader(path: capture.path), with: Analyzer(sink: TextExporter(output: text)))
        try compareSnapshot(json.memory, with: capture, suffix: "expected.json")
        try compareSnapshot(text.memory, with: capture, suffix: "expected.txt")
        // Whatever the damage, the document is JSON, and so is every NDJSON line.
        #expect((try? JSONSerialization.jsonObject(with: Data(json.memory))) != nil, "\(name): JSON does not parse")
        let lines = OutputChannel(inMemory: ())
        lines.timeOrder = .file
        _ = analyze(try CaptureFileReader(path: capture.path), with: Analyzer(sink: NDJSONExporter(output: lines)))
        lines.flush()
        var latest = -Double.infinity
        for line in lines.memory.split(separator: UInt8(ascii: "\n")) {
            let event = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
            #expect(event != nil, "\(name): an NDJSON line does not parse")
            // And the lines are in time order, whatever order the packets and holes came in.
            guard let time = event?["time"] as? Double else { continue }
            #expect(time >= latest, "\(name): NDJSON goes back in time")
            latest = max(latest, time)
        }
    }
}

/// What live output relies on to write at once: while the analyzer says it holds no bytes that
/// could become earlier events, no later packet produces an event earlier than those produced.
struct HeldBytesTests {
    /// Keeps the latest event time and the times of events that came earlier than it.
    final class TimeWatch: TimelineSink {
        var latest: CaptureTimestamp?
        var floor: CaptureTimestamp?
        /// The packet being decoded: one that came out of time order may bring earlier events.
        var packetTime = CaptureTimestamp.zero
        var earlierThanFloor: [CaptureTimestamp] = []

        func receive(_ event: TimelineEvent) {
            guard let time = event.time else { return }
            if let floor, time < min(floor, packetTime) { earlierThanFloor.append(time) }
            latest = max(latest ?? time, time)
        }

        func finish(_ summary: CaptureSummary) {}
    }

    @Test(arguments: DamagedCaptureTests.captureNames.map { "damaged/" + $0 } + GoldenTests.captureNames)
    func nothingEarlierFollowsWhileNothingIsHeld(_ name: String) throws {
        var options = AnalyzerOptions()
        options.tracksHeldBytes = true
        let watch = TimeWatch()
        let analyzer = Analyzer(options: options, sink: watch)
        let reader = try CaptureFileReader(path: GoldenTests.capturesDirectory.appendingPathComponent(name).path)
        var packetsWhileHeld = 0
        while case .packet(let packet) = try? reader.nextPacket() {
            watch.packetTime = packet.timestamp
            analyzer.process(packet)
            if analyzer.holdsBytesForEarlierEvents { packetsWhileHeld += 1 } else { watch.floor = watch.latest }
        }
        #expect(watch.earlierThanFloor.isEmpty, "\(name): events earlier than what was already free to write")
        // The captures with holes and searches do hold bytes for a while: the check above has teeth.
        if ["gap-", "mid-stream"].contains(where: { name.contains($0) }) {
            #expect(packetsWhileHeld > 0, "\(name): nothing was ever held")
        }
    }
}

/// Every issue code the analyzer emitted on the bundled captures is documented.
struct IssueCodeDocumentationTests {
    @Test func emittedCodesAreDocumented() throws {
        let docs = try String(contentsOf: GoldenTests.capturesDirectory.deletingLastPathComponent()
            .appendingPathComponent("docs/issue-codes.md"), encoding: .utf8)
        var codes: Set<String> = []
        let captures = GoldenTests.captureNames.map { GoldenTests.capturesDirectory.appendingPathComponent($0) }
            + DamagedCaptureTests.captureNames.map { DamagedCaptureTests.directory.appendingPathComponent($0) }
        for capture in captures {
            let file = capture.deletingPathExtension().appendingPathExtension("expected.json")
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: /"code":"([a-z0-9-]+)"/) { codes.insert(String(match.1)) }
        }
        #expect(codes.count >= 5)
        for code in codes { #expect(docs.contains("`\(code)`"), "\(code) is not in docs/issue-codes.md") }
    }
}

/// Connections whose start was not captured, built from a recording: roles come from the bytes.
struct RoleTests {
    /// The capture starts with the server's answer, and the server has the higher port, so the
    /// port guess is wrong: the HTTP response bytes must swap the roles.
    @Test func anHTTPResponseFirstSwapsTheGuessedRoles() throws {
        // keepalive.pcap without its SYN, SYN-ACK, ACK and first request (the first data is then
        // "HTTP/1.1 200"), with the server's port 18170 rewritten to 60000.
        let capture = GoldenTests.capturesDirectory.appendingPathComponent("keepalive.pcap")
        let original = try [UInt8](Data(contentsOf: capture))
        var records: [[UInt8]] = []
        var offset = 24
        while offset + 16 <= original.count {
            let length = Int(original[offset + 8]) | Int(original[offset + 9]) << 8 | Int(original[offset + 10]) << 16
            var record = Array(original[offset..<(offset + 16 + length)])
            // Ethernet (14) + IPv4 (20): TCP source and destination ports at 16 + 34 and 16 + 36.
            for port in [50, 52] where record[port] == 0x46 && record[port + 1] == 0xFA {
                (record[port], record[port + 1]) = (0xEA, 0x60)
            }
            records.append(record)
            offset += 16 + length
        }
        // Drop records up to and including the first request (the fourth record).
        let trimmed = Array(original[0..<24]) + records.dropFirst(4).flatMap { $0 }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("role-swap-\(getpid()).pcap")
        try Data(trimmed).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let collector = MessageCollector()
        final class Endpoints: TimelineSink {
            var clients: [UInt16] = []
            func receive(_ event: TimelineEvent) {
                if case .connectionOpened = event.kind, let record = event.connection { clients.append(record.client.port) }
            }
            func finish(_ summary: CaptureSummary) {}
        }
        let endpoints = Endpoints()
        _ = analyze(try CaptureFileReader(path: file.path), with: Analyzer(sink: endpoints))
        _ = analyze(try CaptureFileReader(path: file.path), with: Analyzer(sink: collector))
        #expect(endpoints.clients.count == 1)
        #expect(endpoints.clients.first.map { $0 != 60000 } == true, "the server must not be taken for the client")
        #expect(collector.messages.count == 2, "the WebSocket messages after the upgrade are still decoded")
    }
}
