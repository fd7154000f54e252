import Dispatch
import Foundation
import WSTap
import WSTapCore
import WSTapCapture
import WSTapPackets
import WSTapTCP

/// Reads a capture with one analyzer per source in `sources` (each a reader of the same capture
/// from its start), each decoding the packets of its own connections (flow sharding: both
/// directions of a 4-tuple to the same job; every job reassembles every IP datagram and keeps the
/// segments of its own connections), and delivers to `sink` exactly the events, in exactly the
/// order, one analyzer would (`analyze`): the same connection ids, the same summary. A
/// `PartitionedSink` renders each job's connections on that job's thread too.
///
/// How: every job reads the whole capture, numbering packets in reading order, and decides for
/// each packet whose it is from its headers (so the packets a job decodes stay in its core's
/// caches: handing them over from one reading thread cost more than reading the file once per
/// job from the page cache); every job also applies one analyzer's idle-sweep rule (every 10
/// capture seconds of its segments) to all segments. Each event is noted with the reading
/// position that produced it and either rendered by the job's part of the sink or recorded (its
/// bytes copied). Every 4,096 packets or 1 MiB read, each job hands what it noted to this thread, which
/// merges the jobs' events by position (at one position only one job decodes a packet, and
/// closes at a sweep or at the end go in connection order, as one analyzer closes them), maps
/// each job's connection ids to the capture's (numbered in the order the connections were
/// opened), writes the parts' items and gives the recorded events to the sink.
///
/// Evictions past `maxConnections` are decided by a census of the whole capture's connections
/// that every job keeps (`ConnectionCensus`), so that every job evicts the same connections at the
/// same packet; a job's own table evicts on its own only past twice its share (a safety bound
/// that uneven hashing does not reach), and keeps zlib contexts up to twice its share of
/// `maxCompressionContexts`. `maxPendingBytesTotal` is shared out between the jobs.
/// Only when a capture reaches these limits can the events differ from one analyzer's. A damaged
/// capture is reported once, as one analyzer reports it.
public func analyzeInParallel(
    _ sources: [any PacketSource], options: AnalyzerOptions = AnalyzerOptions(), sink: any TimelineSink,
    shouldStop: () -> Bool = { false }
) -> (summary: CaptureSummary, damage: CaptureError?) {
    guard sources.count > 1 else {
        let analyzer = Analyzer(options: options, sink: sink)
        return sources.first.map { analyze($0, with: analyzer, shouldStop: shouldStop) } ?? (analyzer.finish(), nil)
    }
    return ParallelAnalysis(sources: sources, options: options, sink: sink).run(shouldStop: shouldStop)
}

/// What one of `jobs` jobs may hold of a limit that counts over the whole capture, when holding
/// its share would make its output differ from one analyzer's below the limit: twice its share
/// (uneven hashing stays below it, and all the jobs together hold at most twice the limit), at
/// most the limit, at least one.
private func twiceTheShare(of limit: Int, jobs: Int) -> Int {
    max(1, min(limit, 2 * (limit / jobs)))
}

/// Where in the reading an event was produced: before a packet (an idle sweep), by it, after it
/// (a damaged part of the input), or at the end.
private struct Position: Comparable {
    enum Phase: UInt8 {
        case sweepBefore = 0, packet, after, end
    }

    var sequence: UInt64
    var phase: Phase

    static func < (lhs: Position, rhs: Position) -> Bool {
        (lhs.sequence, lhs.phase.rawValue) < (rhs.sequence, rhs.phase.rawValue)
    }
}

/// What a job produced while reading one stretch of packets: its events in order with their
/// positions (each either an item its sink part rendered or an event kept with its bytes),
/// and the connections it numbered and removed; the last one also what the job counted.
private struct RecordedBatch: @unchecked Sendable {
    struct Entry {
        var position: Position
        /// The job's id of the event's connection.
        var connection: UInt64?
        /// Where the event is in `events`; nil: the sink part's next item.
        var recorded: Int32?
    }

    var entries: [Entry] = []
    var events: [KeptEvent] = []
    var arena = EventArena()
    /// Connections numbered (at the position that opened them) and removed, by the job's ids.
    var numbered: [(sequence: UInt64, id: UInt64)] = []
    var removed: [UInt64] = []
    /// What the job's sink part rendered in this stretch.
    var rendered: (any SinkPartBatch)?
    /// The capture's first packet's time, once read.
    var captureStart: CaptureTimestamp?
    /// Set on the job's last batch.
    var ending: Ending?

    struct Ending {
        var summary: CaptureSummary
        var last: CaptureTimestamp?
        var damage: CaptureError?
    }

