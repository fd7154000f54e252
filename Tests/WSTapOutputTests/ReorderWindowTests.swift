import Testing
@testable import WSTapOutput
import WSTapCore

/// The reorder window of streaming outputs: events written in time order within the window,
/// memory bounded, and what it could not order counted rather than hidden.
@Suite struct ReorderWindowTests {
    /// A channel in memory holding events for `window` nanoseconds.
    static func channel(window: Int64, maxHeld: Int = 8 << 20, maxMove: Int = 256 << 10) -> OutputChannel {
        let output = OutputChannel(inMemory: ())
        output.timeOrder = ReorderPolicy(windowNanoseconds: window, maxHeldBytes: maxHeld, maxMoveBytes: maxMove)
        return output
    }

    /// Writes one event line "<label>\n" at `time` (milliseconds), nil for an event without a time.
    static func event(_ label: String, at milliseconds: Int64?, to output: OutputChannel) {
        var text = label + "\n"
        text.withUTF8 { output.pending.append(UnsafeRawBufferPointer($0)) }
        output.endEvent(at: milliseconds.map { CaptureTimestamp(seconds: $0 / 1000, nanoseconds: UInt32($0 % 1000) * 1_000_000) })
    }

    static func lines(_ output: OutputChannel) -> [String] {
        String(decoding: output.memory, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func eventsWithinTheWindowAreWrittenInTimeOrderTiesInArrivalOrder() {
        let output = Self.channel(window: 1_000_000_000)
        for (label, time) in [("a", 10), ("c", 30), ("b", 20), ("b2", 20), ("d", 30), ("a2", 10)] as [(String, Int64)] {
            Self.event(label, at: time, to: output)
        }
        output.flush()
        #expect(Self.lines(output) == ["a", "a2", "b", "b2", "c", "d"])
        #expect(output.timeOrderShortfall.events == 0)
    }

    @Test func anEventWithoutATimeStaysWhereItArrived() {
        let output = Self.channel(window: 1_000_000_000)
        Self.event("a", at: 10, to: output)
        Self.event("x", at: nil, to: output)
        Self.event("b", at: 20, to: output)
        output.flush()
        #expect(Self.lines(output) == ["a", "x", "b"])
    }

    /// Events are held until the newest is a window later, then written (in memory: `memory`);
    /// an event older than one already written is written all the same, and counted.
    @Test func lateBeyondTheWindowIsWrittenAndCounted() {
        let output = Self.channel(window: 100_000_000)  // 100 ms
        output.flushesEachEvent = true
        Self.event("a", at: 1000, to: output)
        Self.event("b", at: 1050, to: output)
        #expect(Self.lines(output).isEmpty)
        Self.event("c", at: 1200, to: output)  // a and b are now more than 100 ms old
        #expect(Self.lines(output) == ["a", "b"])
        Self.event("late", at: 900, to: output)  // before a, which is written
        output.flush()
        #expect(Self.lines(output) == ["a", "b", "late", "c"])
        #expect(output.timeOrderShortfall.events == 1)
        #expect(output.timeOrderShortfall.worstNanoseconds == 150_000_000)
    }

    /// Live: with no packets, the wall clock moves the window on.
    @Test func advancingTheClockWritesWhatIsDue() {
        let output = Self.channel(window: 250_000_000)
        output.flushesEachEvent = true
        Self.event("a", at: 5000, to: output)
        output.advance(to: CaptureTimestamp(seconds: 5, nanoseconds: 100_000_000))
        #expect(Self.lines(output).isEmpty)
        output.advance(to: CaptureTimestamp(seconds: 5, nanoseconds: 300_000_000))
        #expect(Self.lines(output) == ["a"])
    }

    /// Whatever the times, the held output stays near the bound: past it the oldest half is
    /// written, whether due or not.
    @Test func heldOutputIsBounded() {
        let output = Self.channel(window: Int64.max / 2, maxHeld: 4096)
        var most = 0
        for index in 0..<2000 {
            Self.event(String(repeating: "x", count: 40) + "\(index)", at: Int64(index), to: output)
            most = max(most, output.pending.count)
        }
        #expect(most <= 4096 + 64)
        output.flush()
        #expect(Self.lines(output).count == 2000)
        #expect(Self.lines(output).last == String(repeating: "x", count: 40) + "1999")
    }

    /// An event whose place is further back than the move bound stays where it arrived, counted:
    /// one adversarial event costs bounded work.
    @Test func aLateEventIsNeverMovedFurtherThanTheBound() {
        let output = Self.channel(window: 1_000_000_000, maxMove: 10)
        Self.event("first-event", at: 20, to: output)
        Self.event("second-event", at: 30, to: output)
        Self.event("early", at: 10, to: output)
        output.flush()
        #expect(Self.lines(output) == ["first-event", "second-event", "early"])
        #expect(output.timeOrderShortfall.events == 1)
    }
}
