import Dispatch
import WSTapCore
import WSTapCapture
import WSTapPackets
import WSTapTCP
import WSTapWebSocket

/// Reads a capture with `jobs` analyzers at once, each given the packets of its own connections
/// (flow sharding: both directions of a 4-tuple to the same job, IP fragments to the job of the
/// connection they complete), and delivers to `sink` exactly the events, in exactly the order,
/// one analyzer would (`analyze`): the same connection ids, the same summary. A
/// `PartitionedSink` renders each job's connections on that job's thread too.
///
/// How: the reading thread decodes each packet's headers to pick its job and numbers packets in
/// reading order; it also computes the capture's idle-sweep points (one analyzer sweeps every 10
/// capture seconds of its segments) and gives them to every job. Packets go in batches; the jobs
/// decode a batch in parallel, each event noted with the reading position that produced it and
/// either rendered by the job's part of the sink or recorded (its bytes copied); then the events
/// are merged by that position (at one position only one job decodes a packet, and closes at a
/// sweep or at the end go in connection order, as one analyzer closes them), each job's connection
/// ids are mapped to the capture's (numbered in the order the connections were opened), and on
/// this thread the parts' items are written and the recorded events given to the sink.
///
/// Limits that count over all connections (`maxConnections`, `maxPendingBytesTotal`) are shared
/// out between the jobs: only when a capture reaches them can the events differ from one
/// analyzer's.
public func analyzeInParallel(
    _ source: any PacketSource, jobs: Int, options: AnalyzerOptions = AnalyzerOptions(), sink: any TimelineSink,
    shouldStop: () -> Bool = { false }
) -> (summary: CaptureSummary, damage: CaptureError?) {
    ParallelAnalysis(jobs: max(1, jobs), options: options, sink: sink).run(source, shouldStop: shouldStop)
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

/// A job's share of one batch: its packets, each with its place in the reading, and what happens
/// between them.
private struct WorkBatch: Sendable {
    enum Mark: Sendable {
        case sweep(CaptureTimestamp)
        case damage(String)
    }

    var packets: PacketBatch
    var sequences: [UInt64] = []
    /// The capture's first packet's time, once read.
    var captureStart: CaptureTimestamp?
    /// Marks, each applied before the packet at `beforePacket` (or after the last one), at `sequence`.
    var marks: [(beforePacket: Int, sequence: UInt64, mark: Mark)] = []

    /// Room for a job's share of a batch read for `jobs` jobs.
    init(jobs: Int) {
        let packets = Reader.batchPackets / jobs + Reader.batchPackets / 8
        self.packets = PacketBatch(reservingPackets: packets, bytes: Reader.batchBytes / jobs + Reader.batchBytes / 8)
        sequences.reserveCapacity(packets)
    }

    mutating func append(_ packet: CapturedPacket, sequence: UInt64) {
        packets.append(packet)
        sequences.append(sequence)
    }
}

/// What a job produced while decoding one batch: its events in order with their positions (each
/// either an item its sink part rendered or an event recorded with its bytes), and the
/// connections it numbered and removed.
private struct RecordedBatch {
    struct Entry {
        var position: Position
        /// The job's id of the event's connection.
        var connection: UInt64?
        /// Where the event is in `events`; nil: the sink part's next item.
        var recorded: Int32?
    }

    struct Recorded {
        var event: TimelineEvent
        var payload: Range<Int>
        var gaps: Range<Int>
    }

    var entries: [Entry] = []
    var events: [Recorded] = []
    var payloads: [UInt8] = []
    var gaps: [PayloadGap] = []
    /// Connections numbered (at the position that opened them) and removed, by the job's ids.
    var numbered: [(sequence: UInt64, id: UInt64)] = []
    var removed: [UInt64] = []

    mutating func clear() {
        entries.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        payloads.removeAll(keepingCapacity: payloads.capacity <= 64 << 20)
        gaps.removeAll(keepingCapacity: true)
        numbered.removeAll(keepingCapacity: true)
        removed.removeAll(keepingCapacity: true)
    }

    mutating func record(_ event: TimelineEvent, at position: Position, payload: Range<Int> = 0..<0, gaps: Range<Int> = 0..<0) {
        entries.append(Entry(position: position, connection: event.connection?.id, recorded: Int32(events.count)))
        events.append(Recorded(event: event, payload: payload, gaps: gaps))
    }

    mutating func keep(_ bytes: UnsafeRawBufferPointer) -> Range<Int> {
        let start = payloads.count
        payloads.appendBytes(bytes)
        return start..<payloads.count
    }

    mutating func keep(_ list: UnsafeBufferPointer<PayloadGap>) -> Range<Int> {
        let start = gaps.count
        gaps.append(contentsOf: list)
        return start..<gaps.count
    }

    /// Hands `recorded` to `sink` with its connection's id in the capture, its bytes (kept in
    /// `payloads` and `gaps`) lent again.
    static func deliver(
        _ recorded: Recorded, payloads: UnsafeRawBufferPointer, gaps: UnsafeBufferPointer<PayloadGap>, to sink: any TimelineSink,
        captureID: (UInt64) -> UInt64
    ) {
        var event = recorded.event.renumbered(captureID)
        switch event {
        case .frame(let record, var frame):
            frame.payload = UnsafeRawBufferPointer(rebasing: payloads[recorded.payload])
            frame.gaps = UnsafeBufferPointer(rebasing: gaps[recorded.gaps])
            event = .frame(record, frame)
        case .message(let record, var message):
            message.message.payload = UnsafeRawBufferPointer(rebasing: payloads[recorded.payload])
            message.message.gaps = UnsafeBufferPointer(rebasing: gaps[recorded.gaps])
            event = .message(record, message)
        default:
            break
        }
        sink.receive(event)
    }
}

/// A job's sink: notes each event with the position that produced it, rendered by the job's sink
/// part when there is one and the event is a connection's, else recorded with its borrowed bytes
/// copied.
private final class EventRecorder: TimelineSink {
    var position = Position(sequence: 0, phase: .sweepBefore)
    var batch = RecordedBatch()
    let part: (any SinkPart)?
    /// The last frame's length and where its bytes were kept.
    private var lastFrame: (count: Int, kept: Range<Int>)?
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
        switch event {
        case .captureStarted:
            return  // The parallel analysis says when the capture started.
        case .frame(let record, var frame):
            let (payload, gaps) = (batch.keep(frame.payload), batch.keep(frame.gaps))
            lastFrame = (frame.payload.count, payload)
            frame.payload = UnsafeRawBufferPointer(start: nil, count: 0)
            frame.gaps = UnsafeBufferPointer(start: nil, count: 0)
            batch.record(.frame(record, frame), at: position, payload: payload, gaps: gaps)
        case .message(let record, var message):
            // A message that is the frame just before it (`isFramePayload`) has that frame's bytes,
            // just kept: kept once.
            let bytes = message.message.payload
            let payload = message.message.isFramePayload && lastFrame?.count == bytes.count ? lastFrame!.kept : batch.keep(bytes)
            let gaps = batch.keep(message.message.gaps)
            message.message.payload = UnsafeRawBufferPointer(start: nil, count: 0)
            message.message.gaps = UnsafeBufferPointer(start: nil, count: 0)
            batch.record(.message(record, message), at: position, payload: payload, gaps: gaps)
        default:
            batch.record(event, at: position)
        }
    }

    func finish(_ summary: CaptureSummary) { self.summary = summary }

    /// A delivered batch's storage, emptied, for the next one (its capacity kept).
    private var spare: RecordedBatch?

    /// What was recorded since the last call (the part's items handed over with it); only while
    /// the job is idle.
    func take() -> RecordedBatch {
        lastFrame = nil
        part?.handOver()
        defer { batch = spare ?? RecordedBatch() ; spare = nil }
        return batch
    }

    /// Takes back a delivered batch, to record into again.
    func recycle(_ delivered: consuming RecordedBatch) {
        delivered.clear()
        spare = delivered
    }
}