    /// Room for about as much as `previous` held.
    init(sizedLike previous: RecordedBatch? = nil) {
        guard let previous else { return }
        entries.reserveCapacity(previous.entries.count)
        events.reserveCapacity(previous.events.count)
        arena = EventArena(sizedLike: previous.arena)
    }

    mutating func record(_ event: TimelineEvent, at position: Position) {
        entries.append(Entry(position: position, connection: event.connection?.id, recorded: Int32(events.count)))
        events.append(arena.keep(event))
    }

    /// Hands the event kept at `index` to `sink` with its connection's id in the capture, its
    /// bytes lent again.
    func deliver(_ index: Int, to sink: any TimelineSink, captureID: (UInt64) -> UInt64) {
        arena.lend(events[index]) { event in
            var event = event
            if let record = event.connection { event.connection?.id = captureID(record.id) }
            sink.receive(event)
        }
    }
}

/// A job's sink: notes each event with the position that produced it, rendered by the job's sink
/// part when there is one and the event is a connection's, else kept with its borrowed bytes
/// copied.
private final class EventRecorder: TimelineSink {
    var position = Position(sequence: 0, phase: .sweepBefore)
    var batch = RecordedBatch()
    let part: (any SinkPart)?
    private(set) var summary: CaptureSummary?
    let receivesFramesAndMessages: Bool

    init(receivesFramesAndMessages: Bool, part: (any SinkPart)?) {
        self.receivesFramesAndMessages = receivesFramesAndMessages
        self.part = part
    }

    func receive(_ event: TimelineEvent) {
        if let part, let connection = event.connection {
            if part.render(event) { batch.entries.append(RecordedBatch.Entry(position: position, connection: connection.id)) }
            return
        }
        // The merge says when the capture started.
        if case .captureStarted = event.kind { return }
        batch.record(event, at: position)
    }

    func finish(_ summary: CaptureSummary) { self.summary = summary }

    /// Notes what `sweep` (one analyzer's idle sweep) produces before the packet at `sequence`,
    /// then goes on at that packet.
    func sweep(before sequence: UInt64, _ sweep: () -> Void) {
        position = Position(sequence: sequence, phase: .sweepBefore)
        sweep()
        position = Position(sequence: sequence, phase: .packet)
    }

    /// What was noted since the last call, the part's items with it.
    func take() -> RecordedBatch {
        var taken = RecordedBatch(sizedLike: batch)
        swap(&taken, &batch)
        taken.rendered = part?.handOver()
        return taken
    }
}

/// One job: its own reader of the whole capture, its routing, its analyzer and its recorder,
/// all used by the job's thread only.
///
/// Every job reassembles every IP datagram (what a fragment completes is known only once it
/// does) and keeps what one analyzer would do with it only for its own connections, the first
/// job for the rest; each job holds the fragments of incomplete datagrams once, as one analyzer
/// does. The first job counts the fragments and the datagrams they make.
private final class Job: @unchecked Sendable {
    let index: Int
    /// The job's own queue, so its own thread: on the shared global queue the jobs competed for
    /// as many threads as there are cores with whatever else ran there.
    let queue: DispatchQueue
    let results = HandOver<RecordedBatch>(capacity: 2)
    private let source: any PacketSource
    private let recorder: EventRecorder
    private let analyzer: Analyzer
    private let routing: JobRouting
    /// The whole capture's open connections, for one analyzer's evictions.
    private let census: ConnectionCensus
    private let fragments = IPFragmentReassembler()
    /// The IP fragments read (the first job's count: every job reads them all).
    private var fragmentCount: UInt64 = 0
    var part: (any SinkPart)? { recorder.part }
    /// A batch is handed over once this many packets or bytes were read since the last one:
    /// the same stretches of the capture in every job, since every job reads all of it.
    static let batchPackets = 4_096
    static let batchBytes = Int.mebibytes(1)

    init(index: Int, jobCount: Int, source: any PacketSource, options: AnalyzerOptions, receivesFramesAndMessages: Bool,
         part: (any SinkPart)?) {
        census = ConnectionCensus(limits: options.reassembly)
        self.index = index
        self.source = source
        queue = DispatchQueue(label: "wstap-job-\(index)")
        let routing = JobRouting(jobCount: jobCount, job: index)
        self.routing = routing
        let recorder = EventRecorder(receivesFramesAndMessages: receivesFramesAndMessages, part: part)
        self.recorder = recorder
        var options = options
        options.announcesKeyLog = index == 0
        analyzer = Analyzer(options: options, sink: recorder)
        analyzer.shareConnections(
            ownEvictionLimit: twiceTheShare(of: options.reassembly.maxConnections, jobs: jobCount),
            numbered: { id in recorder.batch.numbered.append((recorder.position.sequence, id)) },
            removed: { id in recorder.batch.removed.append(id) })
    }

