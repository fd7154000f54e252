import WSTap
import WSTapCore

/// One event's bytes in a sink part's channel: up to `end`, with its connection ids' slots up to
/// `slotsEnd`, written at `time`.
struct RenderedItem {
    var end: Int
    var slotsEnd: Int
    var time: CaptureTimestamp?
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
    /// What the last hand-over gave the merge, and how far the merge has written it.
    private let delivered = OutputBuffer(capacity: 1 << 16)
    private var deliveredItems: [RenderedItem] = []
    private var nextItem = 0
    private var nextByte = 0
    private var nextSlot = 0

    init(of whole: Exporter, writingTo destination: OutputChannel, jobs: Int) {
        self.whole = whole
        self.destination = destination
        exporter = whole.partExporter(output: channel, jobs: jobs)
        delivered.idSlots = []
    }

    func start(at time: CaptureTimestamp) { exporter.partStarted(at: time) }

    func render(_ event: TimelineEvent) -> Bool {
        let before = channel.renderedItemCount
        exporter.receive(event)
        return channel.renderedItemCount > before
    }

    func handOver() {
        // A huge item (a large message) must not stay resident in either buffer.
        delivered.removeAll(shrinkingAbove: 8 << 20, to: 1 << 16)
        delivered.swapContents(with: channel.pending)
        deliveredItems.removeAll(keepingCapacity: true)
        swap(&deliveredItems, &channel.renderedItems!)
        (nextItem, nextByte, nextSlot) = (0, 0, 0)
    }

    func writeNext(captureID: (UInt64) -> UInt64) {
        let item = deliveredItems[nextItem]
        nextItem += 1
        let output = destination.pending
        delivered.withBytes { bytes in
            guard nextSlot < item.slotsEnd, let slots = delivered.idSlots else {
                return output.append(UnsafeRawBufferPointer(rebasing: bytes[nextByte..<item.end]))
            }
            while nextSlot < item.slotsEnd {
                let slot = slots[nextSlot]
                output.append(UnsafeRawBufferPointer(rebasing: bytes[nextByte..<slot.offset]))
                output.number(captureID(slot.id))
                nextByte = slot.offset
                nextSlot += 1
            }
            output.append(UnsafeRawBufferPointer(rebasing: bytes[nextByte..<item.end]))
        }
        nextByte = item.end
        destination.endEvent(at: item.time)
    }

    func finish() { whole.absorb(exporter) }
}
