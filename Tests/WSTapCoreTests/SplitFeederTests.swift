import Testing
import TestSupport
import WSTapCore

/// The split feeder itself: a stage whose events depend on how bytes arrive must be caught.
struct SplitFeederTests {
    /// Reports each piece it is given, not the stream: every cut but the whole one differs.
    struct PieceCounter: StreamParser {
        mutating func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, emit: (Int) -> Void) {
            emit(bytes.count)
        }
        mutating func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: (Int) -> Void) {}
        mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (Int) -> Void) {}
    }

    /// Hands its bytes on as they come: joined, every cut is the same.
    struct Echo: StreamParser {
        mutating func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, emit: ([UInt8]) -> Void) {
            emit(Array(bytes))
        }
        mutating func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: ([UInt8]) -> Void) {}
        mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: ([UInt8]) -> Void) {}
    }

    @Test func aStageThatDependsOnTheCutsIsCaught() {
        let steps: [(StreamDirection, [UInt8])] = [(.clientToServer, Array("abcdef".utf8))]
        let counted = SplitFeeder.disagreements(steps, make: PieceCounter.init) { .line(String($0)) }
        #expect(counted.whole == [.line("6")])
        #expect(counted.differing.count == 6, "one byte at a time, and a cut at each of 5 offsets")
        let echoed = SplitFeeder.disagreements(steps, make: Echo.init) { .bytes(label: "c2s", $0) }
        #expect(echoed.whole == [.bytes(label: "c2s", Array("abcdef".utf8))])
        #expect(echoed.differing.isEmpty)
    }
}