    /// Reads the capture to its end (or until the merge stops taking), handing over a batch every
    /// `batchPackets` packets or `batchBytes` bytes, and the last one with what the job counted.
    func run() {
        var sequence: UInt64 = 0
        var (batchPackets, batchBytes) = (0, 0)
        var first: CaptureTimestamp?
        var last: CaptureTimestamp?
        var damage: CaptureError?
        func damaged(_ error: CaptureError) {
            damage = damage ?? error
            // Every job reads the same damage; one analyzer reports it once.
            guard index == 0 else { return }
            recorder.position = Position(sequence: sequence, phase: .after)
            analyzer.reportCaptureDamage(error.message)
        }
        reading: while true {
            let read: PacketSourceRead
            do {
                read = try source.nextPacket()
            } catch {
                damaged(error)
                break
            }
            switch read {
            case .packet(let packet):
                sequence += 1
                if batchPackets >= Self.batchPackets || batchBytes >= Self.batchBytes {
                    (batchPackets, batchBytes) = (0, 0)
                    var batch = recorder.take()
                    batch.captureStart = first
                    guard results.put(batch) else { return }
                }
                if first == nil {
                    first = packet.timestamp
                    recorder.part?.start(at: packet.timestamp)
                }
                last = packet.timestamp
                batchPackets += 1
                batchBytes += packet.bytes.count
                route(packet, sequence: sequence)
            case .partDamaged(let error):
                damaged(error)
            case .noPacketYet:
                continue
            case .endOfCapture:
                break reading
            }
        }
        recorder.position = Position(sequence: .max, phase: .end)
        analyzer.finish(endingAt: last ?? .zero)
        var summary = recorder.summary ?? CaptureSummary()
        if index == 0 {
            summary.ipFragments &+= fragmentCount
            summary.countDatagrams(of: fragments)
        }
        var batch = recorder.take()
        batch.captureStart = first
        batch.ending = RecordedBatch.Ending(summary: summary, last: last, damage: damage)
        guard results.put(batch) else { return }
        _ = results.put(nil)
    }

    /// Decodes the packet's headers to learn whose it is: a TCP segment of this job's connections
    /// is analyzed; every job applies one analyzer's sweep rule to every segment, reassembles
    /// every IP datagram (keeping the segments of its own connections) and passes over the rest,
    /// which the first job analyzes.
    private func route(_ packet: CapturedPacket, sequence: UInt64) {
        let decoded = PacketDecoder.decode(packet)
        switch decoded {
        case .tcp(let segment):
            if takes(segment, sequence: sequence, at: packet.timestamp) { analyze(packet, as: decoded, sequence: sequence) }
        case .fragment(let fragment):
            recorder.position = Position(sequence: sequence, phase: .packet)
            if index == 0 {
                // Counted once, here.
                analyzer.count(packet)
                fragmentCount &+= 1
            }
            reassemble(fragment, at: packet.timestamp)
        case .skipped:
            if index == 0 { analyze(packet, as: decoded, sequence: sequence) }
        }
    }

    /// Applies one analyzer's idle sweep and evictions before a TCP segment (every job to every
    /// segment, each closing its own connections), then says whether the segment is this job's.
    private func takes(_ segment: TCPSegment, sequence: UInt64, at time: CaptureTimestamp) -> Bool {
        if routing.sweepIsDue(at: time) {
            census.sweep(at: time)
            recorder.sweep(before: sequence) { analyzer.sweepConnections(at: time) }
        }
        let hashes = routing.hashes(of: segment)
        if let evicted = census.process(segment, hashes: hashes, at: time) {
            recorder.sweep(before: sequence) { analyzer.evictConnections(evicted, at: time) }
        }
        return routing.owns(hashes)
    }

    private func analyze(_ packet: CapturedPacket, as decoded: PacketDecodeResult, sequence: UInt64) {
        recorder.position = Position(sequence: sequence, phase: .packet)
        analyzer.count(packet)
        analyzer.route(decoded, at: packet.timestamp)
    }

