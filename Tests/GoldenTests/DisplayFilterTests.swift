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
        #expect(lines[hello + 1] == "        0x00000000:  6865 6c6c 6f                             hello")
        // The 300-byte message: 19 rows of 16 bytes.
        let long = try #require(lines.firstIndex { $0.contains("300 B") })
        #expect(lines[(long + 1)...].prefix { $0.hasPrefix("        0x") }.count == 19)
    }

    @Test func maxPayloadSetsThePreviewAndTheDump() throws {
        let lines = try Self.lines(maxPayload: 4, hexDump: true)
        #expect(lines.contains { $0.hasSuffix("\"hell…\"") })
        #expect(lines.contains { $0 == "        … 296 more bytes" })
    }
}
