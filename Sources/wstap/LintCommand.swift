import ArgumentParser
import WSTap
import WSTapOutput
import WSTapCore

/// How `wstap lint` writes its verdict.
enum LintFormat: String, ExpressibleByArgument, CaseIterable {
    case text, junit, json
}

extension Severity: ExpressibleByArgument {}

struct LintCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lint",
        abstract: "Judge every connection of each capture against RFC 6455/7692 and how it ended; exit 1 when a finding reaches --fail-on.",
        discussion: """
            Each argument is one capture (a directory: its files merged by time, as 'read' takes \
            them). Prints one line per finding and a verdict per capture. Exit status: 0 clean, 1 a \
            finding at or above --fail-on, 2 an input that cannot be read, 4 output lost. \
            --format junit writes JUnit XML for CI (one testsuite per capture, one testcase per \
            connection); docs/lint.md has a recipe.
            """)

    @Argument(help: "Capture files or directories, each judged on its own.")
    var captures: [String] = []

    @Option(name: .long, help: "The severity that fails: error (default), warning or info.")
    var failOn: Severity = .error

    @Option(name: .long, help: "text (one line per finding and a verdict), junit (JUnit XML) or json.")
    var format: LintFormat = .text

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write to this file instead of standard output.")
    var outputFile: String?

    @OptionGroup var analysis: AnalysisOptions

    func validate() throws {
        if captures.isEmpty { throw ValidationError("name the captures to judge") }
    }

    func run() throws {
        SystemCalls.ignoreBrokenPipes()
        var options = analysis.analyzerOptions
        do {
            options.keyLog = try analysis.openKeyLog()
        } catch {
            throw fail(error.message, exitCode: 2)
        }
        var judged: [LintReport.Capture] = []
        for path in captures {
            let source: any PacketSource
            do {
                source = try openCaptureSource([path], filter: analysis.filter)
            } catch {
                throw fail(error.message, exitCode: 2)
            }
            let lint = LintCollector()
            _ = analyze(source, with: Analyzer(options: options, sink: lint))
            judged.append((path, lint))
        }
        let output = try openOutputFile(outputFile)
        switch format {
        case .text: output.write(LintReport.text(judged, failOn: failOn))
        case .junit: output.write(LintReport.junit(judged, failOn: failOn))
        case .json: output.write(LintReport.json(judged, failOn: failOn))
        }
        output.flush()
        if let reason = output.failure { throw fail("cannot write output: \(reason)", exitCode: 4) }
        if judged.contains(where: { LintReport.fails($0.lint, failOn: failOn) }) { throw ExitCode(1) }
    }
}

/// Passes every event on, and remembers the worst severity of the issues among them: what
/// `--fail-on` turns into an exit status for read, stats and sniff.
final class SeverityWatch: TimelineSink {
    private let sink: any TimelineSink
    private(set) var worst: Severity?

    init(wrapping sink: any TimelineSink) { self.sink = sink }

    var receivesFramesAndMessages: Bool { sink.receivesFramesAndMessages }

    func receive(_ event: TimelineEvent) {
        if case .issue(let issue) = event.kind { worst = max(worst ?? issue.severity, issue.severity) }
        sink.receive(event)
    }

    func finish(_ summary: CaptureSummary) { sink.finish(summary) }

    /// Exit status 1 when an issue reached `failOn`.
    func check(failOn: Severity?) throws {
        guard let failOn, let worst, worst >= failOn else { return }
        throw ExitCode(1)
    }
}