/// One analyzer and its recorder; used by one thread at a time (batches are separated by a barrier).
private final class Job: @unchecked Sendable {
    let index: Int
    /// The job's own queue, so its own thread: on the shared global queue the reading thread
    /// and the jobs competed for as many threads as there are cores, and two jobs ran one after
    /// the other on a 2-core machine (a queue made here may have a thread beyond the cores).
    let queue: DispatchQueue
    let recorder: EventRecorder
    private var analyzer: Analyzer?
    private var started = false

    init(index: Int, options: AnalyzerOptions, receivesFramesAndMessages: Bool, part: (any SinkPart)?) {
        self.index = index
        queue = DispatchQueue(label: "wstap-job-\(index)")
        let recorder = EventRecorder(receivesFramesAndMessages: receivesFramesAndMessages, part: part)
        self.recorder = recorder
        let role = JobRole(
            announcesCaptureIssues: index == 0,
            connectionNumbered: { id, _ in recorder.batch.numbered.append((recorder.position.sequence, id)) },
            connectionRemoved: { id in recorder.batch.removed.append(id) })
        analyzer = Analyzer(options: options, sink: recorder, job: role)
    }

    func process(_ batch: WorkBatch) {
        guard let analyzer else { return }
        if !started, let start = batch.captureStart {
            started = true
            recorder.part?.start(at: start)
        }
        var markIndex = 0
        func applyMarks(before packetIndex: Int) {
            while markIndex < batch.marks.count, batch.marks[markIndex].beforePacket == packetIndex {
                let mark = batch.marks[markIndex]
                switch mark.mark {
                case .sweep(let time):
                    recorder.position = Position(sequence: mark.sequence, phase: .sweepBefore)
                    analyzer.sweepConnections(at: time)
                case .damage(let message):
                    recorder.position = Position(sequence: mark.sequence, phase: .after)
                    analyzer.reportCaptureDamage(message)
                }
                markIndex += 1
            }
        }
        var packetIndex = 0
        batch.packets.forEachPacket { packet in
            applyMarks(before: packetIndex)
            recorder.position = Position(sequence: batch.sequences[packetIndex], phase: .packet)
            analyzer.process(packet)
            packetIndex += 1
        }
        applyMarks(before: packetIndex)
    }

