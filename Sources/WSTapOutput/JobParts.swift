import WSTap
import WSTapParallel
import WSTapCore

// Everything the exporters do for `--jobs` (WSTapParallel): each job renders its own
// connections into a part of the exporter, on the job's thread; the merge writes the parts'
// items in the capture's order, with the capture's connection ids.

/// One event's bytes in a sink part's channel: up to `end`, with its connection ids' slots up to
/// `slotsEnd`, written at `time`.
struct RenderedItem {
    var end: Int
    var slotsEnd: Int
    var time: CaptureTimestamp?
}

/// The items a sink part's channel rendered, and where in its bytes connection ids go (each
/// with the job's id of the connection).
struct RenderedItems {
    var items: [RenderedItem] = []
    var idSlots: [(offset: Int, id: UInt64)] = []

    /// Room for about as many as `other` holds.
    init(sizedLike other: RenderedItems? = nil) {
        guard let other else { return }
        items.reserveCapacity(other.items.count)
        idSlots.reserveCapacity(other.idSlots.count)
    }
}

/// An exporter that writes one event at a time (text, NDJSON): a part of it is the same exporter
/// writing into a channel that keeps each event as an item.
protocol StreamingExporter: TimelineSink {
    /// The same exporter, writing into `output`, for one of `jobs` jobs.
    func partExporter(output: OutputChannel, jobs: Int) -> Self
    /// A part learns when the capture started (the whole exporter hears it as an event).
    func partStarted(at time: CaptureTimestamp)
    /// Adds what `part` counted (for the end of the output) to this exporter's counts.
    func absorb(_ part: Self)
}

extension StreamingExporter {
    func partStarted(at time: CaptureTimestamp) {}
    func absorb(_ part: Self) {}
}

/// A `SinkPart` of a streaming exporter: renders a job's events on the job's thread into its own
/// channel; the merge then copies each item into the real output, writing the capture's
/// connection ids into their slots, and ends the event there (so the time order and flushing are
/// the real channel's).
final class StreamingPart<Exporter: StreamingExporter>: SinkPart {
    private let whole: Exporter
    private let destination: OutputChannel
    private let channel = OutputChannel(renderingItems: ())
    private let exporter: Exporter

    init(of whole: Exporter, writingTo destination: OutputChannel, jobs: Int) {
        self.whole = whole
        self.destination = destination
        exporter = whole.partExporter(output: channel, jobs: jobs)
    }

    func start(at time: CaptureTimestamp) { exporter.partStarted(at: time) }

    func render(_ event: TimelineEvent) -> Bool {
        let before = channel.renderedItemCount
        exporter.receive(event)
        return channel.renderedItemCount > before
    }

    func handOver() -> any SinkPartBatch {
        // The rendered bytes move to the batch; the channel renders on into fresh memory of
        // about the same size (a huge item, a large message, is not kept for the next ones).
        let bytes = OutputBuffer(capacity: min(channel.pending.count, .mebibytes(8)))
        bytes.swapContents(with: channel.pending)
        var rendered = RenderedItems(sizedLike: channel.renderedItems)
        swap(&rendered, &channel.renderedItems!)
        return Items(bytes: bytes, rendered: rendered, destination: destination)
    }

    func finish() { whole.absorb(exporter) }

    /// One hand-over's items and where the merge has got to in them.
    private final class Items: SinkPartBatch {
        private let bytes: OutputBuffer
        private let items: [RenderedItem]
        private let slots: [(offset: Int, id: UInt64)]
        private let destination: OutputChannel
        private var nextItem = 0
        private var nextByte = 0
        private var nextSlot = 0

        init(bytes: OutputBuffer, rendered: RenderedItems, destination: OutputChannel) {
            self.bytes = bytes
            items = rendered.items
            slots = rendered.idSlots
            self.destination = destination
        }

        func writeNext(captureID: (UInt64) -> UInt64) {
            let item = items[nextItem]
            nextItem += 1
            let output = destination.pending
            bytes.withBytes { rendered in
                guard nextSlot < item.slotsEnd else {
                    return output.append(UnsafeRawBufferPointer(rebasing: rendered[nextByte..<item.end]))
                }
                while nextSlot < item.slotsEnd {
                    let slot = slots[nextSlot]
                    output.append(UnsafeRawBufferPointer(rebasing: rendered[nextByte..<slot.offset]))
                    output.number(captureID(slot.id))
                    nextByte = slot.offset
                    nextSlot += 1
                }
                output.append(UnsafeRawBufferPointer(rebasing: rendered[nextByte..<item.end]))
            }
            nextByte = item.end
            destination.endEvent(at: item.time)
        }
    }
}

