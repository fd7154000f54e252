import ArgumentParser
import WSTap
import WSTapOutput
import WSTapLive
import WSTapCore

/// How events are written.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
    case ndjson
    case summary
    case har
    case html

    /// Formats written event by event, in time order (text and NDJSON).
    var isTimeline: Bool { self == .text || self == .ndjson }

    /// The exporter for this format, writing to `output`.
    func makeSink(output: OutputChannel, maxPayload: Int?, style: TextStyle = TextStyle()) -> any TimelineSink {
        switch self {
        case .text: TextExporter(output: output, style: style)
        case .json: JSONExporter(output: output, maxPayload: maxPayload)
        case .ndjson: NDJSONExporter(output: output, maxPayload: maxPayload)
        case .summary: SummaryExporter(output: output)
        case .har: HARExporter(output: output)
        case .html: HTMLReportExporter(output: output)
        }
    }
}

/// Flags shared by every subcommand that decodes traffic: the BPF filter, limits and keys.
struct AnalysisOptions: ParsableArguments {
    @Option(name: [.customShort("f"), .long], help: "BPF filter applied to packets, as tcpdump takes it (e.g. 'tcp port 8080').")
    var filter: String?

    @Option(name: .long, help: "Keep at most N bytes of any one frame or message; longer ones are reported and cut.")
    var payloadLimit: Int = .mebibytes(64)

    @Option(name: .long, help: "Out-of-order bytes held per TCP direction before a hole is declared lost (each held segment counts 64 bytes more; at most 4096 segments).")
    var maxBufferPerDirection: Int = .mebibytes(4)

    @Option(name: .long, help: "Out-of-order bytes held over all connections.")
    var maxBufferTotal: Int = .mebibytes(64)

    @Option(name: .long, help: "Open connections tracked at once; the longest idle is closed past this.")
    var maxConnections: Int = 100_000

    @Option(name: .long, help: "Seconds without a packet after which a connection is closed.")
    var idleTimeout: Int64 = 3600

    @Option(name: .long, help: "permessage-deflate contexts kept at once per job (up to about 55 KB each); past it the least recently used connection's is given back, and a message of that connection that needs its earlier window is reported as deflate-context-lost.")
    var maxCompressionContexts: Int = 4096

    @Option(name: .long, help: "Decode connections on this port as WebSocket even when the handshake was not captured (repeatable).")
    var websocketPort: [UInt16] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Decode the messages of WebSocket streams as this application protocol: all streams, those to PORT, or those whose path starts with PATH (repeatable; before the negotiated subprotocol, the URL and sniffing).",
            valueName: "protocol[:port|:path]"))
    var app: [String] = []

    @Option(name: .long, help: "NSS key log (SSLKEYLOGFILE format) to decrypt TLS with; without it, $SSLKEYLOGFILE is used when set.")
    var keylog: String?

    /// `PROTOCOL[:PORT|:PATH]` taken apart; a port is all digits, a path starts with `/`.
    static func applicationChoice(_ text: String) -> (name: String, port: UInt16?, path: String?) {
        guard let colon = text.firstIndex(of: ":") else { return (text, nil, nil) }
        let name = String(text[..<colon])
        let qualifier = String(text[text.index(after: colon)...])
        if let port = UInt16(qualifier) { return (name, port, nil) }
        return (name, nil, qualifier)
    }

    func validate() throws {
        let known = AnalyzerOptions().applicationProtocolNames
        for choice in app {
            let (name, port, path) = Self.applicationChoice(choice)
            guard known.contains(name.lowercased()) else {
                throw ValidationError("--app \(choice): unknown application protocol \"\(name)\" (known: \(known.joined(separator: ", ")))")
            }
            if port == nil, let path, !path.hasPrefix("/") {
                throw ValidationError("--app \(choice): after the colon, a port (1-65535) or a path starting with /")
            }
        }
        guard payloadLimit > 0, maxBufferPerDirection > 0, maxBufferTotal > 0, maxConnections > 0, idleTimeout > 0,
            maxCompressionContexts > 0
        else {
            throw ValidationError("limits must be greater than 0")
        }
    }

    /// The key log named by `--keylog`, else by `$SSLKEYLOGFILE`; nil when neither is set.
    func openKeyLog() throws(KeyLogError) -> KeyLog? {
        if let keylog { return try KeyLog(path: keylog, source: "--keylog") }
        if let path = SystemCalls.environment("SSLKEYLOGFILE"), !path.isEmpty {
            return try KeyLog(path: path, source: "SSLKEYLOGFILE")
        }
        return nil
    }

    var analyzerOptions: AnalyzerOptions {
        var options = AnalyzerOptions()
        options.maxPayloadBytes = payloadLimit
        options.reassembly.maxPendingBytesPerDirection = maxBufferPerDirection
        options.reassembly.maxPendingBytesTotal = maxBufferTotal
        options.reassembly.maxConnections = maxConnections
        options.reassembly.idleTimeoutSeconds = idleTimeout
        options.websocketPorts = Set(websocketPort)
        options.maxCompressionContexts = maxCompressionContexts
        for choice in app {
            let (name, port, path) = Self.applicationChoice(choice)
            options.forceApplication(name, port: port, pathPrefix: path)
        }
        return options
    }
}

