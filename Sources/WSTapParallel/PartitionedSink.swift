import WSTap
import WSTapCore

/// A sink whose rendering several jobs of `analyzeInParallel` share: each job hands the events of
/// its own connections to a part of the sink, which renders them on the job's thread, and the
/// sink writes what the parts rendered in the capture's order (the merge only copies). Events of
/// no connection (capture-level issues) still reach the sink itself, in their place.
public protocol PartitionedSink: TimelineSink {
    /// Whether the jobs render this sink's events in parts; false when it must see every event
    /// itself (for example a text timeline whose times count from the line before, which only
    /// the merge knows).
    var rendersInParts: Bool { get }
    /// A part for one of `jobs` jobs (asked only when `rendersInParts`).
    func makePart(jobs: Int) -> any SinkPart
}

/// One job's share of a `PartitionedSink`. Connection ids in a part are the job's: the merge
/// says which id the capture gives each one when it writes.
public protocol SinkPart: AnyObject {
    /// Job's thread, before its first event: when the capture started.
    func start(at time: CaptureTimestamp)
    /// Job's thread: renders an event of one of the job's connections (its borrowed bytes are
    /// valid only for the call); true when that made an item to write, false when it wrote nothing.
    func render(_ event: TimelineEvent) -> Bool
    /// Job's thread: the items rendered since the last hand-over, for the merge to write.
    func handOver() -> any SinkPartBatch
    /// Merging thread, after the last item is written and before the sink's `finish`: adds what
    /// the part counted to the sink.
    func finish()
}

/// Items a `SinkPart` rendered, handed from the job's thread to the merging one.
public protocol SinkPartBatch: AnyObject {
    /// Writes the next item through the sink, each connection id as `captureID` maps it.
    func writeNext(captureID: (UInt64) -> UInt64)
}
