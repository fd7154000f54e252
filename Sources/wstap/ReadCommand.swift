import ArgumentParser
import WSTap
import WSTapParallel
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
        let sink = try options.makeSink(output: output)
        let watch = SeverityWatch(wrapping: sink)
        try decodeCaptureFile(input, analysis: options.analysis, output: output, sink: options.failOn == nil ? sink : watch)
        try checkMatched(sink)
        try watch.check(failOn: options.failOn)
    }
}

/// The capture files and their BPF expression, as tcpdump takes them: `-r FILE` or the first
/// words that name files or directories, then the expression's words.
struct CaptureFileArguments: ParsableArguments {
    @Option(name: .customShort("r"), help: "A capture file or directory (as tcpdump -r takes it; repeatable).")
    var readFiles: [String] = []

    @Option(name: .customLong("jobs"), help: "Decode with N jobs in parallel, each reading the capture files itself and decoding the connections whose addresses and ports fall to it; the output is the same as with --jobs 1 (default: one per processor, at most 8, for json, ndjson, summary and the text timeline without filters; one for the other outputs and for standard input).")
    var jobs: Int?

    /// `--jobs`, or by default one job per processor (at most 8: every job reads the whole capture
    /// and holds its own connection tables) when the jobs render `sink`'s output, else one: the
    /// other sinks get every event recorded by the jobs and rendered on one thread, which cost
    /// more than it saved (HAR and stats with 2 jobs: 1.15-1.2 times one job's time).
    func jobCount(rendering sink: any TimelineSink) -> Int {
        if let jobs { return jobs }
        guard let partitioned = sink as? any PartitionedSink, partitioned.rendersInParts else { return 1 }
        return min(8, SystemCalls.processorCount)
    }

    @Argument(help: "The capture files or directories ('-' for standard input; .gz read directly; several are read as one capture, merged by time, like a ring-buffer set), then an optional BPF expression as tcpdump takes it (e.g. tcp port 8080).")
    var words: [String] = []

    /// How many of the leading words name inputs: with `-r`, none; else `-` alone, or every word
    /// up to the first that names no file or directory (the expression's first word).
    private var inputWordCount: Int {
        guard readFiles.isEmpty else { return 0 }
        if words.first == "-" { return 1 }
        let count = words.prefix { word in
            if case .success = SystemCalls.fileStatus(word) { return true }
            return false
        }.count
        return max(count, words.isEmpty ? 0 : 1)
    }

    /// The inputs, in the order given.
    var inputs: [String] { readFiles + words.prefix(inputWordCount) }

    /// The words after the inputs, as tcpdump joins them, else `-f`.
    func filter(orOption option: String?) -> String? {
        let expression = words.dropFirst(inputWordCount).joined(separator: " ")
        return expression.isEmpty ? option : expression
    }

    func validate(filterOption: String?) throws {
        if let jobs, jobs < 1 { throw ValidationError("--jobs must be 1 or more") }
        if inputs.isEmpty { throw ValidationError("name the capture file (or -r FILE)") }
        let fileAfterStandardInput = readFiles.isEmpty && words.first == "-" && words.count > 1
            && { if case .success = SystemCalls.fileStatus(words[1]) { return true } else { return false } }()
        if (inputs.count > 1 && inputs.contains("-")) || fileAfterStandardInput {
            throw ValidationError("standard input ('-') is read alone, not with other files")
        }
        if words.count > inputWordCount, filterOption != nil { throw ValidationError("give the BPF filter once: -f or after the file") }
    }

    /// A reader for the one file, or for the set the inputs make (several files, a directory);
    /// what a set leaves out is said on standard error (with `notes`).
    func openSource(filter: String?, notes: Bool = true) throws(CaptureError) -> any PacketSource {
        // A missing file named after the first is taken for the expression's start: say what it is.
        if let word = words.dropFirst(inputWordCount).first,
           word.contains("/") || [".pcap", ".pcapng", ".cap", ".gz"].contains(where: { word.hasSuffix($0) }) {
            throw .cannotOpen(path: word, reason: "no such file or directory")
        }
        return try openCaptureSource(inputs, filter: filter, notes: notes)
    }
}