    func finish(endingAt end: CaptureTimestamp) {
        recorder.position = Position(sequence: .max, phase: .end)
        analyzer?.finish(endingAt: end)
        analyzer = nil
    }
}

/// The reading thread's routing: which job decodes each packet, and where the idle sweeps fall.
private struct PacketRouter {
    let jobCount: Int
    /// The sweep rule of one connection table, applied to every TCP segment of the capture.
    private var lastSweep: CaptureTimestamp?
    /// Reassembles fragments only to learn which connection they complete; the fragments
    /// themselves wait here, then all go to that connection's job, which reassembles them again.
    private let fragments = IPFragmentReassembler()
    private var held: [HeldKey: PacketBatch] = [:]
    private var heldOrder = FIFOQueue<HeldKey>()
    private var heldBytes = 0
    /// Fragments held past this (datagrams the reassembler gave up) go to the first job, as they came.
    static let maxHeldBytes = 64 << 20

    private struct HeldKey: Hashable {
        var source: IPAddress
        var destination: IPAddress
        var identification: UInt32
        var protocolNumber: UInt8
    }

    init(jobCount: Int) { self.jobCount = jobCount }

    /// The job of a connection: a hash of its two endpoints, in either order.
    ///
    /// A few multiplications (splitmix64's finalizer) rather than `Hasher`, whose SipHash cost
    /// the reading thread about 260 instructions a packet; seeded per run (by `Hasher`'s own
    /// random seed) so that a capture cannot choose to put every connection in one job.
    private func job(of segment: TCPSegment) -> Int {
        let (low, high) = segment.source < segment.destination ? (segment.source, segment.destination) : (segment.destination, segment.source)
        return Int(Self.mix(Self.mix(Self.seed, low), high) % UInt64(jobCount))
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

    private static let seed = UInt64(bitPattern: Int64(0.hashValue))

    @inline(__always)
    private static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Sweep marks for every job when a segment at `time` starts a sweep.
    private mutating func sweepIfDue(at time: CaptureTimestamp, sequence: UInt64, into batches: inout [WorkBatch]) {
        guard ConnectionTable.sweepIsDue(at: time, lastSweep: &lastSweep) else { return }
        for index in batches.indices {
            batches[index].marks.append((batches[index].packets.packetCount, sequence, .sweep(time)))
        }
    }

    mutating func route(_ packet: CapturedPacket, sequence: UInt64, into batches: inout [WorkBatch]) {
        switch PacketDecoder.decode(packet) {
        case .tcp(let segment):
            sweepIfDue(at: packet.timestamp, sequence: sequence, into: &batches)
            batches[job(of: segment)].append(packet, sequence: sequence)
        case .fragment(let fragment):
            let key = HeldKey(source: fragment.source, destination: fragment.destination,
                              identification: fragment.identification, protocolNumber: fragment.protocolNumber)
            if held[key] == nil { heldOrder.append(key) }
            held[key, default: PacketBatch(reservingPackets: 4, bytes: 4 * packet.bytes.count)].append(packet)
            heldBytes += packet.bytes.count
            var owner: Int?
            fragments.add(fragment, at: packet.timestamp) { datagram in
                let decoded = PacketDecoder.decodeReassembled(
                    protocolNumber: fragment.protocolNumber, payload: datagram, source: fragment.source,
                    destination: fragment.destination)
                if case .tcp(let segment) = decoded { owner = job(of: segment) } else { owner = 0 }
                if case .tcp = decoded { sweepIfDue(at: packet.timestamp, sequence: sequence, into: &batches) }
            }
            if let owner { release(key, to: owner, sequence: sequence, into: &batches) }
            while heldBytes > Self.maxHeldBytes, let oldest = heldOrder.first {
                heldOrder.removeFirst()
                release(oldest, to: 0, sequence: sequence, into: &batches)
            }
        case .skipped:
            batches[0].append(packet, sequence: sequence)
        }
    }

    /// Fragments never completed go to the first job at the end, as they came.
    mutating func releaseAll(sequence: UInt64, into batches: inout [WorkBatch]) {
        while let oldest = heldOrder.first {
            heldOrder.removeFirst()
            release(oldest, to: 0, sequence: sequence, into: &batches)
        }
    }

    /// Hands the fragments held for `key` to `job` (`heldOrder` keeps released keys until they
    /// reach its front, where they are passed over).
    private mutating func release(_ key: HeldKey, to job: Int, sequence: UInt64, into batches: inout [WorkBatch]) {
        guard let waiting = held.removeValue(forKey: key) else { return }
        heldBytes -= waiting.byteCount
        // At the position of the fragment that completed them: that is where one analyzer decodes them.
        waiting.forEachPacket { batches[job].append($0, sequence: sequence) }
    }
}

/// Batches from the reading thread to the merging one, at most `capacity` waiting.
private final class HandOver<Item>: @unchecked Sendable {
    // Every semaphore starts at 0 and is signalled up to its count: libdispatch traps when one is
    // released below the value it was made with (here, when reading stops with batches waiting).
    private let slots = DispatchSemaphore(value: 0)
    private let items = DispatchSemaphore(value: 0)
    private let lock = DispatchSemaphore(value: 0)
    private var queue: [Item?] = []
    private var stopped = false

