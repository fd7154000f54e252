import ArgumentParser
import WSTap
import WSTapOutput
import WSTapLive
import WSTapCore

struct ReadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Decode a .pcap or .pcapng file ('-' reads standard input).")

    @Argument(help: "The capture file.")
    var file: String

    @OptionGroup var options: DecodeOptions

    func run() throws {
        SystemCalls.ignoreBrokenPipes()
        let source: CaptureFileReader
        do {
            source = try CaptureFileReader(path: file, filter: options.filter)
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
        let analyzer = Analyzer(
            options: analyzerOptions,
            sink: options.format.makeSink(output: output, maxPayload: options.maxPayload, verbose: options.verbose))
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
