import WSTapCore

/// How long and how much rendered output a streaming timeline holds so that it is written in time
/// order (docs/json-format.md, "Time order").
///
/// Events reach the exporters in the order the decoding produced them, which is not always the
/// order of their packets' times: bytes held behind a TCP hole keep their own packets' times when
/// the hole is declared later, a connection's first frames wait for the mid-stream decision, and
/// some capture files hold packets out of time order. Each event is rendered at once and held,
/// rendered, until the newest event is `window` later than it; then it is written. The held
/// output is bounded by `maxHeldBytes`: past it all but the newest sixteenth is written early
/// (what stays is moved to the front of the buffer: the sixteenth bounds that copy too).
public struct ReorderPolicy: Sendable {
    /// Capture time an event is held after it.
    public var windowNanoseconds: Int64
    /// The most rendered output held at once.
    public var maxHeldBytes: Int
    /// The most output moved to put one late event in place; later than that, it is written where
    /// it arrived and counted (so one adversarial event costs a bounded amount of work).
    public var maxMoveBytes: Int

    public init(windowNanoseconds: Int64, maxHeldBytes: Int = .mebibytes(1), maxMoveBytes: Int = .kibibytes(256)) {
        self.windowNanoseconds = windowNanoseconds
        self.maxHeldBytes = maxHeldBytes
        self.maxMoveBytes = maxMoveBytes
    }

    /// Reading a file: one second of capture time.
    public static let file = ReorderPolicy(windowNanoseconds: 1_000_000_000)
    /// Live: a quarter of a second, so that every event is shown well within a second of its packet.
    public static let live = ReorderPolicy(windowNanoseconds: 250_000_000)
}

/// What the reorder window could not put in order: events written after a later one.
public struct ReorderShortfall: Sendable, Equatable {
    /// Events written after an event with a later time.
    public var events = 0
    /// The largest difference between such an event's time and the latest time written before it.
    public var worstNanoseconds: Int64 = 0

    public init() {}
}

/// The rendered events of a streaming exporter, held in time order until their window passes.
///
/// The channel's buffer holds the rendered bytes of the held events in time order (ties in
/// arrival order), followed by whatever is being rendered. Each held event is an entry: its time,
/// and where it ends as a position in the whole output (so writing the front moves no entry).
struct ReorderWindow {
    private struct Entry {
        var time: Int64
        var end: Int
    }

    let policy: ReorderPolicy
    /// Held events, oldest first from `first`; times never decrease.
    private var entries: [Entry] = []
    private var first = 0
    /// Output position of the buffer's first byte (bytes written before it).
    private var written = 0
    /// Output position where the held events end and the event being rendered starts.
    private var heldEnd = 0
    /// The first `dueCount` held events may be written; they end at `dueEnd`.
    private var dueCount = 0
    private var dueEnd = 0
    /// The newest time seen, and the newest time written.
    private var newest = Int64.min
    private var newestWritten = Int64.min
    private(set) var shortfall = ReorderShortfall()

    init(policy: ReorderPolicy) {
        self.policy = policy
    }

    /// Nanoseconds since the epoch, saturating (absurd clocks sort at the ends, in arrival order).
    static func key(_ time: CaptureTimestamp) -> Int64 {
        time.nanoseconds(since: .zero)
    }

    /// The event rendered after the held ones is complete: put it in time order. An event
    /// without a time belongs where it arrived.
    mutating func commit(_ time: CaptureTimestamp?, in buffer: OutputBuffer) {
        let end = written + buffer.count
        guard end > heldEnd else { return }
        let key = time.map(Self.key) ?? max(newest, newestWritten)
        newest = max(newest, key)
        defer { heldEnd = end }
        guard first < entries.count, key < entries[entries.count - 1].time else {
            if key < newestWritten { countLate(key, behind: newestWritten) }
            entries.append(Entry(time: key, end: end))
            return
        }
        // Late: its place is after the last held event not later than it.
        var low = first, high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].time <= key { low = middle + 1 } else { high = middle }
        }
        let offset = low == first ? written : entries[low - 1].end
        let length = end - heldEnd
        guard heldEnd - offset <= policy.maxMoveBytes else {
            countLate(key, behind: entries[entries.count - 1].time)
            entries.append(Entry(time: entries[entries.count - 1].time, end: end))
            return
        }
        if key < newestWritten { countLate(key, behind: newestWritten) }
        buffer.moveTail(from: heldEnd - written, to: offset - written)
        for index in low..<entries.count { entries[index].end += length }
        entries.insert(Entry(time: key, end: offset + length), at: low)
        if low < first + dueCount {  // among the due ones, and older than some of them
            dueCount += 1
            dueEnd += length
        }
    }

    private mutating func countLate(_ key: Int64, behind later: Int64) {
        shortfall.events += 1
        shortfall.worstNanoseconds = max(shortfall.worstNanoseconds, later &- key)
    }

    /// What may be written now: the held events whose window has passed (all of them with
    /// `everything`), and the oldest ones while more than the memory bound is held. `forced` when
    /// the bound, not time, made some due. Nothing is written until `release`; what is found due
    /// stays due, so each event is looked at once.
    mutating func due(everything: Bool) -> (bytes: Int, forced: Bool) {
        let horizon = everything ? Int64.max : newest &- policy.windowNanoseconds
        let overBound = heldEnd - written > policy.maxHeldBytes
        while first + dueCount < entries.count {
            let entry = entries[first + dueCount]
            guard entry.time <= horizon || (overBound && heldEnd - dueEnd > policy.maxHeldBytes / 16) else { break }
            dueEnd = entry.end
            dueCount += 1
        }
        return (dueEnd - written, overBound)
    }

    /// The events found due (their bytes at the front of the buffer) were written and removed
    /// from the buffer; so were `extraBytes` rendered after them without an event (a summary at
    /// the end).
    mutating func release(extraBytes: Int = 0) {
        if dueCount > 0 { newestWritten = max(newestWritten, entries[first + dueCount - 1].time) }
        written = dueEnd + extraBytes
        heldEnd = max(heldEnd, written)
        first += dueCount
        dueCount = 0
        dueEnd = written
        if first == entries.count {
            entries.removeAll(keepingCapacity: entries.count < 1 << 16)
            first = 0
        } else if first >= 4096, first * 2 >= entries.count {
            entries.removeFirst(first)
            first = 0
        }
    }

    /// Live: no packet for a while. Capture time has moved on to `now` all the same.
    mutating func advance(to now: CaptureTimestamp) {
        newest = max(newest, Self.key(now))
    }
}
