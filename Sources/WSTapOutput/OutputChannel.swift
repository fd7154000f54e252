import WSTap
import WSTapCore
/// Buffered bytes to a file descriptor or to memory; exporters write through one.
public final class OutputChannel {
    private let fileDescriptor: Int32?
    /// Bytes not yet written. The NDJSON exporter renders each line straight into it.
    let pending = OutputBuffer(capacity: OutputChannel.initialCapacity)
    private static let initialCapacity = 1 << 17
    /// Bytes gathered before a write: `writeBytes`, or the pipe's size when it was made larger.
    private let flushThreshold: Int
    private static let writeBytes = 1 << 16
    /// Everything written, when the channel writes to memory (tests, library users).
    public private(set) var memory: [UInt8] = []
    /// Set once a write failed (for example the reader of a pipe went away); later writes are dropped.
    public private(set) var failed = false
    /// Why output was lost, as one line; nil while all went out, and when the reader of a pipe
    /// went away (`| head`), which is a normal end rather than an error.
    public private(set) var failure: String?
    /// Flush after every event (live capture), rather than when the buffer fills.
    public var flushesEachEvent = false
    /// Streaming timelines: events held so that they are written in time order.
    private var reorder: ReorderWindow?

    /// Holds the events of a streaming exporter so that they are written in time order
    /// (set before the first event).
    public var timeOrder: ReorderPolicy? {
        get { reorder?.policy }
        set { reorder = newValue.map(ReorderWindow.init) }
    }

    /// What the time order could not achieve so far.
    public var timeOrderShortfall: ReorderShortfall { reorder?.shortfall ?? ReorderShortfall() }

    /// The report a streaming exporter writes at the end when some events could not be written
    /// in time order; nil when all were.
    var timeOrderIssue: Issue? {
        guard let reorder, reorder.shortfall.events > 0 else { return nil }
        let policy = reorder.policy
        let window = "\(Double(policy.windowNanoseconds) / 1e9) s of capture time, \(policy.maxHeldBytes >> 20) MiB of output"
        return .timelineOutOfOrder(events: reorder.shortfall.events, worstNanoseconds: reorder.shortfall.worstNanoseconds, window: window)
    }

    /// A sink part's channel (`StreamingPart`): every event's bytes stay in `pending`, one item
    /// each, with where their connection ids go, for the merge to write through the real channel.
    var renderedItems: RenderedItems?
    /// Items rendered since the channel was made (a plain count: `render` asks it twice an event).
    private(set) var renderedItemCount = 0

    /// The descriptor is the channel's own (an `-o` file): closed with the channel.
    private let ownsDescriptor: Bool

    /// Writes to `fileDescriptor` (standard output by default); `closesOnDeinit` hands the
    /// descriptor over.
    public init(fileDescriptor: Int32 = SystemCalls.standardOutput, closesOnDeinit: Bool = false) {
        self.fileDescriptor = fileDescriptor
        ownsDescriptor = closesOnDeinit
        // Through a pipe (`| jq`), writes of 64 KiB into a 64 KiB pipe made wstap and its reader
        // take turns every 64 KiB: a 1 MiB pipe and 1 MiB writes halve the cost (docs/performance.md).
        let pipeSize = SystemCalls.enlargePipe(fileDescriptor, to: Self.pipeBytes) ?? 0
        flushThreshold = max(Self.writeBytes, min(pipeSize, Self.pipeBytes))
    }

    /// What a pipe written to is asked to hold.
    static let pipeBytes = 1 << 20

    /// Keeps everything in `memory`.
    public init(inMemory: ()) {
        fileDescriptor = nil
        ownsDescriptor = false
        flushThreshold = Self.writeBytes
    }

    /// A sink part's channel: keeps each event's bytes as an item, connection ids as slots.
    init(renderingItems: ()) {
        flushThreshold = Self.writeBytes
        fileDescriptor = nil
        ownsDescriptor = false
        renderedItems = RenderedItems()
    }

