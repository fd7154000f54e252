import Foundation
import Testing
import WSTap
import WSTapCore
@testable import WSTapOutput

/// Display filters on the recorded captures: applied after decoding, so what they keep is exactly
/// what the whole timeline has for the chosen connections, directions and kinds.
struct DisplayFilterTests {
    /// The text timeline of a capture, filtered (or not).
    static func timeline(_ name: String, keys: String? = nil, _ configure: (inout DisplayFilter) -> Void = { _ in }) throws -> [String] {
        var filter = DisplayFilter()
        configure(&filter)
        let output = OutputChannel(inMemory: ())
        output.timeOrder = .file
        let text = TextExporter(output: output, showSummary: false, showsEveryMessage: filter.showsEveryMessage)
        let sink: any TimelineSink = filter.keepsEverything ? text : try FilteringSink(wrapping: text, filter: filter)
        var options = AnalyzerOptions()
        if let keys { options.keyLog = try KeyLog(path: GoldenTests.capturesDirectory.appendingPathComponent(keys).path, source: "test") }
        let reader = try CaptureFileReader(path: GoldenTests.capturesDirectory.appendingPathComponent(name).path)
        _ = analyze(reader, with: Analyzer(options: options, sink: sink))
        return String(decoding: output.memory, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func aConnectionKeepsItsIdAndTimes() throws {
        let whole = try Self.timeline("ping-close-codes.pcap")
        let second = try Self.timeline("ping-close-codes.pcap") { $0.connections = [2] }
        // The same start line (the capture's), then exactly the whole timeline's lines of #2.
        #expect(second.first == whole.first && second.first?.hasPrefix("capture starts") == true)
        #expect(second.count > 3 && second.dropFirst().allSatisfy { $0.contains("  #2  ") })
        #expect(Array(second.dropFirst()) == whole.filter { $0.contains("  #2  ") })
    }

    @Test func directionAndKindKeepTheirLinesOnly() throws {
        let whole = try Self.timeline("binary-sizes.pcap")
        let control = try Self.timeline("binary-sizes.pcap") { $0.kinds = [.control] }
        #expect(control.contains { $0.contains("close") } && !control.contains { $0.contains("binary ") || $0.contains("GET") })
        let fromServer = try Self.timeline("binary-sizes.pcap") { $0.direction = .serverToClient; $0.kinds = [.binary] }
        #expect(fromServer.filter { $0.contains("  ← binary") }.count == whole.filter { $0.contains("  ← binary") }.count)
        #expect(!fromServer.contains { $0.contains("  → ") })
    }

    @Test func messagesOnlyShowsEveryMessageAndNoFrame() throws {
        let lines = try Self.timeline("text-echo.pcap") { $0.messagesOnly = true }
        #expect(lines.filter { $0.contains(" message text ") }.count == 8)
        #expect(!lines.contains { $0.contains("→ text ") || $0.contains("→ close ") || $0.contains("← close ") })
    }

    @Test func grepKeepsMatchingTextMessages() throws {
        let lines = try Self.timeline("text-echo.pcap") { $0.grep = "red.*reversed" }
        #expect(lines.filter { $0.contains(" message text ") }.count == 2)
        #expect(throws: (any Error).self) { _ = try FilteringSink(wrapping: TextExporter(output: OutputChannel(inMemory: ())), filter: { var f = DisplayFilter(); f.grep = "("; return f }()) }
    }

    /// Host and path decide on a connection when its request comes; one whose request was not
    /// captured (here: TLS without keys) cannot match.
    @Test func hostAndPathMatchTheRequest() throws {
        let keys = "wss-missing-key.keys"
        let byPath = try Self.timeline("wss-missing-key.pcap", keys: keys) { $0.path = "/k*s" }
        #expect(byPath.contains { $0.contains("GET /keys") } && !byPath.contains { $0.contains("  #2  ") })
        #expect(try Self.timeline("wss-missing-key.pcap", keys: keys) { $0.path = "/other*" }.allSatisfy { !$0.contains("  #1  ") })
        let byHost = try Self.timeline("text-echo.pcap") { $0.host = "127.0.0.1" }
        #expect(byHost.contains { $0.contains("GET /echo") })
        #expect(try Self.timeline("text-echo.pcap") { $0.host = "example.com" }.allSatisfy { !$0.contains("#1") })
    }

    @Test func globsMatchLikeAShell() {
        let cases: [(String, String, Bool)] = [
            ("/chat*", "/chat/room", true), ("/chat*", "/cha", false), ("*/ws", "/api/v1/ws", true),
            ("/a?c", "/abc", true), ("/a?c", "/ac", false), ("*", "", true), ("/x*y*z", "/xaaybbz", true),
            ("/x*y*z", "/xaaybb", false),
        ]
        for (pattern, text, expected) in cases {
            #expect(Glob.matches(Array(pattern.utf8), Array(text.utf8)) == expected, "\(pattern) ~ \(text)")
        }
    }
}

/// `-t` time formats and the absolute start of the text timeline.
struct TimeFormatTests {
    static func utc(_ seconds: Int64, _ nanoseconds: UInt32 = 0, withDate: Bool = true) -> String {
        let buffer = OutputBuffer()
        buffer.utcTime(CaptureTimestamp(seconds: seconds, nanoseconds: nanoseconds), withDate: withDate)
        return buffer.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    @Test func utcDatesAreRight() {
        #expect(Self.utc(0) == "1970-01-01 00:00:00.000000")
        #expect(Self.utc(-1) == "1969-12-31 23:59:59.000000")
        #expect(Self.utc(951_782_400) == "2000-02-29 00:00:00.000000")
        #expect(Self.utc(1_795_813_625, 989_370_123) == "2026-11-27 21:07:05.989370")
        #expect(Self.utc(1_795_813_625, withDate: false) == "21:07:05.000000")
    }

    @Test func everyFormatWritesItsTimes() throws {
        func first(_ format: TimeFormat) throws -> [String] {
            let output = OutputChannel(inMemory: ())
            let reader = try CaptureFileReader(path: GoldenTests.capturesDirectory.appendingPathComponent("text-echo.pcap").path)
            _ = analyze(reader, with: Analyzer(sink: TextExporter(output: output, showSummary: false, timeFormat: format)))
            return String(decoding: output.memory, as: UTF8.self).split(separator: "\n").prefix(3).map(String.init)
        }
        #expect(try first(.relative) == ["capture starts 2026-11-27 21:07:05.989370 UTC",
                                          "  0.000810  #1  TCP 127.0.0.1:60122 → 127.0.0.1:18100",
                                          "  0.000810  #1  → GET /echo HTTP/1.1  Upgrade: websocket"])
        #expect(try first(.absolute)[1].hasPrefix("21:07:05.990180  #1"))
        #expect(try first(.absoluteWithDate)[1].hasPrefix("2026-11-27 21:07:05.990180  #1"))
        #expect(try first(.delta)[2].hasPrefix("  0.000000  #1  → GET"))
        #expect(try first(.epoch)[1].hasPrefix("1795813625.990180  #1"))
    }
}

/// `-x` and `--max-payload` in the text timeline.
struct TextPayloadTests {
    static func lines(maxPayload: Int?, hexDump: Bool) throws -> [String] {
        let output = OutputChannel(inMemory: ())
        let reader = try CaptureFileReader(path: GoldenTests.capturesDirectory.appendingPathComponent("text-echo.pcap").path)
        let text = TextExporter(output: output, showSummary: false, maxPayload: maxPayload, hexDump: hexDump)
        _ = analyze(reader, with: Analyzer(sink: text))
        return String(decoding: output.memory, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func hexDumpsShowEveryByteAsHexAndASCII() throws {
        let lines = try Self.lines(maxPayload: nil, hexDump: true)
        let hello = try #require(lines.firstIndex { $0.hasSuffix("\"hello\"") })
        #expect(lines[hello + 1] == "        00000000  68 65 6c 6c 6f                                   hello")
        // The 300-byte message: 19 rows of 16 bytes.
        let long = try #require(lines.firstIndex { $0.contains("300 B") })
        #expect(lines[(long + 1)...].prefix { $0.hasPrefix("        000") }.count == 19)
    }

    @Test func maxPayloadSetsThePreviewAndTheDump() throws {
        let lines = try Self.lines(maxPayload: 4, hexDump: true)
        #expect(lines.contains { $0.hasSuffix("\"hell…\"") })
        #expect(lines.contains { $0 == "        … 296 more bytes" })
    }
}

/// Every filter in every format (issue 31): a filter selects events and never strips what names
/// their connection. On chat-stream (one connection to /chat, 40 text messages each way), each
/// filter below keeps connection #1 and some of its messages; each format must then still name
/// the connection's target and hold the kept messages.
struct FilterFormatTableTests {
    static let filters: [(String, @Sendable (inout DisplayFilter) -> Void)] = [
        ("conn", { $0.connections = [1] }),
        ("host", { $0.host = "127.0.0.1" }),
        ("path", { $0.path = "/ch*" }),
        ("url", { $0.url = "/chat" }),
        ("client", { $0.client = "127.0.0.1" }),
        ("server", { $0.server = "127.0.0.1:18250" }),
        ("dir", { $0.direction = .serverToClient }),
        ("type", { $0.kinds = [.text] }),
        ("grep", { $0.grep = "message 0" }),
        ("messages", { $0.messagesOnly = true }),
        // After the handshake (at 1.5 ms), before the last messages.
        ("window", { $0.from = .sinceStart(5_000_000); $0.to = .sinceStart(8_000_000) }),
    ]

    static func run(_ configure: (inout DisplayFilter) -> Void, into exporter: (OutputChannel) -> any TimelineSink) throws -> (String, FilteringSink) {
        var filter = DisplayFilter()
        configure(&filter)
        let output = OutputChannel(inMemory: ())
        let filtering = try FilteringSink(wrapping: exporter(output), filter: filter)
        let reader = try CaptureFileReader(path: GoldenTests.capturesDirectory.appendingPathComponent("chat-stream.pcap").path)
        _ = analyze(reader, with: Analyzer(options: AnalyzerOptions(), sink: filtering))
        return (String(decoding: output.memory, as: UTF8.self), filtering)
    }

    @Test(arguments: filters.map(\.0))
    func everyFormatKeepsTheConnectionsIdentity(_ name: String) throws {
        let configure = try #require(Self.filters.first { $0.0 == name }?.1)
        // NDJSON: every message line names its target.
        let (ndjson, filtering) = try Self.run(configure) { NDJSONExporter(output: $0) }
        #expect(!filtering.matchedNothing, "\(name)")
        let messages = ndjson.split(separator: "\n").filter { $0.contains("\"event\":\"message\"") }
        #expect(!messages.isEmpty && messages.allSatisfy { $0.contains("\"target\":\"/chat\"") }, "\(name): NDJSON")
        // JSON: the connection with its upgrade and kept messages.
        let (json, _) = try Self.run(configure) { JSONExporter(output: $0) }
        let document = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let connection = try #require((document["connections"] as? [[String: Any]])?.first)
        #expect((connection["messages"] as? [Any])?.isEmpty == false, "\(name): JSON messages")
        // HAR: the WebSocket entry with the kept messages.
        let (har, _) = try Self.run(configure) { HARExporter(output: $0) }
        let log = try #require((try JSONSerialization.jsonObject(with: Data(har.utf8)) as? [String: Any])?["log"] as? [String: Any])
        let entries = try #require(log["entries"] as? [[String: Any]])
        #expect(entries.count == 1 && (entries.first?["_webSocketMessages"] as? [Any])?.isEmpty == false, "\(name): HAR")
        // HTML: the overview names the request.
        let (html, _) = try Self.run(configure) { HTMLReportExporter(output: $0) }
        #expect(html.contains("/chat"), "\(name): HTML")
        // Text: the message lines, and the connection's.
        let (text, _) = try Self.run(configure) { TextExporter(output: $0) }
        #expect(text.contains("  #1  ") && text.contains("text"), "\(name): text")
        // Stats: the connection's row names its target (wide table).
        let collector = StatisticsCollector { _ in }
        var filter = DisplayFilter()
        configure(&filter)
        let sink = try FilteringSink(wrapping: collector, filter: filter)
        let reader = try CaptureFileReader(path: GoldenTests.capturesDirectory.appendingPathComponent("chat-stream.pcap").path)
        _ = analyze(reader, with: Analyzer(options: AnalyzerOptions(), sink: sink))
        #expect(collector.connections.first?.target == "/chat" && (collector.connections.first?.traffic.messages ?? 0) > 0, "\(name): stats")
    }

    /// A filter that keeps nothing says so (the command exits 5).
    @Test func aFilterThatMatchesNothingSaysSo() throws {
        for configure: (inout DisplayFilter) -> Void in [
            { $0.connections = [9] }, { $0.grep = "no such words" }, { $0.client = "10.1.1.1" }, { $0.from = .sinceStart(60_000_000_000) },
        ] {
            let (_, filtering) = try Self.run(configure) { NDJSONExporter(output: $0) }
            #expect(filtering.matchedNothing)
        }
    }
}