    init(capacity: Int) {
        for _ in 0..<capacity { slots.signal() }
        lock.signal()
    }

    /// Waits for room; nil says there is no more. False once the taker stopped.
    func put(_ item: Item?) -> Bool {
        slots.wait()
        lock.wait()
        defer { lock.signal() }
        guard !stopped else {
            slots.signal()
            return false
        }
        queue.append(item)
        items.signal()
        return true
    }

    /// The next item; nil at the end.
    func take() -> Item? {
        items.wait()
        lock.wait()
        let item = queue.removeFirst()
        lock.signal()
        slots.signal()
        return item
    }

    /// The taker wants no more: the giver's waiting or next `put` returns false.
    func stop() {
        lock.wait()
        stopped = true
        lock.signal()
        slots.signal()
    }
}

/// The reading thread: reads, numbers and routes packets into batches, one per job.
private final class Reader: @unchecked Sendable {
    static let batchPackets = 4_096
    static let batchBytes = 2 << 20

    private let source: any PacketSource
    private var router: PacketRouter
    private var sequence: UInt64 = 0
    /// Read by the merging thread once the reader has handed over its last batch.
    private(set) var first: CaptureTimestamp?
    private(set) var last: CaptureTimestamp?
    private(set) var damage: CaptureError?

    init(source: any PacketSource, jobCount: Int) {
        self.source = source
        router = PacketRouter(jobCount: jobCount)
    }