    /// Adds an IP fragment; of the datagram it completes, a TCP segment goes to its job's
    /// analyzer (after one analyzer's sweep, when one falls due there) and the rest to the first
    /// job's.
    private func reassemble(_ fragment: IPFragment, at time: CaptureTimestamp) {
        fragments.add(fragment, at: time) { datagram in
            let result = PacketDecoder.decodeReassembled(
                protocolNumber: fragment.protocolNumber, payload: datagram,
                source: fragment.source, destination: fragment.destination)
            switch result {
            case .tcp(let segment):
                if takes(segment, sequence: recorder.position.sequence, at: time) { analyzer.route(result, at: time) }
            case .fragment(let inner):
                if index == 0 { fragmentCount &+= 1 }
                reassemble(inner, at: time)
            case .skipped:
                if index == 0 { analyzer.route(result, at: time) }
            }
        }
    }
}

/// Which job decodes a connection's packets, and where one analyzer's idle sweeps fall: the same
/// decisions in every job, which all read every packet.
private final class JobRouting {
    let jobCount: Int
    /// The job this is the routing of.
    let ownJob: Int
    /// The sweep rule of one connection table, applied to every TCP segment of the capture.
    private var lastSweep: CaptureTimestamp?
    /// The same in every job: Swift's hash seed is the process's.
    private let seed = UInt64(bitPattern: Int64(0.hashValue))

    init(jobCount: Int, job: Int) {
        self.jobCount = jobCount
        ownJob = job
    }

    /// Whether a segment at `time` starts one analyzer's idle sweep.
    func sweepIsDue(at time: CaptureTimestamp) -> Bool {
        ConnectionTable.sweepIsDue(at: time, lastSweep: &lastSweep)
    }

    /// Whether the connection whose endpoints hash to `hashes` is this job's.
    func owns(_ hashes: EndpointHashes) -> Bool {
        job(of: hashes) == ownJob
    }

    /// The segment's endpoints hashed, for its job and the census.
    func hashes(of segment: TCPSegment) -> EndpointHashes {
        EndpointHashes(source: Self.mix(seed, segment.source), destination: Self.mix(seed, segment.destination))
    }

    /// The job of a connection: a hash of its two endpoints, in either order (a sum, so that
    /// neither needs comparing with the other), mapped onto the jobs by its high bits
    /// (`hash × jobs / 2⁶⁴`: a multiplication, where `%` was a division on every packet).
    ///
    /// A few multiplications (splitmix64's finalizer) rather than `Hasher`, whose SipHash cost
    /// about 260 instructions a packet; seeded per run (by `Hasher`'s own random seed) so that a
    /// capture cannot choose to put every connection in one job.
    private func job(of hashes: EndpointHashes) -> Int {
        Int(hashes.connection.multipliedFullWidth(by: UInt64(jobCount)).high)
    }

    @inline(__always)
    private static func mix(_ value: UInt64, _ endpoint: Endpoint) -> UInt64 {
        var mixed = value
        switch endpoint.address {
        case .v4(let address): mixed = mix(mixed ^ UInt64(address))
        case .v6(let high, let low): mixed = mix(mix(mixed ^ high) ^ low)
        }
        return mix(mixed ^ UInt64(endpoint.port))
    }

    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Batches from a job's thread to the merging one, at most `capacity` waiting: one lock and one
/// condition, which both sides wait on (for room, for an item).
private final class HandOver<Item>: @unchecked Sendable {
    private let capacity: Int
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var queue = FIFOQueue<Item?>()
    private var stopped = false

    init(capacity: Int) { self.capacity = capacity }

    /// Waits for room; nil says there is no more. False once the taker stopped.
    func put(_ item: Item?) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while queue.count >= capacity && !stopped { condition.wait() }
        guard !stopped else { return false }
        queue.append(item)
        condition.broadcast()
        return true
    }

    /// The next item; nil at the end.
    func take() -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while queue.isEmpty { condition.wait() }
        let item = queue.removeFirst()
        condition.broadcast()
        return item
    }

    /// The taker wants no more: the giver's waiting or next `put` returns false.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}

private final class ParallelAnalysis {
    private let sink: any TimelineSink
    private let jobs: [Job]
    /// Each job's ids of the connections still in its table, to the capture's table order (the
    /// order one analyzer's table opens them in, which orders its closes at a sweep or the end).
    private var captureIDs: [[UInt64: UInt64]]
    private var nextID: UInt64 = 1
    /// The ids the output shows, by table order: numbered as the connections' first events are
    /// written (the merged events are one analyzer's, in its order), as one analyzer numbers them.
    private var shownIDs: [UInt64: UInt64] = [:]
    private var nextShownID: UInt64 = 1
    private var startAnnounced = false

