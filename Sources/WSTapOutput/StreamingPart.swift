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
        bytes.idSlots = []
        bytes.swapContents(with: channel.pending)
        var items: [RenderedItem] = []
        items.reserveCapacity(channel.renderedItems!.count)
        swap(&items, &channel.renderedItems!)
        return Items(bytes: bytes, items: items, destination: destination)
    }

    func finish() { whole.absorb(exporter) }

    /// One hand-over's items and where the merge has got to in them.
    private final class Items: SinkPartBatch {
        private let bytes: OutputBuffer
        private let items: [RenderedItem]
        private let destination: OutputChannel
        private var nextItem = 0
        private var nextByte = 0
        private var nextSlot = 0

        init(bytes: OutputBuffer, items: [RenderedItem], destination: OutputChannel) {
            self.bytes = bytes
            self.items = items
            self.destination = destination
        }

        func writeNext(captureID: (UInt64) -> UInt64) {
            let item = items[nextItem]
            nextItem += 1
            let output = destination.pending
            bytes.withBytes { rendered in
                guard nextSlot < item.slotsEnd, let slots = bytes.idSlots else {
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