extension TextExporter: PartitionedSink, StreamingExporter {
    /// Not with `-t d`: a line's time counts from the line before it, which only the merge knows.
    public var rendersInParts: Bool { style.timeFormat != .delta }

    public func makePart(jobs: Int) -> any SinkPart { StreamingPart(of: self, writingTo: output, jobs: jobs) }

    func partExporter(output: OutputChannel, jobs: Int) -> TextExporter { TextExporter(output: output, style: style) }

    func partStarted(at time: CaptureTimestamp) { start = time }
}

extension NDJSONExporter: PartitionedSink, StreamingExporter {
    public var rendersInParts: Bool { true }

    public func makePart(jobs: Int) -> any SinkPart { StreamingPart(of: self, writingTo: output, jobs: jobs) }

    /// Each part shows decompressed payloads within its share of the headroom (and 8 times its
    /// own frames' bytes), so that all together stay within the whole capture's bound.
    func partExporter(output: OutputChannel, jobs: Int) -> NDJSONExporter {
        NDJSONExporter(output: output, maxPayload: maxPayload, inflatedBudget: InflatedPayloadBudget(sharedBy: jobs))
    }

    func absorb(_ part: NDJSONExporter) { inflatedBudget.absorb(part.inflatedBudget) }
}

extension SummaryExporter: PartitionedSink {
    public var rendersInParts: Bool { true }

    /// The summary needs no event: a job's events are dropped where they happen, not recorded.
    public func makePart(jobs: Int) -> any SinkPart { IgnoringPart() }

    private final class IgnoringPart: SinkPart, SinkPartBatch {
        func start(at time: CaptureTimestamp) {}
        func render(_ event: TimelineEvent) -> Bool { false }
        func handOver() -> any SinkPartBatch { self }
        func writeNext(captureID: (UInt64) -> UInt64) {}
        func finish() {}
    }
}

extension JSONExporter: PartitionedSink {
    public var rendersInParts: Bool { true }

    public func makePart(jobs: Int) -> any SinkPart { Part(of: self, jobs: jobs) }

    /// A job's part: the job builds its connections' JSON; the merge writes each ended one as
    /// the whole exporter's next connection, numbered as the capture numbers it.
    private final class Part: SinkPart {
        private let whole: JSONExporter
        private let exporter: JSONExporter

        init(of whole: JSONExporter, jobs: Int) {
            self.whole = whole
            exporter = JSONExporter(partOf: whole, jobs: jobs)
        }

        func start(at time: CaptureTimestamp) {}

        func render(_ event: TimelineEvent) -> Bool {
            // Its first event numbers a connection: the merge hears of it here, not at its end.
            let before = exporter.partItems?.count ?? 0
            if case .connectionOpened = event.kind, let id = event.connection?.id { exporter.partItems?.append(.opened(id)) }
            exporter.receive(event)
            return (exporter.partItems?.count ?? 0) > before
        }

        func handOver() -> any SinkPartBatch {
            let items = exporter.partItems ?? []
            exporter.partItems = []
            return Ended(items: items, whole: whole, spares: exporter.spares)
        }

        func finish() {
            whole.inflatedBudget.absorb(exporter.inflatedBudget)
            whole.partSpoolFailure = whole.partSpoolFailure ?? exporter.spool.failure
        }
    }

    /// Connections a part saw open (numbered by the merge as it hears of them) and end, for the
    /// whole exporter to write in id order. Their lists moved to the part's spool are read back
    /// from it while the job goes on appending to it (at other offsets); their emptied buffers go
    /// back to the part's spares.
    private final class Ended: SinkPartBatch {
        private let items: [JSONExporter.PartItem]
        private let whole: JSONExporter
        private let spares: SpareBuffers
        private var next = 0

        init(items: [JSONExporter.PartItem], whole: JSONExporter, spares: SpareBuffers) {
            self.items = items
            self.whole = whole
            self.spares = spares
        }

        func writeNext(captureID: (UInt64) -> UInt64) {
            let item = items[next]
            next += 1
            switch item {
            case .opened(let id): whole.shown(captureID(id))
            case .ended(let connection, let end):
                whole.connectionEnded(connection, end: end, id: captureID(connection.record.id), spares: spares)
            }
        }
    }
}
