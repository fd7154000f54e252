import WSTap
import WSTapCore

/// How the text timeline writes each line's time, as tshark's `-t` does.
public enum TimeFormat: String, Sendable, CaseIterable {
    /// Seconds since the capture's first packet (`r`, the default).
    case relative = "r"
    /// Time of day, UTC (`a`).
    case absolute = "a"
    /// Date and time of day, UTC (`ad`).
    case absoluteWithDate = "ad"
    /// Seconds since the previous line's event (`d`).
    case delta = "d"
    /// Seconds since 1970 (`e`).
    case epoch = "e"
}

extension OutputBuffer {
    /// `2026-12-01 18:26:05.989370` (UTC; `dateSeparator` between date and time), or without the
    /// date: the civil date from the days since 1970 (H. Hinnant's algorithm), so no calendar
    /// library is needed.
    func utcTime(_ time: CaptureTimestamp, withDate: Bool, dateSeparator: StaticString = " ") {
        let days = time.seconds >= 0 ? time.seconds / 86_400 : (time.seconds - 86_399) / 86_400
        let secondOfDay = time.seconds - days * 86_400
        if withDate {
            let shifted = days + 719_468
            let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
            let dayOfEra = shifted - era * 146_097
            let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
            let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
            let monthIndex = (5 * dayOfYear + 2) / 153
            let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
            let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
            let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
            number(UInt64(max(0, year)), width: 4); raw("-"); number(UInt64(month), width: 2); raw("-"); number(UInt64(day), width: 2)
            raw(dateSeparator)
        }
        number(UInt64(secondOfDay / 3600), width: 2); raw(":")
        number(UInt64(secondOfDay % 3600 / 60), width: 2); raw(":")
        number(UInt64(secondOfDay % 60), width: 2); raw(".")
        number(UInt64(time.nanoseconds / 1000), width: 6)
    }
}

/// `2026-12-01 18:26:05.989370` (UTC), for text assembled outside a buffer.
func utcDateTime(_ time: CaptureTimestamp) -> String {
    let text = OutputBuffer()
    text.utcTime(time, withDate: true)
    return text.withBytes { String(decoding: $0, as: UTF8.self) }
}