    func readAll(into handOver: HandOver<[WorkBatch]>) {
        var ended = false
        while !ended {
            var batches = (0..<router.jobCount).map { _ in WorkBatch(jobs: router.jobCount) }
            var packets = 0
            var bytes = 0
            while packets < Self.batchPackets, bytes < Self.batchBytes {
                let read: PacketSourceRead
                do {
                    read = try source.nextPacket()
                } catch {
                    damage = damage ?? error
                    batches[0].marks.append((batches[0].packets.packetCount, sequence, .damage(error.message)))
                    ended = true
                    break
                }
                switch read {
                case .packet(let packet):
                    sequence += 1
                    // Written once, before the batch that holds it is handed over: the merging
                    // thread reads it after taking that batch.
                    if first == nil { first = packet.timestamp }
                    last = packet.timestamp
                    router.route(packet, sequence: sequence, into: &batches)
                    packets += 1
                    bytes += packet.bytes.count
                case .partDamaged(let error):
                    damage = damage ?? error
                    batches[0].marks.append((batches[0].packets.packetCount, sequence, .damage(error.message)))
                case .noPacketYet:
                    continue
                case .endOfCapture:
                    ended = true
                }
                if ended { break }
            }
            if ended { router.releaseAll(sequence: sequence, into: &batches) }
            for index in batches.indices { batches[index].captureStart = first }
            guard handOver.put(batches) else { return }
        }
        _ = handOver.put(nil)
    }
}

private final class ParallelAnalysis {
    private let sink: any TimelineSink
    private let jobs: [Job]
    /// Each job's ids of the connections still in its table, to the capture's.
    private var captureIDs: [[UInt64: UInt64]]
    private var nextID: UInt64 = 1
    private var startAnnounced = false

    init(jobs count: Int, options: AnalyzerOptions, sink: any TimelineSink) {
        var shared = options
        shared.reassembly.maxConnections = max(1, options.reassembly.maxConnections / count)
        shared.reassembly.maxPendingBytesTotal = max(1, options.reassembly.maxPendingBytesTotal / count)
        self.sink = sink
        let partitioned = sink as? any PartitionedSink
        jobs = (0..<count).map {
            Job(index: $0, options: shared, receivesFramesAndMessages: sink.receivesFramesAndMessages,
                part: partitioned?.makePart(jobs: count))
        }
        captureIDs = Array(repeating: [:], count: count)
    }

    /// Three stages at once: the reader fills batch n+1 while the jobs decode batch n and this
    /// thread merges and writes what they recorded of batch n-1.
    func run(_ source: any PacketSource, shouldStop: () -> Bool) -> (summary: CaptureSummary, damage: CaptureError?) {
        var recorded = jobs.map { $0.recorder.take() }
        merge(&recorded, first: nil)  // what the first job says before any packet (the key log)
        let reader = Reader(source: source, jobCount: jobs.count)
        let handOver = HandOver<[WorkBatch]>(capacity: 2)
        let readingDone = DispatchSemaphore(value: 0)
        DispatchQueue(label: "wstap-reader").async {
            reader.readAll(into: handOver)
            readingDone.signal()
        }
        let decoding = DispatchGroup()
        var decodingBatch = false
        while true {
            let next = shouldStop() ? nil : handOver.take()
            if decodingBatch {
                decoding.wait()
                recorded = jobs.map { $0.recorder.take() }
                if let next { start(next, in: decoding) }
                merge(&recorded, first: reader.first)
            } else if let next {
                start(next, in: decoding)
            }
            decodingBatch = next != nil
            if next == nil { break }
        }
        handOver.stop()
        readingDone.wait()
        let end = reader.last ?? .zero
        let jobs = self.jobs
        DispatchQueue.concurrentPerform(iterations: jobs.count) { jobs[$0].finish(endingAt: end) }
        recorded = jobs.map { $0.recorder.take() }
        merge(&recorded, first: reader.first)
        for job in jobs { job.recorder.part?.finish() }
        var summary = CaptureSummary()
        for job in jobs { summary.merge(job.recorder.summary ?? CaptureSummary()) }
        // The capture's first and last packets in reading order, as one analyzer records them.
        summary.firstPacketTime = reader.first
        summary.lastPacketTime = reader.last
        sink.finish(summary)
        return (summary, reader.damage)
    }

