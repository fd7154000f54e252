import WSTap
import WSTapCore

/// A finding as lint reports it: an issue, the connection it belongs to (nil for the capture's).
public struct LintFinding: Sendable {
    public var severity: Severity
    public var code: String
    public var detail: String
    public var time: CaptureTimestamp?
}

/// One connection as lint judges it.
public struct LintConnection: Sendable {
    public var id: UInt64
    public var client: Endpoint
    public var server: Endpoint
    /// The request target (the Upgrade request's on a WebSocket connection).
    public var target: String?
    public var outcome: ConnectionOutcome?
    public var findings: [LintFinding] = []
    /// Findings past `LintCollector.maxFindingsPerConnection`, counted.
    public var findingsNotListed = 0

    /// The worst severity of its findings.
    public var worst: Severity? { findings.map(\.severity).max() }
}

/// Collects what `wstap lint` judges: every connection with its outcome and findings (the issues
/// the decoders and the outcome rules raised), and the capture's own findings. Keeps no payload;
/// findings are bounded per connection (`maxFindingsPerConnection`, the rest counted).
public final class LintCollector: TimelineSink {
    public static let maxFindingsPerConnection = 50

    public private(set) var connections: [LintConnection] = []
    public private(set) var captureFindings: [LintFinding] = []
    public private(set) var summary: CaptureSummary?
    private var open: [UInt64: Int] = [:]

    public init() {}

    public var receivesFramesAndMessages: Bool { false }

    public func receive(_ event: TimelineEvent) {
        guard let record = event.connection else {
            if case .issue(let issue) = event.kind {
                captureFindings.append(LintFinding(severity: issue.severity, code: issue.code, detail: issue.detail, time: issue.time))
            }
            return
        }
        switch event.kind {
        case .connectionOpened:
            open[record.id] = connections.count
            connections.append(LintConnection(id: record.id, client: record.client, server: record.server))
        case .httpRequest(let head):
            update(record.id) { $0.target = head.target }
        case .issue(let issue):
            update(record.id) { connection in
                guard connection.findings.count < Self.maxFindingsPerConnection else { return connection.findingsNotListed += 1 }
                connection.findings.append(LintFinding(severity: issue.severity, code: issue.code, detail: issue.detail, time: issue.time))
            }
        case .connectionClosed(let end):
            update(record.id) { $0.outcome = end.ending.outcome }
            open[record.id] = nil
        default:
            break
        }
    }

    public func finish(_ summary: CaptureSummary) { self.summary = summary }

    private func update(_ id: UInt64, _ change: (inout LintConnection) -> Void) {
        guard let index = open[id] else { return }
        change(&connections[index])
    }

    /// The worst severity of every finding, the capture's included.
    public var worst: Severity? {
        (connections.compactMap(\.worst) + captureFindings.map(\.severity)).max()
    }
}

/// What `wstap lint` writes, for one or more captures, each judged by a `LintCollector`
/// (docs/lint.md): text for people, JUnit XML for CI systems, JSON for scripts.
public enum LintReport {
    public typealias Capture = (name: String, lint: LintCollector)

    /// Whether a capture fails at `failOn`: a finding at or above that severity.
    public static func fails(_ lint: LintCollector, failOn: Severity) -> Bool {
        guard let worst = lint.worst else { return false }
        return worst >= failOn
    }

    /// One line per finding (`CAPTURE #3 client → server target  severity code: detail`), then a
    /// verdict per capture and one for all.
    public static func text(_ captures: [Capture], failOn: Severity) -> String {
        var text = ""
        var failed = 0
        for (name, lint) in captures {
            let safeName = terminalSafe(name)
            for finding in lint.captureFindings { text += "\(safeName)  \(line(finding))\n" }
            for connection in lint.connections {
                for finding in connection.findings {
                    text += "\(safeName) #\(connection.id) \(connection.client) → \(connection.server)"
                    if let target = connection.target { text += " \(terminalSafe(String(target.prefix(80))))" }
                    text += "  \(line(finding))\n"
                }
                if connection.findingsNotListed > 0 {
                    text += "\(safeName) #\(connection.id)  … \(connection.findingsNotListed) more findings\n"
                }
            }
            let verdictFails = fails(lint, failOn: failOn)
            if verdictFails { failed += 1 }
            text += "\(safeName): \(verdict(lint)): \(verdictFails ? "FAIL" : "pass")\n"
        }
        if captures.count > 1 {
            text += "\(captures.count) captures, \(failed) failed (--fail-on \(failOn.rawValue))\n"
        }
        return text
    }

    private static func line(_ finding: LintFinding) -> String {
        "\(finding.severity.rawValue) \(finding.code): \(terminalSafe(finding.detail))"
    }

    /// `12 connections (closed-cleanly 10, abnormal-closure 2); 2 errors, 1 warning, 0 info`.
    private static func verdict(_ lint: LintCollector) -> String {
        var outcomes: [String: Int] = [:]
        for connection in lint.connections { outcomes[connection.outcome?.rawValue ?? "open", default: 0] += 1 }
        let counts = counts(lint)
        let listed = outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return "\(lint.connections.count) connection\(lint.connections.count == 1 ? "" : "s")"
            + (listed.isEmpty ? "" : " (\(listed))")
            + "; " + plural(counts[.error] ?? 0, "error") + ", " + plural(counts[.warning] ?? 0, "warning") + ", \(counts[.info] ?? 0) info"
    }

    private static func plural(_ count: Int, _ noun: String) -> String { "\(count) \(noun)\(count == 1 ? "" : "s")" }

