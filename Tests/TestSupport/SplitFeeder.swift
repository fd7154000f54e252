import WSTapCore

/// Feeds the same byte streams to a stage cut in every way a capture can cut them, so a test can
/// require the same events from each (swift-nio's `ByteToMessageDecoderVerifier` idea): whole,
/// one byte at a time, and cut once at every offset.
public enum SplitFeeder {
    /// One way of cutting each step's bytes into the pieces a stage receives.
    public struct Cut: CustomStringConvertible, Sendable {
        public let description: String
        fileprivate let pieces: @Sendable ([UInt8]) -> [[UInt8]]

        public static let whole = Cut(description: "whole") { [$0] }
        public static let byteByByte = Cut(description: "one byte at a time") { $0.map { [$0] } }

        /// Each step cut in two at `offset` (or left whole when it is shorter).
        public static func at(_ offset: Int) -> Cut {
            Cut(description: "cut at \(offset)") { bytes in
                offset > 0 && offset < bytes.count ? [Array(bytes[..<offset]), Array(bytes[offset...])] : [bytes]
            }
        }

        /// Every cut worth trying for steps of at most `longest` bytes.
        public static func all(longest: Int) -> [Cut] {
            [.whole, .byteByByte] + (1..<max(1, longest)).map(at)
        }
    }

    /// What a test keeps of one event: a line, or bytes that join the bytes of the line before
    /// when that one has the same label (a stage may hand on a stream's bytes in any pieces).
    public enum Record: Equatable {
        case line(String)
        case bytes(label: String, [UInt8])
    }

    /// Feeds `steps` in order to `stage`, each step's bytes cut by `cut`, then finishes both
    /// directions, and returns what `record` kept of the events, with byte runs joined.
    public static func feed<Stage: StreamParser>(
        _ steps: [(StreamDirection, [UInt8])], to stage: inout Stage, cut: Cut,
        record: (Stage.Event) -> Record?
    ) -> [Record] {
        var records: [Record] = []
        func keep(_ event: Stage.Event) {
            guard let new = record(event) else { return }
            if case .bytes(let label, let more) = new, case .bytes(label, let earlier)? = records.last {
                records[records.count - 1] = .bytes(label: label, earlier + more)
            } else {
                records.append(new)
            }
        }
        var time = CaptureTimestamp(seconds: 1, nanoseconds: 0)
        for (direction, bytes) in steps {
            for piece in cut.pieces(bytes) {
                piece.withUnsafeBytes { stage.receive($0, direction: direction, at: time, emit: keep) }
            }
            time = time.adding(seconds: 1)
        }
        for direction in StreamDirection.allCases { stage.finish(direction: direction, at: time, emit: keep) }
        return records
    }

    /// Feeds `steps` to a fresh stage in every cut; returns the whole feed's records and the cuts
    /// whose records differ from them (empty when the stage does not depend on how bytes arrive).
    public static func disagreements<Stage: StreamParser>(
        _ steps: [(StreamDirection, [UInt8])], make: () -> Stage, record: (Stage.Event) -> Record?
    ) -> (whole: [Record], differing: [(cut: Cut, records: [Record])]) {
        func run(_ cut: Cut) -> [Record] {
            var stage = make()
            return feed(steps, to: &stage, cut: cut, record: record)
        }
        let whole = run(.whole)
        let longest = steps.map(\.1.count).max() ?? 0
        let differing = Cut.all(longest: longest).dropFirst().compactMap { cut -> (cut: Cut, records: [Record])? in
            let records = run(cut)
            return records == whole ? nil : (cut, records)
        }
        return (whole, differing)
    }
}
