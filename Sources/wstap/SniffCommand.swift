import ArgumentParser
import Dispatch
import WSTap
import WSTapOutput
import WSTapLive
import WSTapCapture
import WSTapCore

struct SniffCommand: ParsableCommand {
    /// How long frame searches may hold bytes before they decide (live attach within 1 s).
    static let searchSettleNanoseconds: Int64 = 500_000_000

    static let configuration = CommandConfiguration(
        commandName: "sniff",
        abstract: "Decode WebSocket traffic on a live interface as it happens.",
        discussion: """
            Stops on Ctrl-C, SIGTERM, -c or --duration, then prints the summary with the packets \
            received and dropped by the kernel, the interface and wstap. Needs root, or \
            CAP_NET_RAW and CAP_NET_ADMIN.
            """)

    @Option(name: [.customShort("i"), .long], help: "The interface to capture on (e.g. lo, eth0, any).")
    var interface: String?

    @Flag(name: [.customShort("D"), .customLong("list-interfaces")], help: "List the interfaces, as 'wstap interfaces' does, and exit.")
    var listInterfaces = false

    @OptionGroup var options: DecodeOptions

    @Argument(help: "An optional BPF expression as tcpdump takes it (e.g. tcp port 8080), instead of -f.")
    var expression: [String] = []

    /// `-f`, or the trailing expression.
    private var filter: String? { expression.isEmpty ? options.filter : expression.joined(separator: " ") }

    @Option(name: [.customShort("c"), .long], help: "Stop after N WebSocket messages (frames with --count-frames).")
    var count: UInt64?

    @Flag(name: .long, help: "Make -c count frames instead of messages.")
    var countFrames = false

    @Option(name: .long, help: "Stop after this many seconds.")
    var duration: Double?

    @Option(name: [.customShort("w"), .customLong("write")], help: "Also save the raw packets to this pcap file.")
    var writeFile: String?

    @Option(name: [.customShort("B"), .long], help: "Kernel capture buffer in bytes; large enough to ride out moments when wstap is not scheduled.")
    var bufferSize: Int = .mebibytes(32)

    @Option(name: [.customShort("s"), .long], help: "Bytes kept of each packet.")
    var snaplen: Int = 262_144

    @Flag(name: [.customShort("p"), .customLong("no-promiscuous")], help: "Do not put the interface into promiscuous mode.")
    var noPromiscuous = false

    @Option(name: [.customShort("Z"), .long], help: "Drop root privileges to this user once the interface is open.")
    var user: String?

    @Flag(name: .long, help: "Instead of the timeline, judge every connection as 'wstap lint' does when the capture stops; exit 1 when a finding reaches --fail-on (default error).")
    var lint = false

