import Testing
import WSTapCore
import WSTapOutput

/// `--from` and `--to`: the forms a time is written in, and what each means for a capture.
@Suite struct TimeBoundTests {
    static let second: Int64 = 1_000_000_000
    /// 2026-12-07 21:25:39.25 UTC.
    static let start = CaptureTimestamp(seconds: 1_796_678_739, nanoseconds: 250_000_000)

    @Test func readsEveryForm() {
        #expect(TimeBound("+90") == .sinceStart(90 * Self.second))
        #expect(TimeBound("+1.5") == .sinceStart(1_500_000_000))
        #expect(TimeBound("1796678739.000000001") == .absolute(1_796_678_739 * Self.second + 1))
        #expect(TimeBound("2026-12-07T21:25:39Z") == .absolute(1_796_678_739 * Self.second))
        #expect(TimeBound("2026-12-07 21:25:39.5") == .absolute(1_796_678_739 * Self.second + 500_000_000))
        #expect(TimeBound("2000-02-29") == .absolute(951_782_400 * Self.second))
        #expect(TimeBound("21:25") == .timeOfDay((21 * 3600 + 25 * 60) * Self.second))
        #expect(TimeBound("21:25:40.125Z") == .timeOfDay((21 * 3600 + 25 * 60 + 40) * Self.second + 125_000_000))
    }

    @Test func refusesWhatIsNoTime() {
        for text in ["", "+", "abc", "12:3", "25:00", "2026-13-01", "2026-12-07X10:00", "1.2.3", "+1.1234567891", "10:00:00:00"] {
            #expect(TimeBound(text) == nil, "\(text)")
        }
    }

    @Test func resolvesAgainstTheCaptureStart() {
        #expect(TimeBound("+10")!.resolved(captureStart: Self.start) == 1_796_678_749 * Self.second + 250_000_000)
        #expect(TimeBound("21:30")!.resolved(captureStart: Self.start) == (1_796_678_739 - 39 - 25 * 60 + 30 * 60) * Self.second)
        #expect(TimeBound("1000")!.resolved(captureStart: Self.start) == 1000 * Self.second)
    }
}
