import WSTap
import WSTapCore

/// Keeps JSON and NDJSON proportional to the capture when no `--max-payload` is given.
///
/// Every shown byte of a payload that was on the wire is a byte of the capture; only
/// decompressed messages can be larger than what carried them (permessage-deflate inflates up
/// to 1,032 to 1). Decompressed payloads are therefore shown whole while the bytes shown so far
/// stay within 64 MiB plus 8 times the frame payload bytes seen so far; past that, a message is
/// shown up to what is left and marked `truncated`, and one capture-level issue counts them.
struct InflatedPayloadBudget {
    static let headroom: UInt64 = .mebibytes(64)
    static let wireMultiple: UInt64 = 8
    /// This budget's share of the headroom: all of it, or a job's share (`--jobs`).
    private let headroom: UInt64
    private var wireBytes: UInt64 = 0
    private var shownBytes: UInt64 = 0
    private var cappedMessages = 0

    /// With `jobs` jobs, each has this share of the headroom, so that their payloads shown stay
    /// within the bound together (a capture near it can have messages cut that one job would not).
    init(sharedBy jobs: Int = 1) { headroom = Self.headroom / UInt64(max(1, jobs)) }

    /// Counts `part`'s cut messages as this budget's (for the one issue at the end).
    mutating func absorb(_ part: InflatedPayloadBudget) { cappedMessages += part.cappedMessages }

    mutating func frameSeen(_ frame: FrameRecord) {
        wireBytes.addSaturating(UInt64(frame.payload.count))
    }

    /// The most bytes of `message` to show: all of it unless it was decompressed past the budget.
    mutating func maxPayload(for message: MessageRecord) -> Int? {
        guard message.message.compressed, message.message.isDecoded else { return nil }
        var limit = headroom
        let (scaled, overflow) = wireBytes.multipliedReportingOverflow(by: Self.wireMultiple)
        limit.addSaturating(overflow ? UInt64.max : scaled)
        let left = limit > shownBytes ? limit - shownBytes : 0
        let count = UInt64(message.message.payload.count)
        if count <= left {
            shownBytes += count
            return nil
        }
        shownBytes += left
        cappedMessages += 1
        return Int(left)
    }

    /// The capture-level report when a message was cut; nil when none was.
    var issue: Issue? {
        cappedMessages > 0 ? .inflatedPayloadsCut(messages: cappedMessages, headroom: Self.headroom, multiple: Self.wireMultiple) : nil
    }
}