    func validate() throws {
        if !listInterfaces, interface == nil { throw ValidationError("name an interface with -i (see 'wstap interfaces')") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be greater than 0") }
        if bufferSize <= 0 { throw ValidationError("--buffer-size must be greater than 0") }
        if snaplen <= 0 { throw ValidationError("--snaplen must be greater than 0") }
        if !expression.isEmpty, options.filter != nil { throw ValidationError("give the BPF filter once: -f or after the options") }
    }

    func run() throws {
        if listInterfaces { return try InterfacesCommand().run() }
        guard let interface else { return }
        SystemCalls.ignoreBrokenPipes()
        SystemCalls.keepFreedMemoryForReuse()
        var configuration = LiveCaptureConfiguration()
        configuration.snapshotLength = snaplen
        configuration.promiscuous = !noPromiscuous
        configuration.kernelBufferSize = bufferSize
        let capture: LiveCapture
        let writer: CaptureFileWriter?
        var analyzerOptions = options.analyzerOptions
        analyzerOptions.tracksHeldBytes = true
        analyzerOptions.waitsForTLSKeys = true
        do {
            // Read before -Z like the capture device; re-read as it grows (a browser's key log).
            analyzerOptions.keyLog = try options.openKeyLog()
        } catch {
            throw fail(error.message, exitCode: 2)
        }
        do {
            capture = try LiveCapture(device: interface, configuration: configuration, filter: filter)
            // Like tcpdump: the file is opened as the user wstap runs as after -Z, not as root.
            if let user { try PrivilegeDrop.switchUser(to: user) }
            writer = try writeFile.map { path throws(CaptureError) in try capture.makeWriter(path: path) }
        } catch {
            throw fail(error.message, exitCode: 2)
        }
        let output = OutputChannel()
        output.flushesEachEvent = true
        if options.format.isTimeline { output.timeOrder = .live }
        let lintCollector = lint ? LintCollector() : nil
        let sink: any TimelineSink = try lintCollector ?? options.makeSink(output: output)
        let watch = SeverityWatch(wrapping: sink)
        let analyzer = Analyzer(options: analyzerOptions, sink: options.failOn == nil ? sink : watch)
        let session = LiveSession(
            capture: capture, analyzer: analyzer, writer: writer,
            stop: StopConditions(messages: countFrames ? nil : count, frames: countFrames ? count : nil,
                                 durationSeconds: duration))
        let signals = [SystemCalls.interruptSignal, SystemCalls.terminateSignal].map { number in
            SystemCalls.ignore(signal: number)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { session.requestStop() }
            source.resume()
            return source
        }
        note("listening on \(interface), link-type \(capture.linkType), snapshot length \(snaplen) bytes")
        let keyLog = analyzerOptions.keyLog
        var keyLogRead = SystemCalls.wallClock()
        // A connection caught mid-way holds its first frames for a search: after half a second
        // of it, the search decides on what it holds (and the user hears how to avoid the wait).
        var holdingSince: CaptureTimestamp?
        var hinted: Set<UInt16> = []
        let failure = session.run(outputFailed: { output.failed }, tick: {
            let now = SystemCalls.wallClock()
            if !analyzer.holdsBytesForEarlierEvents {
                holdingSince = nil
            } else if let since = holdingSince, now.nanoseconds(since: since) >= Self.searchSettleNanoseconds {
                holdingSince = nil
                for record in analyzer.settleFrameSearches(at: analyzer.summary.lastPacketTime ?? now)
                where hinted.insert(record.server.port).inserted {
                    note("#\(record.id) (\(record.client) → \(record.server)) was caught mid-way: its frames waited for a frame search; "
                        + "--websocket-port \(record.server.port) shows a port's frames at once")
                }
            } else if holdingSince == nil {
                holdingSince = now
            }
            // What the key log's writer appended, every 50 ms; a read that fails keeps what was read.
            if let keyLog, now.nanoseconds(since: keyLogRead) >= 50_000_000 {
                keyLogRead = now
                try? keyLog.reload()
            }
            output.advance(to: now, nothingEarlierToCome: !analyzer.holdsBytesForEarlierEvents)
        })
        signals.forEach { $0.cancel() }
        output.flush()
        // Like tcpdump: the counters also go to standard error, whatever the output format.
        if let live = analyzer.summary.live {
            note("\(live.received) packets received by filter, \(live.droppedByKernel) dropped by kernel, "
                + "\(live.droppedByInterface) dropped by interface, \(live.droppedByWstap) dropped by wstap; "
                + "\(analyzer.frameCount) frames, \(analyzer.messageCount) messages decoded")
        }
        if let lintCollector {
            output.write(LintReport.text([(interface, lintCollector)], failOn: options.failOn ?? .error))
            output.flush()
        }
        if let reason = output.failure { throw fail("cannot write output: \(reason)", exitCode: 4) }
        if let failure {
            if case .writeFailed = failure { throw fail(failure.message, exitCode: 4) }
            throw fail(failure.message, exitCode: 2)
        }
        if let lintCollector, LintReport.fails(lintCollector, failOn: options.failOn ?? .error) { throw ExitCode(1) }
        try watch.check(failOn: options.failOn)
    }
}

struct InterfacesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "interfaces",
        abstract: "List the interfaces wstap can capture on (like tcpdump -D).")

    func run() throws {
        let devices: [CaptureDevice]
        do {
            devices = try LiveCapture.devices()
        } catch {
            throw fail(error.message, exitCode: 2)
        }
        for (index, device) in devices.enumerated() {
            var flags: [String] = []
            if device.isLoopback { flags.append("Loopback") }
            if device.isUp { flags.append("Up") }
            if device.isRunning { flags.append("Running") }
            let description = device.description.map { " (\($0))" } ?? ""
            print("\(index + 1).\(device.name)\(description)" + (flags.isEmpty ? "" : " [\(flags.joined(separator: ", "))]"))
        }
    }
}

/// A one-line message on standard error that is not an error.
func note(_ message: String) {
    let line = Array("wstap: \(terminalSafe(message))\n".utf8)
    _ = line.withUnsafeBytes { SystemCalls.writeAll(SystemCalls.standardError, $0) }
}
