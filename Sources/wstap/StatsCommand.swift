import ArgumentParser
import WSTap
import WSTapOutput
import WSTapCore

/// How `wstap stats` writes.
enum StatsFormat: String, ExpressibleByArgument, CaseIterable {
    case table
    case json
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Per-connection and overall statistics: upgrade outcome, messages, bytes, rates, sizes, close codes, ping round trips, issues.",
        discussion: "Display filters (--conn, --host, --path, --dir, --type) choose what is counted; the format is in docs/stats-format.md.")

    @OptionGroup var input: CaptureFileArguments

    @Option(name: .long, help: "table (for people) or json (docs/stats-format.md).")
    var format: StatsFormat = .table

    @Option(name: .long, help: "Exit with status 1 when an issue of this severity or worse was found (error, warning, info).")
    var failOn: Severity?

    @Option(name: .long, help: "Also count messages, bytes and connections opened and closed per interval of this length, each way (like tshark -z io,stat): 1s, 500ms, 0.1 (seconds).")
    var interval: String?

    @Flag(name: .long, help: "The table with every column (host and target, bytes, rates, sizes, ping round trips); by default it fits 100 columns.")
    var wide = false

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write to this file instead of standard output.")
    var outputFile: String?

    @OptionGroup var analysis: AnalysisOptions

    @OptionGroup var display: DisplayOptions

    func validate() throws {
        try input.validate(filterOption: analysis.filter)
        if let interval, Self.nanoseconds(interval) == nil {
            throw ValidationError("--interval takes a duration of at least 1ms such as 1s, 500ms or 0.25, not '\(interval)'")
        }
    }

    /// `1s`, `500ms`, `0.25` (seconds) in nanoseconds; nil when not a duration of at least 1 ms.
    static func nanoseconds(_ text: String) -> Int64? {
        var number = Substring(text)
        var scale = 1e9
        if number.hasSuffix("ms") { number = number.dropLast(2); scale = 1e6 } else if number.hasSuffix("s") { number = number.dropLast() }
        guard let value = Double(number), value.isFinite, value * scale >= 1e6, value * scale < 1e18 else { return nil }
        return Int64(value * scale)
    }

    func run() throws {
        let output = try openOutputFile(outputFile)
        let (format, wide) = (format, wide)
        let collector = StatisticsCollector(intervalNanoseconds: interval.flatMap(Self.nanoseconds)) { collector in
            output.write(format == .json ? StatisticsReport.json(collector) : StatisticsReport.table(collector, wide: wide))
        }
        let filter = display.filter
        let sink: any TimelineSink = filter.keepsEverything ? collector : try FilteringSink(wrapping: collector, filter: filter)
        let watch = SeverityWatch(wrapping: sink)
        try decodeCaptureFile(input, analysis: analysis, output: output, sink: failOn == nil ? sink : watch)
        try checkMatched(sink)
        try watch.check(failOn: failOn)
    }
}

struct FollowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow",
        abstract: "One conversation's messages in order, whole (like Wireshark's Follow WebSocket Stream).",
        discussion: "Choose it with --conn ID (as every output numbers connections) or --client IP:PORT.")

    @OptionGroup var input: CaptureFileArguments

    @Option(name: .customLong("conn"), help: "The connection to follow.")
    var connection: UInt64?

    @Option(name: .long, help: "Follow the connections from this client: address and port (e.g. 10.0.0.5:51234, [::1]:51234) or address alone.")
    var client: String?

    @Option(name: .long, help: "Only this HTTP/2 stream of the connection (WebSocket over HTTP/2: the #1/s3 of the timeline is --conn 1 --stream 3).")
    var stream: UInt32?

    @Option(name: .long, help: "Also save each data message's payload to a file in this directory, named by sequence and packet number (000001-000008-c2s.txt, ...), listed in index.tsv; names are never taken from the capture, and existing files are not overwritten.")
    var writeMessages: String?

    @Flag(name: .long, help: "Show text messages that are JSON re-indented.")
    var pretty = false

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write to this file instead of standard output.")
    var outputFile: String?

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        try input.validate(filterOption: analysis.filter)
        if (connection == nil) == (client == nil) { throw ValidationError("name the conversation: --conn ID or --client IP:PORT") }
    }

    func run() throws {
        if let writeMessages, let error = SystemCalls.makeDirectory(writeMessages) {
            throw fail("cannot create \(writeMessages): \(error.reason)", exitCode: 2)
        }
        let output = try openOutputFile(outputFile)
        output.timeOrder = .file
        let selector: ConversationSelector = connection.map { .connection($0) } ?? .client(client ?? "")
        let follower = FollowExporter(
            output: output, selector: selector, stream: stream, pretty: pretty, messageDirectory: writeMessages)
        try decodeCaptureFile(input, analysis: analysis, output: output, sink: follower)
        if !follower.matchedAny {
            let what = connection.map { "connection #\($0)" } ?? "connection from \(client ?? "")"
            throw fail("no \(what) in the capture (it has \(follower.connectionsSeen) connections; 'wstap stats' lists them)", exitCode: 5)
        }
        if let stream, !follower.streamSeen {
            throw fail("the followed connection has no HTTP/2 stream \(stream) (the timeline shows streams as #ID/sN)", exitCode: 5)
        }
    }
}

/// Standard output, or `path` (created, never through a symbolic link).
func openOutputFile(_ path: String?) throws -> OutputChannel {
    guard let path, path != "-" else { return OutputChannel() }
    switch SystemCalls.createFile(path) {
    case .success(let descriptor): return OutputChannel(fileDescriptor: descriptor, closesOnDeinit: true)
    case .failure(let error): throw fail("cannot create \(path): \(error.reason)", exitCode: 2)
    }
}