    private func start(_ batches: [WorkBatch], in group: DispatchGroup) {
        for job in jobs {
            let batch = batches[job.index]
            job.queue.async(group: group) { job.process(batch) }
        }
    }

    /// Numbers the connections the jobs opened, in the order they were opened, then hands every
    /// recorded event to the sink in reading order.
    private func merge(_ recorded: inout [RecordedBatch], first: CaptureTimestamp?) {
        var opened: [(sequence: UInt64, job: Int, id: UInt64)] = []
        for (job, batch) in recorded.enumerated() { opened += batch.numbered.map { ($0.sequence, job, $0.id) } }
        opened.sort { ($0.sequence, $0.job, $0.id) < ($1.sequence, $1.job, $1.id) }
        for connection in opened {
            captureIDs[connection.job][connection.id] = nextID
            nextID += 1
        }
        if let first, !startAnnounced {
            // One analyzer says so at its first packet, after what it said before any.
            startAnnounced = true
            sink.receive(.captureStarted(first))
        }
        // Each job's events are in reading order already: merge them, taking the earliest next
        // event; closes at a sweep or at the end go in connection order, as one table closes them.
        let entries = recorded.map(\.entries)
        let events = recorded.map(\.events)
        let payloads = recorded.map(\.payloads)
        let gaps = recorded.map(\.gaps)
        var next = [Int](repeating: 0, count: entries.count)
        func key(_ job: Int) -> (Position, UInt64)? {
            guard next[job] < entries[job].count else { return nil }
            let entry = entries[job][next[job]]
            guard entry.position.phase == .sweepBefore || entry.position.phase == .end else { return (entry.position, 0) }
            return (entry.position, entry.connection.map { captureIDs[job][$0] ?? 0 } ?? 0)
        }
        var keys = entries.indices.map(key)
        while true {
            var chosen: Int?
            for job in keys.indices {
                guard let candidate = keys[job] else { continue }
                if let current = chosen, let best = keys[current], !(candidate < best) { continue }
                chosen = job
            }
            guard let job = chosen else { break }
            let ids = captureIDs[job]
            if let index = entries[job][next[job]].recorded {
                payloads[job].withUnsafeBytes { payloadBytes in
                    gaps[job].withUnsafeBufferPointer { gapList in
                        RecordedBatch.deliver(events[job][Int(index)], payloads: payloadBytes, gaps: gapList, to: sink) { ids[$0] ?? $0 }
                    }
                }
            } else {
                jobs[job].recorder.part?.writeNext { ids[$0] ?? $0 }
            }
            next[job] += 1
            keys[job] = key(job)
        }
        // Each batch moved out (not copied), so its storage is reused as it is.
        while let batch = recorded.popLast() {
            let job = recorded.count
            for id in batch.removed { captureIDs[job][id] = nil }
            jobs[job].recorder.recycle(batch)
        }
    }
}

extension TimelineEvent {
    /// The same event with its connection's id changed by `newID`.
    func renumbered(_ newID: (UInt64) -> UInt64) -> TimelineEvent {
        func change(_ record: ConnectionRecord) -> ConnectionRecord {
            var record = record
            record.id = newID(record.id)
            return record
        }
        switch self {
        case .captureStarted: return self
        case .connectionOpened(let record, let time): return .connectionOpened(change(record), time)
        case .httpRequest(let record, let time, let head): return .httpRequest(change(record), time, head)
        case .httpResponse(let record, let time, let head): return .httpResponse(change(record), time, head)
        case .httpExchange(let record, let exchange): return .httpExchange(change(record), exchange)
        case .upgrade(let record, let exchange): return .upgrade(change(record), exchange)
        case .upgradeAnswerBody(let record, let time, let body): return .upgradeAnswerBody(change(record), time, body)
        case .tls(let record, let time, let session): return .tls(change(record), time, session)
        case .frame(let record, let frame): return .frame(change(record), frame)
        case .message(let record, let message): return .message(change(record), message)
        case .issue(let record, let issue): return .issue(record.map(change), issue)
        case .connectionClosed(let record, let end): return .connectionClosed(change(record), end)
        }
    }
}