    /// Writes a connection's id into `pending`; a sink part's channel leaves a slot for the id
    /// the capture gives the connection, which the merge writes.
    @inline(__always)
    func connectionID(_ id: UInt64) {
        if renderedItems != nil { renderedItems!.idSlots.append((pending.count, id)) } else { pending.number(id) }
    }

    /// A connection's id or null.
    func connectionID(_ id: UInt64?) {
        if let id { connectionID(id) } else { pending.raw("null") }
    }

    deinit {
        flush()
        if ownsDescriptor, let fileDescriptor { SystemCalls.close(fileDescriptor) }
    }

    /// Writes what an exporter rendered; a large rendering goes out as it is, without a copy.
    func write(_ rendered: OutputBuffer) {
        rendered.withBytes { write(bytes: $0) }
    }

    /// Writes bytes as they are.
    func write(bytes: UnsafeRawBufferPointer) {
        if bytes.count >= flushThreshold / 2 {
            flush()
            send(bytes)
            return
        }
        pending.append(bytes)
        if pending.count >= flushThreshold { flush() }
    }

    /// Marks the output as failed (a part of it could not be produced): later writes are dropped.
    func markFailed(_ reason: String) {
        if !failed { failure = reason }
        failed = true
    }

    public func write(_ text: String) {
        var text = text
        text.withUTF8 { write(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Called by exporters at the end of each event, with the event's time.
    public func endEvent(at time: CaptureTimestamp?) {
        if renderedItems != nil {
            renderedItemCount += 1
            return renderedItems!.items.append(RenderedItem(end: pending.count, slotsEnd: renderedItems!.idSlots.count, time: time))
        }
        guard reorder != nil else {
            if flushesEachEvent || pending.count >= flushThreshold { flush() }
            return
        }
        reorder!.commit(time, in: pending)
        if flushesEachEvent || pending.count >= min(flushThreshold, reorder!.policy.maxHeldBytes) { writeDue() }
    }

    /// Live, between batches of packets: capture time has moved on to `now`, and what is due is
    /// written. `nothingEarlierToCome`: the analyzer holds no bytes that could still become an
    /// earlier event (`Analyzer.holdsBytesForEarlierEvents`), so every held event is written now.
    public func advance(to now: CaptureTimestamp, nothingEarlierToCome: Bool = false) {
        guard reorder != nil else { return }
        if nothingEarlierToCome { return flush() }
        reorder!.advance(to: now)
        writeDue()
    }

    /// Writes the held events whose window has passed: live at once, otherwise in large pieces
    /// (at least half of what is held, so that moving the rest to the front stays linear).
    private func writeDue() {
        let due = reorder!.due(everything: false)
        guard due.bytes > 0,
              flushesEachEvent || due.forced || (due.bytes >= flushThreshold && due.bytes * 2 >= pending.count)
        else { return }
        pending.withBytes { send(UnsafeRawBufferPointer(rebasing: $0[..<due.bytes])) }
        pending.removeFirst(due.bytes)
        reorder!.release()
    }

    /// Writes everything, held events included.
    public func flush() {
        guard pending.count > 0 else { return }
        if reorder != nil {
            let due = reorder!.due(everything: true)
            reorder!.release(extraBytes: pending.count - due.bytes)
        }
        pending.withBytes { send($0) }
        // One huge line (a large message as base64) must not stay resident.
        pending.removeAll(shrinkingAbove: .mebibytes(4), to: Self.initialCapacity)
    }

    private func send(_ bytes: UnsafeRawBufferPointer) {
        guard let fileDescriptor else {
            memory.appendBytes(bytes)
            return
        }
        guard !failed, let error = SystemCalls.writeAll(fileDescriptor, bytes) else { return }
        failed = true
        if !error.isBrokenPipe { failure = error.reason }
    }
}
