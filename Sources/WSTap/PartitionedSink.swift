/// A sink whose rendering several jobs of `analyzeInParallel` share: each job hands the events of
/// its own connections to a part of the sink, which renders them on the job's thread, and the
/// sink writes what the parts rendered in the capture's order (the merge only copies). Events of
/// no connection (capture-level issues) still reach the sink itself, in their place.
public protocol PartitionedSink: TimelineSink {
    /// A part for one of `jobs` jobs; nil when this sink must see every event itself (for example
    /// a text timeline whose times count from the line before, which only the merge knows).
    func makePart(jobs: Int) -> (any SinkPart)?
}

/// One job's share of a `PartitionedSink`.
///
/// `render` runs on the job's thread; `handOver`, `writeNext` and `finish` on the merging
/// thread, `handOver` only while the job is idle. Connection ids in a part are the job's: the
/// merge says which id the capture gives each one when it writes.
public protocol SinkPart: AnyObject {
    /// Before the job's first event: when the capture started.
    func start(at time: CaptureTimestamp)
    /// Renders an event of one of the job's connections (its borrowed bytes are valid only for
    /// the call); true when that made an item for `writeNext`, false when it wrote nothing.
    func render(_ event: TimelineEvent) -> Bool
    /// The items rendered since the last hand-over become the ones `writeNext` takes, in order.
    func handOver()
    /// Writes the next handed-over item through the sink, each connection id as `captureID` maps it.
    func writeNext(captureID: (UInt64) -> UInt64)
    /// After the last item, before the sink's `finish`: adds what the part counted to the sink.
    func finish()
}
