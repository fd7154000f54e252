import WSTapCore

/// One end of a time window (`--from`, `--to`): a moment in UTC, or seconds after the capture's
/// first packet (the times the text timeline shows).
public enum TimeBound: Sendable, Equatable {
    /// Nanoseconds since the Unix epoch.
    case absolute(Int64)
    /// Nanoseconds after the capture's first packet (`+90`, `+1.5`).
    case sinceStart(Int64)
    /// A time of day (UTC, nanoseconds after midnight) on the day of the capture's first packet.
    case timeOfDay(Int64)

    /// Reads `+SECONDS` (after the capture's start), `SECONDS` since the epoch (as `-t e` shows
    /// them), `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][Z]` or `HH:MM[:SS[.fraction]]` (UTC, the latter
    /// on the capture's first day). Nil when it is none of these.
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        if bytes.first == UInt8(ascii: "+") {
            guard let value = Self.seconds(bytes.dropFirst()) else { return nil }
            self = .sinceStart(value)
        } else if let value = Self.seconds(bytes[...]), !bytes.contains(UInt8(ascii: ":")) {
            self = .absolute(value)
        } else if bytes.count >= 10, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-") {
            guard let year = Self.number(bytes[0..<4]), let month = Self.number(bytes[5..<7]), let day = Self.number(bytes[8..<10]),
                  (1...12).contains(month), (1...31).contains(day)
            else { return nil }
            var rest = bytes[10...]
            var clock: Int64 = 0
            if let separator = rest.first {
                guard separator == UInt8(ascii: "T") || separator == UInt8(ascii: " ") else { return nil }
                rest = rest.dropFirst()
                if rest.last == UInt8(ascii: "Z") { rest = rest.dropLast() }
                guard let parsed = Self.clock(rest) else { return nil }
                clock = parsed
            }
            self = .absolute(Self.daysSinceEpoch(year: year, month: month, day: day) * 86_400_000_000_000 + clock)
        } else if let clock = Self.clock(bytes.last == UInt8(ascii: "Z") ? bytes.dropLast() : bytes[...]) {
            self = .timeOfDay(clock)
        } else {
            return nil
        }
    }

    /// The bound in nanoseconds since the epoch, for a capture whose first packet is at `start`.
    public func resolved(captureStart start: CaptureTimestamp) -> Int64 {
        // Saturating: a capture's clock may say anything.
        let startNanoseconds = start.nanoseconds(since: .zero)
        switch self {
        case .absolute(let value): return value
        case .sinceStart(let offset): return startNanoseconds &+ offset
        case .timeOfDay(let clock):
            let day = startNanoseconds >= 0 ? startNanoseconds / 86_400_000_000_000 : (startNanoseconds + 1) / 86_400_000_000_000 - 1
            return day &* 86_400_000_000_000 &+ clock
        }
    }

    /// `SECONDS[.FRACTION]` in nanoseconds (up to nine decimals).
    private static func seconds(_ bytes: ArraySlice<UInt8>) -> Int64? {
        let parts = bytes.split(separator: UInt8(ascii: "."), maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = parts.first, !whole.isEmpty, whole.count <= 12, let value = number(whole) else { return nil }
        var nanoseconds: Int64 = 0
        if parts.count == 2 {
            let fraction = parts[1]
            guard !fraction.isEmpty, fraction.count <= 9, let digits = number(fraction) else { return nil }
            nanoseconds = digits * Int64(pow10(9 - fraction.count))
        }
        return value * 1_000_000_000 + nanoseconds
    }

    /// `HH:MM[:SS[.fraction]]` in nanoseconds after midnight.
    private static func clock(_ bytes: ArraySlice<UInt8>) -> Int64? {
        let parts = bytes.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
        guard parts.count == 2 || parts.count == 3, parts[0].count == 2, parts[1].count == 2,
              let hours = number(parts[0]), let minutes = number(parts[1]), hours < 24, minutes < 60
        else { return nil }
        var value = (hours * 3600 + minutes * 60) * 1_000_000_000
        if parts.count == 3 {
            guard parts[2].count >= 2, let seconds = seconds(parts[2]), seconds < 61 * 1_000_000_000 else { return nil }
            value += seconds
        }
        return value
    }

    /// ASCII digits only.
    private static func number(_ bytes: ArraySlice<UInt8>) -> Int64? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value: Int64 = 0
        for byte in bytes {
            guard byte >= 0x30, byte <= 0x39 else { return nil }
            value = value * 10 + Int64(byte - 0x30)
        }
        return value
    }

    private static func pow10(_ exponent: Int) -> Int { (0..<exponent).reduce(1) { value, _ in value * 10 } }

    /// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
    private static func daysSinceEpoch(year: Int64, month: Int64, day: Int64) -> Int64 {
        let shiftedYear = month <= 2 ? year - 1 : year
        let era = (shiftedYear >= 0 ? shiftedYear : shiftedYear - 399) / 400
        let yearOfEra = shiftedYear - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