    init(sources: [any PacketSource], options: AnalyzerOptions, sink: any TimelineSink) {
        let count = sources.count
        var shared = options
        shared.numbersConnectionsAsShown = false
        shared.reassembly.maxPendingBytesTotal = max(1, options.reassembly.maxPendingBytesTotal / count)
        shared.maxCompressionContexts = twiceTheShare(of: options.maxCompressionContexts, jobs: count)
        self.sink = sink
        let partitioned = (sink as? any PartitionedSink).flatMap { $0.rendersInParts ? $0 : nil }
        jobs = sources.enumerated().map { index, source in
            Job(index: index, jobCount: count, source: source, options: shared,
                receivesFramesAndMessages: sink.receivesFramesAndMessages, part: partitioned?.makePart(jobs: count))
        }
        captureIDs = Array(repeating: [:], count: count)
    }

    /// The jobs read and decode on their own threads; this one merges their batches in turn.
    func run(shouldStop: () -> Bool) -> (summary: CaptureSummary, damage: CaptureError?) {
        let finished = DispatchGroup()
        for job in jobs { job.queue.async(group: finished) { job.run() } }
        var ending: [RecordedBatch.Ending?] = Array(repeating: nil, count: jobs.count)
        var first: CaptureTimestamp?
        merging: while !shouldStop() {
            var batches: [RecordedBatch] = []
            for job in jobs {
                guard let batch = job.results.take() else { break merging }
                batches.append(batch)
            }
            first = first ?? batches[0].captureStart
            for (index, batch) in batches.enumerated() where batch.ending != nil { ending[index] = batch.ending }
            merge(batches, first: first)
        }
        for job in jobs { job.results.stop() }
        finished.wait()
        for job in jobs { job.part?.finish() }
        var summary = CaptureSummary()
        for end in ending { summary.merge(end?.summary ?? CaptureSummary()) }
        // The capture's first and last packets in reading order, as one analyzer records them.
        summary.firstPacketTime = first
        summary.lastPacketTime = ending[0]?.last
        sink.finish(summary)
        return (summary, ending[0]?.damage)
    }

    /// Numbers the connections the jobs opened, in the order they were opened, then hands every
    /// event to the sink in reading order.
    private func merge(_ recorded: [RecordedBatch], first: CaptureTimestamp?) {
        var opened: [(sequence: UInt64, job: Int, id: UInt64)] = []
        for (job, batch) in recorded.enumerated() { opened += batch.numbered.map { ($0.sequence, job, $0.id) } }
        opened.sort { ($0.sequence, $0.job, $0.id) < ($1.sequence, $1.job, $1.id) }
        for connection in opened {
            captureIDs[connection.job][connection.id] = nextID
            nextID += 1
        }
        // One analyzer says when the capture started at its first packet, after what it said
        // before any (which key log decrypts TLS).
        func announceStart() {
            guard let first, !startAnnounced else { return }
            startAnnounced = true
            sink.receive(.captureStarted(first))
        }
        // Each job's events are in reading order already: merge them, taking the earliest next
        // event; closes at a sweep or at the end go in connection order, as one table closes them.
        // Taken apart once: reading a field through `recorded[job]` copied the whole batch.
        let entries = recorded.map(\.entries)
        let rendered = recorded.map(\.rendered)
        var next = [Int](repeating: 0, count: recorded.count)
        func key(_ job: Int) -> (Position, UInt64)? {
            guard next[job] < entries[job].count else { return nil }
            let entry = entries[job][next[job]]
            guard entry.position.phase == .sweepBefore || entry.position.phase == .end else { return (entry.position, 0) }
            return (entry.position, entry.connection.map { captureIDs[job][$0] ?? 0 } ?? 0)
        }
        var keys = recorded.indices.map(key)
        while true {
            var chosen: Int?
            for job in keys.indices {
                guard let candidate = keys[job] else { continue }
                if let current = chosen, let best = keys[current], !(candidate < best) { continue }
                chosen = job
            }
            guard let job = chosen else { break }
            if entries[job][next[job]].position.sequence > 0 { announceStart() }
            if let index = entries[job][next[job]].recorded {
                recorded[job].deliver(Int(index), to: sink) { shownID(captureIDs[job][$0] ?? $0) }
            } else {
                rendered[job]?.writeNext { shownID(captureIDs[job][$0] ?? $0) }
            }
            next[job] += 1
            keys[job] = key(job)
        }
        announceStart()
        for (job, batch) in recorded.enumerated() {
            for id in batch.removed {
                if let captureID = captureIDs[job].removeValue(forKey: id) { shownIDs[captureID] = nil }
            }
        }
    }

    /// The id shown for the connection `captureID` (table order) numbers: given at its first event.
    private func shownID(_ captureID: UInt64) -> UInt64 {
        if let shown = shownIDs[captureID] { return shown }
        let shown = nextShownID
        nextShownID += 1
        shownIDs[captureID] = shown
        return shown
    }
}
