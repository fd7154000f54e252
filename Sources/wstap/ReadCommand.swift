import ArgumentParser
import WSTap
import WSTapOutput
import WSTapLive
import WSTapCore

struct ReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Decode a .pcap or .pcapng file ('-' reads standard input).")

    @OptionGroup var input: CaptureFileArguments

    @OptionGroup var options: DecodeOptions

    func validate() throws { try input.validate(filterOption: options.filter) }

    func run() throws {
        let output = try options.openOutput()
        if options.format.isTimeline { output.timeOrder = .file }
        try decodeCaptureFile(input, analysis: options.analysis, output: output, sink: try options.makeSink(output: output))
    }
}

/// The capture file and its BPF expression, as tcpdump takes them: `-r FILE` or the first word,
/// then the expression's words.
struct CaptureFileArguments: ParsableArguments {
    @Option(name: .customShort("r"), help: "The capture file (as tcpdump -r takes it).")
    var readFile: String?

    @Argument(help: "The capture file ('-' for standard input, .gz read directly; not with -r), then an optional BPF expression as tcpdump takes it (e.g. tcp port 8080).")
    var words: [String] = []

    /// The file named by `-r` or first.
    var file: String { readFile ?? words.first ?? "" }

    /// The words after the file, as tcpdump joins them, else `-f`.
    func filter(orOption option: String?) -> String? {
        let expression = (readFile == nil ? words.dropFirst() : words[...]).joined(separator: " ")
        return expression.isEmpty ? option : expression
    }

    func validate(filterOption: String?) throws {
        if readFile == nil, words.isEmpty { throw ValidationError("name the capture file (or -r FILE)") }
        let hasExpression = words.count > (readFile == nil ? 1 : 0)
        if hasExpression, filterOption != nil { throw ValidationError("give the BPF filter once: -f or after the file") }
    }
}

/// Decodes a capture file into `sink`, then flushes `output`; fails with the documented exit
/// status (2 unusable input, 3 damaged capture, 4 output lost).
func decodeCaptureFile(_ input: CaptureFileArguments, analysis: AnalysisOptions, output: OutputChannel, sink: any TimelineSink) throws {
    SystemCalls.ignoreBrokenPipes()
    let source: CaptureFileReader
    do {
        source = try CaptureFileReader(path: input.file, filter: input.filter(orOption: analysis.filter))
    } catch {
        throw fail(error.message, exitCode: 2)
    }
    var analyzerOptions = analysis.analyzerOptions
    do {
        analyzerOptions.keyLog = try analysis.openKeyLog()
    } catch {
        throw fail(error.message, exitCode: 2)
    }
    let analyzer = Analyzer(options: analyzerOptions, sink: sink)
    let (_, damage) = analyze(source, with: analyzer, shouldStop: { output.failed })
    output.flush()
    if let reason = output.failure { throw fail("cannot write output: \(reason)", exitCode: 4) }
    if let damage { throw fail(damage.message, exitCode: 3) }
}

/// Prints a one-line error to standard error and ends with the documented exit status.
func fail(_ message: String, exitCode: Int32) -> ExitCode {
    let line = Array("wstap: \(terminalSafe(message))\n".utf8)
    _ = line.withUnsafeBytes { SystemCalls.writeAll(SystemCalls.standardError, $0) }
    return ExitCode(exitCode)
}