/// When the text timeline is coloured.
enum ColorChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, always, never

    /// `auto`: when standard output is a terminal and `NO_COLOR` is unset or empty (no-color.org).
    func enabled(writingTo descriptor: Int32) -> Bool {
        switch self {
        case .always: true
        case .never: false
        case .auto:
            SystemCalls.isTerminal(descriptor) && (SystemCalls.environment("NO_COLOR") ?? "").isEmpty
        }
    }
}

/// Flags of the subcommands that write the timeline (`read`, `sniff`).
struct DecodeOptions: ParsableArguments {
    @Option(name: .long, help: "Output format: text (timeline), json (whole capture), ndjson (one event per line), summary, har (HAR 1.2 for browser tools), html (a self-contained report).")
    var format: OutputFormat = .text

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write to this file instead of standard output.")
    var outputFile: String?

    @Flag(name: [.customShort("v"), .long], help: "Text timeline: show the header lines of every request and response.")
    var verbose = false

    @Flag(name: [.customShort("x"), .customLong("hex")], help: "Text timeline: every payload also as hex and ASCII, 16 bytes a line, as follow shows them (at most --max-payload bytes).")
    var hexDump = false

    @Flag(name: [.customShort("n"), .customLong("numbers")], help: "Text timeline: start each line with the number of the packet it came from, as Wireshark numbers frames (JSON always has it as \"packet\").")
    var packetNumbers = false

    @Flag(name: .long, help: "Text timeline: text messages that are JSON are shown pretty-printed on the lines below.")
    var pretty = false

    @Option(name: .long, help: "Colours in the text timeline: auto (when writing to a terminal and NO_COLOR is not set), always, never.")
    var color: ColorChoice = .auto

    @Option(name: [.customShort("t"), .customLong("time-format")], help: "Text timeline times, as tshark -t: r (since the first packet), a (UTC time of day), ad (UTC date and time), d (since the previous line), e (epoch seconds).")
    var timeFormat: TimeFormat = .relative

    @Option(name: .long, help: "Show at most N bytes of each payload in json/ndjson (marked truncated), N characters of each preview in text. Without it, JSON payloads are shown whole but for decompressed ones past 64 MiB + 8x the capture's frame bytes.")
    var maxPayload: Int?

    @Option(name: .long, help: "Exit with status 1 when an issue of this severity or worse was found (error, warning, info); without it, findings never change the exit status.")
    var failOn: Severity?

    @OptionGroup var analysis: AnalysisOptions

    @OptionGroup var display: DisplayOptions

    var filter: String? { analysis.filter }

    /// Where output goes: standard output, or the `-o` file.
    func openOutput() throws -> OutputChannel { try openOutputFile(outputFile) }

    /// The sink for `format`, behind the display filter when one is given.
    func makeSink(output: OutputChannel) throws -> any TimelineSink {
        let filter = display.filter
        var style = TextStyle()
        style.verbose = verbose
        style.showsEveryMessage = filter.showsEveryMessage
        style.timeFormat = timeFormat
        style.maxPayload = maxPayload
        style.hexDump = hexDump
        style.prettyJSON = pretty
        style.packetNumbers = packetNumbers
        style.colors = color.enabled(writingTo: outputFile == nil || outputFile == "-" ? SystemCalls.standardOutput : -1)
        let sink = format.makeSink(output: output, maxPayload: maxPayload, style: style)
        guard !filter.keepsEverything, format != .summary else { return sink }
        do {
            return try FilteringSink(wrapping: sink, filter: filter)
        } catch {
            throw ValidationError("--grep: \(error)")
        }
    }

    func validate() throws {
        if let maxPayload, maxPayload < 0 { throw ValidationError("--max-payload must be 0 or more") }
    }

    func openKeyLog() throws(KeyLogError) -> KeyLog? { try analysis.openKeyLog() }

    var analyzerOptions: AnalyzerOptions { analysis.analyzerOptions }
}

/// Display filters (README, "Display filters"): applied after decoding, so connection ids and times are those of the whole
/// capture (the summary counts it all).
struct DisplayOptions: ParsableArguments {
    @Option(name: .customLong("conn"), help: "Show only this connection (repeatable).")
    var connections: [UInt64] = []

    @Option(name: .long, help: "Show only these HTTP/2 streams (repeatable; the #1/s3 of the timeline is --conn 1 --stream 3): other streams' events are not shown, the connection's own are.")
    var stream: [UInt32] = []

    @Option(name: .long, help: "Show only connections whose request names this Host (or whose server has this address).")
    var host: String?

    @Option(name: .long, help: "Show only connections whose request path matches this glob (e.g. '/chat*'; the path only, without the query).")
    var path: String?

