import ArgumentParser
import WSTap
import WSTapOutput
import WSTapLive
import WSTapCore

struct ReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Decode a .pcap or .pcapng file ('-' reads standard input).")

    @Option(name: .customShort("r"), help: "The capture file (as tcpdump -r takes it).")
    var readFile: String?

    @Argument(help: "The capture file ('-' for standard input; not with -r), then an optional BPF expression as tcpdump takes it (e.g. tcp port 8080).")
    var words: [String] = []

    @OptionGroup var options: DecodeOptions

    /// The file named by `-r` or first.
    private var file: String { readFile ?? words.first ?? "" }

    /// `-f`, or the words after the file, as tcpdump joins them.
    private var filter: String? {
        let expression = (readFile == nil ? words.dropFirst() : words[...]).joined(separator: " ")
        return expression.isEmpty ? options.filter : expression
    }

    func validate() throws {
        if readFile == nil, words.isEmpty { throw ValidationError("name the capture file (or -r FILE)") }
        let hasExpression = words.count > (readFile == nil ? 1 : 0)
        if hasExpression, options.filter != nil { throw ValidationError("give the BPF filter once: -f or after the file") }
    }

    func run() throws {
        SystemCalls.ignoreBrokenPipes()
        let source: CaptureFileReader
        do {
            source = try CaptureFileReader(path: file, filter: filter)
        } catch {
            throw fail(error.message, exitCode: 2)
        }
        var analyzerOptions = options.analyzerOptions
        do {
            analyzerOptions.keyLog = try options.openKeyLog()
        } catch {
            throw fail(error.message, exitCode: 2)
        }
        let output = OutputChannel()
        if options.format.isTimeline { output.timeOrder = .file }
        let analyzer = Analyzer(options: analyzerOptions, sink: try options.makeSink(output: output))
        let (_, damage) = analyze(source, with: analyzer, shouldStop: { output.failed })
        output.flush()
        if let reason = output.failure { throw fail("cannot write output: \(reason)", exitCode: 4) }
        if let damage {
            throw fail(damage.message, exitCode: 3)
        }
    }
}

/// Prints a one-line error to standard error and ends with the documented exit status.
func fail(_ message: String, exitCode: Int32) -> ExitCode {
    let line = Array("wstap: \(terminalSafe(message))\n".utf8)
    _ = line.withUnsafeBytes { SystemCalls.writeAll(SystemCalls.standardError, $0) }
    return ExitCode(exitCode)
}