/// A reader for one file, or for the set several files or a directory make (merged by time);
/// what a set leaves out is said on standard error (with `notes`).
func openCaptureSource(_ inputs: [String], filter: String?, notes: Bool = true) throws(CaptureError) -> any PacketSource {
    let isDirectory: Bool
    if case .success = SystemCalls.directoryEntries(inputs[0]) { isDirectory = true } else { isDirectory = false }
    if inputs.count == 1, !isDirectory { return try CaptureFileReader(path: inputs[0], filter: filter) }
    // Files that overlap in time are open at once (one descriptor each, per job): allow as many
    // as the system lets this process have, not the shell's usual 1,024.
    SystemCalls.raiseOpenFileLimit()
    let set = try CaptureSetReader(paths: inputs, filter: filter)
    guard notes else { return set }
    for (path, reason) in set.skipped.prefix(10) { note("skipped \(path): \(reason)") }
    if set.skipped.count > 10 { note("skipped \(set.skipped.count - 10) more entries (not capture files)") }
    return set
}

/// Decodes the capture into `sink`, then flushes `output`; fails with the documented exit status
/// (2 unusable input, 3 damaged capture, 4 output lost).
func decodeCaptureFile(_ input: CaptureFileArguments, analysis: AnalysisOptions, output: OutputChannel, sink: any TimelineSink) throws {
    SystemCalls.ignoreBrokenPipes()
    SystemCalls.keepFreedMemoryForReuse()
    // With --jobs, every job reads the capture itself: standard input can be read only once.
    if let jobs = input.jobs, jobs > 1, input.inputs == ["-"] { note("standard input is decoded by one job: --jobs needs capture files") }
    var jobs = input.inputs == ["-"] ? 1 : input.jobCount(rendering: sink)
    let sources: [any PacketSource]
    do {
        let filter = input.filter(orOption: analysis.filter)
        // Every job reads every file: a gzip file is decompressed once for all of them.
        GzipFile.expectReaders(jobs)
        let first = try input.openSource(filter: filter)
        // Every job may hold every file of a set open at once (files that overlap in time).
        if let set = first as? CaptureSetReader, jobs > 1 {
            let descriptors = SystemCalls.openFileLimit - 64
            let fitting = max(1, descriptors / set.paths.count)
            if fitting < jobs {
                note("decoding with \(fitting) job\(fitting == 1 ? "" : "s"), not \(jobs): \(set.paths.count) files read by each job could pass the open-file limit (\(SystemCalls.openFileLimit))")
                jobs = fitting
            }
        }
        GzipFile.expectReaders(jobs)
        sources = try [first] + (1..<max(1, jobs)).map { _ throws(CaptureError) in
            try input.openSource(filter: filter, notes: false)
        }
    } catch {
        throw fail(error.message, exitCode: 2)
    }
    var analyzerOptions = analysis.analyzerOptions
    do {
        analyzerOptions.keyLog = try analysis.openKeyLog()
    } catch {
        throw fail(error.message, exitCode: 2)
    }
    let damage: CaptureError?
    if sources.count > 1 {
        damage = analyzeInParallel(sources, options: analyzerOptions, sink: sink, shouldStop: { output.failed }).damage
    } else {
        damage = analyze(sources[0], with: Analyzer(options: analyzerOptions, sink: sink), shouldStop: { output.failed }).damage
    }
    output.flush()
    if let reason = output.failure { throw fail("cannot write output: \(reason)", exitCode: 4) }
    if let damage { throw fail(damage.message, exitCode: 3) }
}

/// Exit 5 with one line when a display filter matched nothing, saying what the capture has.
func checkMatched(_ sink: any TimelineSink) throws {
    guard let filtering = sink as? FilteringSink, filtering.matchedNothing else { return }
    let has = filtering.connectionsSeen == 1 ? "1 connection" : "\(filtering.connectionsSeen) connections"
    let what = filtering.connectionsKept == 0 ? "no connection matched the display filter" : "no event of the \(filtering.connectionsKept) matching connection(s) passed the display filter"
    throw fail("\(what); the capture has \(has) (wstap stats lists them)", exitCode: 5)
}

/// Prints a one-line error to standard error and ends with the documented exit status.
func fail(_ message: String, exitCode: Int32) -> ExitCode {
    let line = Array("wstap: \(terminalSafe(message))\n".utf8)
    _ = line.withUnsafeBytes { SystemCalls.writeAll(SystemCalls.standardError, $0) }
    return ExitCode(exitCode)
}