    @Option(name: .long, help: "Show only connections whose request target, path and query, matches this glob (e.g. '/chat?user=alice*', '*EIO=4*').")
    var url: String?

    @Option(name: .long, help: "Show only connections from this client: an address, or address and port (10.0.0.5, 10.0.0.5:51234, [::1]:51234).")
    var client: String?

    @Option(name: .long, help: "Show only connections to this server: an address, or address and port (10.0.0.9, 10.0.0.9:443).")
    var server: String?

    @Option(name: .customLong("dir"), help: "Show only one direction: c2s or s2c.")
    var direction: String?

    @Option(name: .customLong("type"), help: "Show only these events: text, binary, control, handshake, issues (repeatable, or comma-separated).")
    var types: [String] = []

    @Flag(name: .long, help: "Also show Close frames, whatever else is selected: with --messages, --grep or --type, how each conversation ended.")
    var closes = false

    @Option(name: .long, help: "Show only events at or after this time: +SECONDS after the capture's first packet, SECONDS since the epoch, YYYY-MM-DDTHH:MM:SS[.frac] or HH:MM:SS (UTC). The whole capture is still decoded.")
    var from: String?

    @Option(name: .long, help: "Show only events at or before this time (the forms of --from).")
    var to: String?

    @Option(name: .long, help: "Show only text messages matching this regular expression (matched in linear time: no backreferences or lookaround; (?i) at the start ignores case; docs/user-guide.md).")
    var grep: String?

    @Option(name: .long, help: "Show only binary messages (decompressed) containing these bytes: hex (89504e47, '89 50 4e 47', 0x89504e47, hex:…) or text (text:PNG; a word that is not hex is taken as text).")
    var grepBytes: String?

    @Option(name: [.customShort("C"), .long], help: "With --grep or --grep-bytes: also show N messages before and after each match, of the same connection and stream (as grep -C).")
    var context: Int?

    @Flag(name: .long, help: "Messages only: no frame lines (every message, single-frame ones too).")
    var messages = false

    @Flag(name: .long, help: "Application messages only (Socket.IO, STOMP, MQTT, GraphQL, JSON-RPC, JSON): no frame, message or handshake lines.")
    var appOnly = false

    @Option(name: .long, help: "Show only application messages of this type or protocol (e.g. PUBLISH, event, request, mqtt; repeatable or comma-separated; case ignored).")
    var appType: [String] = []

    @Option(name: .long, help: "Show only application messages about this name, a glob: Socket.IO event, STOMP destination, MQTT topic, JSON-RPC method, GraphQL operation (repeatable).")
    var event: [String] = []

    func validate() throws {
        if let direction, direction != "c2s", direction != "s2c" { throw ValidationError("--dir takes c2s or s2c") }
        for name in types.flatMap({ $0.split(separator: ",") }) where DisplayFilter.EventKind(rawValue: String(name)) == nil {
            throw ValidationError("--type takes \(DisplayFilter.EventKind.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name)'")
        }
        for (name, value) in [("--from", from), ("--to", to)] {
            if let value, TimeBound(value) == nil {
                throw ValidationError("\(name) '\(value)': not a time (+SECONDS, SECONDS since the epoch, YYYY-MM-DDTHH:MM:SS[.frac] or HH:MM:SS, UTC)")
            }
        }
        if let grepBytes, DisplayFilter.searchedBytes(grepBytes) == nil {
            throw ValidationError("--grep-bytes '\(grepBytes)': not hex pairs after hex:, and nothing to look for")
        }
        if let grep {
            do { _ = try TextPattern(grep) } catch { throw ValidationError("--grep '\(grep)': \(error)") }
        }
        if let context {
            guard grep != nil || grepBytes != nil else { throw ValidationError("--context shows messages around --grep or --grep-bytes matches: give one of them") }
            guard (0...1000).contains(context) else { throw ValidationError("--context takes 0 to 1000 messages, not \(context)") }
        }
    }

    var filter: DisplayFilter {
        var filter = DisplayFilter()
        filter.connections = Set(connections)
        filter.streams = Set(stream)
        filter.host = host
        filter.path = path
        filter.url = url
        filter.client = client
        filter.server = server
        filter.direction = direction.map { $0 == "c2s" ? .clientToServer : .serverToClient }
        filter.kinds = Set(types.flatMap { $0.split(separator: ",") }.compactMap { DisplayFilter.EventKind(rawValue: String($0)) })
        filter.closeFrames = closes
        filter.context = context ?? 0
        filter.grep = grep
        filter.grepBytes = grepBytes.flatMap(DisplayFilter.searchedBytes)
        filter.messagesOnly = messages
        filter.applicationOnly = appOnly
        filter.applicationTypes = Set(appType.flatMap { $0.split(separator: ",") }.map { $0.lowercased() })
        filter.applicationSubjects = event
        filter.from = from.flatMap(TimeBound.init)
        filter.to = to.flatMap(TimeBound.init)
        return filter
    }
}

extension TimeFormat: ExpressibleByArgument {}
