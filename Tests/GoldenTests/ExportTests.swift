import Crypto
import Foundation
import Testing
import WSTap
import WSTapParallel
import WSTapOutput

/// Decodes a capture of captures/ (with NAME.keys when there is one) into `sink`.
func decodeCapture(_ name: String, sink: any TimelineSink) throws {
    let capture = GoldenTests.capturesDirectory.appendingPathComponent(name)
    var options = AnalyzerOptions()
    let keys = capture.deletingPathExtension().appendingPathExtension("keys")
    if FileManager.default.fileExists(atPath: keys.path) {
        options.keyLog = try KeyLog(path: keys.path, source: "--keylog")
    }
    let (_, damage) = analyze(try CaptureFileReader(path: capture.path), with: Analyzer(options: options, sink: sink))
    #expect(damage == nil)
}

func digest(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}

/// HAR 1.2 (`--format har`): every required field, and `_webSocketMessages` equal to the data
/// messages the peers sent, in order, with their opcode.
struct HARExportTests {
    @Test(arguments: GoldenTests.captureNames)
    func webSocketMessagesAreWhatThePeersSent(_ name: String) throws {
        let output = OutputChannel(inMemory: ())
        try decodeCapture(name, sink: HARExporter(output: output))
        let document = try #require(try JSONSerialization.jsonObject(with: Data(output.memory)) as? [String: Any])
        let log = try #require(document["log"] as? [String: Any])
        #expect(log["version"] as? String == "1.2")
        #expect((log["creator"] as? [String: Any])?["name"] as? String == "wstap")
        let entries = try #require(log["entries"] as? [[String: Any]])
        var sent: [String: [String]] = ["c2s": [], "s2c": []]
        var timed: [String: [(Double, String)]] = [:]
        var previousStart = ""
        for entry in entries {
            let started = try #require(entry["startedDateTime"] as? String)
            #expect(started >= previousStart, "\(name): entries in order of start")
            previousStart = started
            #expect(started.hasSuffix("Z") && started.contains("T"))
            #expect(entry["time"] is NSNumber && entry["cache"] is [String: Any])
            let timings = try #require(entry["timings"] as? [String: Any])
            for field in ["send", "wait", "receive"] { #expect(timings[field] is NSNumber, "\(name): timings.\(field)") }
            let request = try #require(entry["request"] as? [String: Any])
            for field in ["method", "url", "httpVersion"] { #expect(request[field] is String, "\(name): request.\(field)") }
            for field in ["cookies", "headers", "queryString"] { #expect(request[field] is [Any], "\(name): request.\(field)") }
            for field in ["headersSize", "bodySize"] { #expect(request[field] is NSNumber, "\(name): request.\(field)") }
            let response = try #require(entry["response"] as? [String: Any])
            for field in ["statusText", "httpVersion", "redirectURL"] { #expect(response[field] is String, "\(name): response.\(field)") }
            for field in ["status", "headersSize", "bodySize"] { #expect(response[field] is NSNumber, "\(name): response.\(field)") }
            for field in ["cookies", "headers"] { #expect(response[field] is [Any], "\(name): response.\(field)") }
            let content = try #require(response["content"] as? [String: Any])
            #expect(content["size"] is NSNumber && content["mimeType"] is String)
            guard let messages = entry["_webSocketMessages"] as? [[String: Any]] else { continue }
            #expect(entry["_resourceType"] as? String == "websocket")
            let url = try #require(request["url"] as? String)
            #expect(url.hasPrefix("ws://") || url.hasPrefix("wss://"), "\(name): \(url)")
            // A 101 on HTTP/1.1 (also inside an HTTP/2 stream's CONNECT tunnel); a 2xx to an
            // extended CONNECT on an HTTP/2 stream (`_stream`).
            if entry["_stream"] == nil || request["httpVersion"] as? String == "HTTP/1.1" {
                #expect(response["status"] as? Int == 101)
            } else {
                #expect((200..<300).contains(response["status"] as? Int ?? 0) && request["method"] as? String == "CONNECT")
            }
            for message in messages {
                let opcode = try #require(message["opcode"] as? Int)
                let data = try #require(message["data"] as? String)
                let bytes = opcode == 2 ? try #require(Data(base64Encoded: data)).map { $0 } : Array(data.utf8)
                let direction = message["type"] as? String == "send" ? "c2s" : "s2c"
                let time = try #require(message["time"] as? Double)
                timed[direction, default: []].append((time, "\(opcode) \(bytes.count) \(digest(bytes))"))
            }
        }
        // Entries are in order of their start; the streams of one connection interleave by time.
        for (direction, list) in timed {
            sent[direction] = list.enumerated().sorted { ($0.element.0, $0.offset) < ($1.element.0, $1.offset) }.map(\.element.1)
        }
        let peers = try PeersLog(GoldenTests.capturesDirectory.appendingPathComponent(name))
        for direction in ["c2s", "s2c"] {
            // Application-library peers logged their protocol's units instead (messagesMatchWhatThePeersSent).
            guard let logged = peers.messages(direction: direction) else { continue }
            #expect(sent[direction] ?? [] == logged, "\(name) \(direction)")
        }
    }

    @Test func postedBodiesAndFormsAreKept() throws {
        let output = OutputChannel(inMemory: ())
        try decodeCapture("keepalive.pcap", sink: HARExporter(output: output))
        let document = try #require(try JSONSerialization.jsonObject(with: Data(output.memory)) as? [String: Any])
        let entries = try #require((document["log"] as? [String: Any])?["entries"] as? [[String: Any]])
        #expect(entries.count == 3)
        let post = try #require(entries.first { ($0["request"] as? [String: Any])?["method"] as? String == "POST" })
        let postData = try #require((post["request"] as? [String: Any])?["postData"] as? [String: Any])
        #expect(postData["text"] as? String == "hello=world")
        #expect((post["request"] as? [String: Any])?["url"] as? String == "http://localhost/data")
        #expect((entries.last?["request"] as? [String: Any])?["url"] as? String == "ws://localhost/ws")
    }
}

/// `wstap stats` on real captures: counts, close codes and who closed first, ping round trips.
struct StatisticsTests {
    func collect(_ name: String) throws -> StatisticsCollector {
        let collector = StatisticsCollector()
        try decodeCapture(name, sink: collector)
        return collector
    }

    @Test func pingsClosesAndCounts() throws {
        let stats = try collect("ping-close-codes.pcap")
        #expect(stats.connections.count == 2)
        let first = try #require(stats.connections.first)
        #expect(first.target == "/ping" && first.upgrade == .upgraded && first.protocolKind == .websocket)
        #expect(first.traffic.textMessages == DirectionPair(1))
        #expect(first.traffic.messageBytes == DirectionPair(10))
        #expect(first.traffic.closeCodes[.clientToServer] == ["4001": 1] && first.traffic.closeCodes[.serverToClient] == ["4001": 1])
        #expect(first.traffic.closedFirst.clientToServer == 1 && first.traffic.closedFirst.serverToClient == 0)
        #expect(first.traffic.pings == 1 && first.traffic.pingRoundTrips.count == 1)
        let rtt = try #require(first.traffic.pingRoundTrips.minMedianMax)
        #expect(rtt.min > 0 && rtt.min < 1_000_000_000)
        #expect(stats.connections[1].traffic.closeCodes[.clientToServer] == ["1001": 1])
        let overall = stats.overall
        #expect(overall.messages == 2 && overall.closedFirst.clientToServer == 2)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(StatisticsReport.json(stats).utf8)) as? [String: Any])
        #expect(json["format"] as? String == "wstap-stats" && json["format_version"] as? Int == 1)
        let rows = try #require(json["connections"] as? [[String: Any]])
        #expect((rows.first?["ping_rtt_ms"] as? [String: Any])?["count"] as? Int == 1)
        #expect(((rows.first?["c2s"] as? [String: Any])?["close_codes"] as? [String: Any])?["4001"] as? Int == 1)
    }

    @Test func everyMessageOfEveryCaptureIsCounted() throws {
        for name in GoldenTests.captureNames {
            let stats = try collect(name)
            let peers = try PeersLog(GoldenTests.capturesDirectory.appendingPathComponent(name))
            for (index, direction) in ["c2s", "s2c"].enumerated() {
                let counted = stats.connections.reduce(UInt64(0)) { $0 + $1.traffic.textMessages[index] + $1.traffic.binaryMessages[index] }
                #expect(counted >= UInt64((peers.messages(direction: direction) ?? []).count), "\(name) \(direction)")
            }
            let table = StatisticsReport.table(stats)
            #expect(table.split(separator: "\n").count >= stats.connections.count + 2, "\(name): a row per connection")
        }
    }

    @Test func refusedUpgradesAndTheirIssues() throws {
        let stats = try collect("rejected.pcap")
        #expect(stats.connections.allSatisfy { $0.upgrade == .rejected })
        #expect(stats.overall.issuesByCode["upgrade-rejected", default: 0] >= 1)
    }
}

/// `wstap follow --write-messages`: each data message saved whole, in order, as the peers sent it.
struct FollowTests {
    @Test(arguments: ["text-echo.pcap", "binary-sizes.pcap", "deflate.pcap", "wss-tls13-aes256.pcap"])
    func savedMessagesAreWhatThePeersSent(_ name: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wstap-follow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = OutputChannel(inMemory: ())
        let follower = FollowExporter(output: output, selector: .connection(1), messageDirectory: directory.path)
        try decodeCapture(name, sink: follower)
        #expect(follower.matchedAny && !output.failed)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        // The index lists every saved file, with the packet its name carries.
        let index = try String(contentsOf: directory.appendingPathComponent("index.tsv"), encoding: .utf8)
        let listed = index.split(separator: "\n").dropFirst().map { $0.split(separator: "\t") }
        #expect(listed.map { String($0[0]) } == files.filter { $0 != "index.tsv" })
        #expect(listed.allSatisfy { $0[0].split(separator: "-")[1] == String(repeating: "0", count: max(0, 6 - $0[1].count)) + $0[1] })
        var saved: [String: [String]] = [:]
        for file in files where file != "index.tsv" {
            let bytes = [UInt8](try Data(contentsOf: directory.appendingPathComponent(file)))
            let direction = file.contains("-c2s") ? "c2s" : "s2c"
            saved[direction, default: []].append("\(file.hasSuffix(".txt") ? 1 : 2) \(bytes.count) \(digest(bytes))")
        }
        let peers = try PeersLog(GoldenTests.capturesDirectory.appendingPathComponent(name))
        for direction in ["c2s", "s2c"] {
            #expect(saved[direction, default: []] == peers.messages(direction: direction), "\(name) \(direction)")
        }
        let text = String(decoding: output.memory, as: UTF8.self)
        #expect(text.contains("follow #1"))
        #expect(text.contains("message payloads saved"))
    }

    @Test func followsByClientAndSaysWhenNothingMatches() throws {
        let output = OutputChannel(inMemory: ())
        let nobody = FollowExporter(output: output, selector: .client("192.0.2.1:1"))
        try decodeCapture("text-echo.pcap", sink: nobody)
        #expect(!nobody.matchedAny && nobody.connectionsSeen == 1)
    }
}

/// `--jobs`: several analyzers, each rendering its own connections (text, NDJSON, summary: sink
/// parts) or recording them for the one sink (JSON, HAR), write exactly what one analyzer writes.
struct ParallelAnalysisTests {
    static let formats: [(name: String, make: @Sendable (OutputChannel) -> any TimelineSink)] = [
        ("ndjson", { NDJSONExporter(output: $0) }),
        ("text", { TextExporter(output: $0) }),
        ("text, absolute times, every message, hex", { TextExporter(output: $0, showsEveryMessage: true, timeFormat: .absolute, hexDump: true) }),
        ("json", { JSONExporter(output: $0) }),
        ("har", { HARExporter(output: $0) }),
    ]

    @Test(arguments: GoldenTests.captureNames)
    func threeJobsWriteWhatOneAnalyzerWrites(_ name: String) throws {
        let capture = GoldenTests.capturesDirectory.appendingPathComponent(name)
        var options = AnalyzerOptions()
        let keys = capture.deletingPathExtension().appendingPathExtension("keys")
        if FileManager.default.fileExists(atPath: keys.path) {
            options.keyLog = try KeyLog(path: keys.path, source: "--keylog")
        }
        for format in Self.formats {
            let one = OutputChannel(inMemory: ())
            _ = analyze(try CaptureFileReader(path: capture.path), with: Analyzer(options: options, sink: format.make(one)))
            one.flush()
            let three = OutputChannel(inMemory: ())
            let sources: [any PacketSource] = try (0..<3).map { _ in try CaptureFileReader(path: capture.path) }
            _ = analyzeInParallel(sources, options: options, sink: format.make(three))
            three.flush()
            #expect(!one.memory.isEmpty)
            let identical = three.memory == one.memory
            #expect(identical, "\(name) as \(format.name): \(three.memory.count) bytes with 3 jobs, \(one.memory.count) with one")
        }
    }
}