    private static func counts(_ lint: LintCollector) -> [Severity: Int] {
        var counts: [Severity: Int] = [:]
        for finding in lint.captureFindings { counts[finding.severity, default: 0] += 1 }
        for connection in lint.connections { for finding in connection.findings { counts[finding.severity, default: 0] += 1 } }
        return counts
    }

    /// JUnit XML (the schema Jenkins, GitLab and GitHub Actions read): one testsuite per capture,
    /// one testcase per connection (and one for the capture's own findings), a failure per
    /// finding at or above `failOn`; findings below it go to the testcase's system-out.
    public static func junit(_ captures: [Capture], failOn: Severity) -> String {
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        let totalTests = captures.reduce(0) { $0 + $1.lint.connections.count + 1 }
        let totalFailures = captures.reduce(0) { $0 + failingCases($1.lint, failOn: failOn) }
        xml += "<testsuites name=\"wstap lint\" tests=\"\(totalTests)\" failures=\"\(totalFailures)\">\n"
        for (name, lint) in captures {
            xml += "  <testsuite name=\"\(escaped(name))\" tests=\"\(lint.connections.count + 1)\" failures=\"\(failingCases(lint, failOn: failOn))\" errors=\"0\">\n"
            xml += testcase(name: "capture", classname: name, findings: lint.captureFindings, failOn: failOn)
            for connection in lint.connections {
                var caseName = "#\(connection.id) \(connection.client) → \(connection.server)"
                if let target = connection.target { caseName += " \(target.prefix(200))" }
                caseName += " (\(connection.outcome?.rawValue ?? "open"))"
                xml += testcase(name: caseName, classname: name, findings: connection.findings, failOn: failOn)
            }
            xml += "  </testsuite>\n"
        }
        return xml + "</testsuites>\n"
    }

    private static func failingCases(_ lint: LintCollector, failOn: Severity) -> Int {
        lint.connections.filter { $0.worst.map { $0 >= failOn } ?? false }.count
            + (lint.captureFindings.contains { $0.severity >= failOn } ? 1 : 0)
    }

    private static func testcase(name: String, classname: String, findings: [LintFinding], failOn: Severity) -> String {
        var xml = "    <testcase name=\"\(escaped(name))\" classname=\"\(escaped(classname))\""
        let failing = findings.filter { $0.severity >= failOn }
        let other = findings.filter { $0.severity < failOn }
        guard !findings.isEmpty else { return xml + "/>\n" }
        xml += ">\n"
        for finding in failing {
            xml += "      <failure type=\"\(escaped(finding.code))\" message=\"\(escaped(finding.severity.rawValue + " " + finding.code + ": " + finding.detail))\">\(escaped(finding.detail))</failure>\n"
        }
        if !other.isEmpty {
            xml += "      <system-out>\(escaped(other.map { "\($0.severity.rawValue) \($0.code): \($0.detail)" }.joined(separator: "\n")))</system-out>\n"
        }
        return xml + "    </testcase>\n"
    }

    /// Text made safe in XML attributes and text: markup escaped, characters XML 1.0 forbids
    /// (controls but tab and newline) written as U+FFFD.
    static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\t", "\n": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || (0xFFFE...0xFFFF).contains(scalar.value) { out += "\u{FFFD}" } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out
    }

    /// The same as data: `{"format":"wstap-lint","format_version":1,"fail_on","verdict","captures":[…]}`.
    public static func json(_ captures: [Capture], failOn: Severity) -> String {
        let out = OutputBuffer()
        let failed = captures.contains { fails($0.lint, failOn: failOn) }
        out.raw("{\"format\":\"wstap-lint\",\"format_version\":1,\"fail_on\":"); out.string(failOn.rawValue)
        out.raw(",\"verdict\":"); out.string(failed ? "fail" : "pass")
        out.raw(",\"captures\":[")
        for (index, capture) in captures.enumerated() {
            if index > 0 { out.comma() }
            out.raw("\n{\"name\":"); out.string(capture.name)
            out.raw(",\"verdict\":"); out.string(fails(capture.lint, failOn: failOn) ? "fail" : "pass")
            out.raw(",\"findings\":"); findings(capture.lint.captureFindings, into: out)
            out.raw(",\"connections\":[")
            for (position, connection) in capture.lint.connections.enumerated() {
                if position > 0 { out.comma() }
                out.raw("\n{\"id\":"); out.number(connection.id)
                out.raw(",\"client\":"); out.endpoint(connection.client)
                out.raw(",\"server\":"); out.endpoint(connection.server)
                out.raw(",\"target\":"); out.string(connection.target)
                out.raw(",\"outcome\":"); out.string(connection.outcome?.rawValue)
                out.raw(",\"findings\":"); findings(connection.findings, into: out)
                out.raw(",\"findings_not_listed\":"); out.number(connection.findingsNotListed)
                out.raw("}")
            }
            out.raw("]}")
        }
        out.raw("]}\n")
        return out.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    private static func findings(_ list: [LintFinding], into out: OutputBuffer) {
        out.raw("[")
        for (index, finding) in list.enumerated() {
            if index > 0 { out.comma() }
            out.raw("{\"time\":"); out.time(finding.time)
            out.raw(",\"severity\":"); out.string(finding.severity.rawValue)
            out.raw(",\"code\":"); out.string(finding.code)
            out.raw(",\"detail\":"); out.string(finding.detail)
            out.raw("}")
        }
        out.raw("]")
    }
}
