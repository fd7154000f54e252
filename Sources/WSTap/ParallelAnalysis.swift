import Dispatch
import WSTapCore
import WSTapCapture
import WSTapPackets
import WSTapTCP
import WSTapWebSocket

/// Reads a capture with `jobs` analyzers at once, each given the packets of its own connections
/// (flow sharding: both directions of a 4-tuple to the same job, IP fragments to the job of the
/// connection they complete), and delivers to `sink` exactly the events, in exactly the order,
/// one analyzer would (`analyze`): the same connection ids, the same summary.
///
/// How: the reading thread decodes each packet's headers to pick its job and numbers packets in
/// reading order; it also computes the capture's idle-sweep points (one analyzer sweeps every 10
/// capture seconds of its segments) and gives them to every job. Packets go in batches; the jobs
/// decode a batch in parallel, recording their events with the reading position that produced
/// them; then the events are merged by that position (at one position only one job decodes a
/// packet, and closes at a sweep or at the end go in connection order, as one analyzer closes
/// them), each job's connection ids are mapped to the capture's (numbered in the order the
/// connections were opened), and the sink renders them on this thread.
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

    var packets = PacketBatch()
    var sequences: [UInt64] = []
    /// Marks, each applied before the packet at `beforePacket` (or after the last one), at `sequence`.
    var marks: [(beforePacket: Int, sequence: UInt64, mark: Mark)] = []

    mutating func append(_ packet: CapturedPacket, sequence: UInt64) {
        packets.append(packet)
        sequences.append(sequence)
    }
}

/// Keeps a job's events with their positions, and their payloads, until they are merged.
private final class EventRecorder: TimelineSink {
    struct Recorded {
        var position: Position
        var event: TimelineEvent
        var payload: Range<Int>
        var gaps: Range<Int>
    }

    var position = Position(sequence: 0, phase: .sweepBefore)
    private(set) var events: [Recorded] = []
    private var payloads: [UInt8] = []
    private var gaps: [PayloadGap] = []
    /// Connections numbered (at the position that opened them) and removed, by this job's ids.
    var numbered: [(sequence: UInt64, id: UInt64)] = []
    var removed: [UInt64] = []
    private(set) var summary: CaptureSummary?
    let receivesFramesAndMessages: Bool

    init(receivesFramesAndMessages: Bool) { self.receivesFramesAndMessages = receivesFramesAndMessages }

    func receive(_ event: TimelineEvent) {
        switch event {
        case .captureStarted:
            return  // The parallel analysis says when the capture started.
        case .frame(let record, var frame):
            let (payload, gapRange) = (keep(frame.payload), keep(frame.gaps))
            frame.payload = UnsafeRawBufferPointer(start: nil, count: 0)
            frame.gaps = UnsafeBufferPointer(start: nil, count: 0)
            events.append(Recorded(position: position, event: .frame(record, frame), payload: payload, gaps: gapRange))
        case .message(let record, var message):
            let (payload, gapRange) = (keep(message.message.payload), keep(message.message.gaps))
            message.message.payload = UnsafeRawBufferPointer(start: nil, count: 0)
            message.message.gaps = UnsafeBufferPointer(start: nil, count: 0)
            events.append(Recorded(position: position, event: .message(record, message), payload: payload, gaps: gapRange))
        default:
            events.append(Recorded(position: position, event: event, payload: 0..<0, gaps: 0..<0))
        }
    }

    func finish(_ summary: CaptureSummary) { self.summary = summary }

    private func keep(_ bytes: UnsafeRawBufferPointer) -> Range<Int> {
        let start = payloads.count
        payloads.appendBytes(bytes)
        return start..<payloads.count
    }

    private func keep(_ list: UnsafeBufferPointer<PayloadGap>) -> Range<Int> {
        let start = gaps.count
        gaps.append(contentsOf: list)
        return start..<gaps.count
    }

    /// Hands event `index` to `sink` with its connection's id in the capture, its bytes lent again.
    func deliver(_ index: Int, to sink: any TimelineSink, captureID: (UInt64) -> UInt64) {
        var event = events[index].event.renumbered(captureID)
        let recorded = events[index]
        payloads.withUnsafeBytes { allPayloads in
            gaps.withUnsafeBufferPointer { allGaps in
                let payload = UnsafeRawBufferPointer(rebasing: allPayloads[recorded.payload])
                let gapList = UnsafeBufferPointer(rebasing: allGaps[recorded.gaps])
                switch event {
                case .frame(let record, var frame):
                    frame.payload = payload
                    frame.gaps = gapList
                    event = .frame(record, frame)
                case .message(let record, var message):
                    message.message.payload = payload
                    message.message.gaps = gapList
                    event = .message(record, message)
                default:
                    break
                }
                sink.receive(event)
            }
        }
    }

    func clear() {
        events.removeAll(keepingCapacity: true)
        payloads.removeAll(keepingCapacity: payloads.count <= 64 << 20)
        gaps.removeAll(keepingCapacity: true)
        numbered.removeAll(keepingCapacity: true)
        removed.removeAll(keepingCapacity: true)
    }
}

/// One analyzer and its recorder; used by one thread at a time (batches are separated by a barrier).
private final class Job: @unchecked Sendable {
    let index: Int
    let recorder: EventRecorder
    private var analyzer: Analyzer?

    init(index: Int, options: AnalyzerOptions, receivesFramesAndMessages: Bool) {
        self.index = index
        let recorder = EventRecorder(receivesFramesAndMessages: receivesFramesAndMessages)
        self.recorder = recorder
        let role = JobRole(
            announcesCaptureIssues: index == 0,
            connectionNumbered: { id, _ in recorder.numbered.append((recorder.position.sequence, id)) },
            connectionRemoved: { id in recorder.removed.append(id) })
        analyzer = Analyzer(options: options, sink: recorder, job: role)
    }

    func process(_ batch: WorkBatch) {
        guard let analyzer else { return }
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
    private func job(of segment: TCPSegment) -> Int {
        var hasher = Hasher()
        let (low, high) = segment.source < segment.destination ? (segment.source, segment.destination) : (segment.destination, segment.source)
        hasher.combine(low)
        hasher.combine(high)
        return Int(UInt(bitPattern: hasher.finalize()) % UInt(jobCount))
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
            held[key, default: PacketBatch()].append(packet)
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

private final class ParallelAnalysis {
    static let batchPackets = 32_768
    static let batchBytes = 32 << 20

    private let sink: any TimelineSink
    private let jobs: [Job]
    private var router: PacketRouter
    /// Each job's ids of the connections still in its table, to the capture's.
    private var captureIDs: [[UInt64: UInt64]]
    private var nextID: UInt64 = 1
    private var sequence: UInt64 = 0
    private var first: CaptureTimestamp?
    private var last: CaptureTimestamp?

    init(jobs count: Int, options: AnalyzerOptions, sink: any TimelineSink) {
        var shared = options
        shared.reassembly.maxConnections = max(1, options.reassembly.maxConnections / count)
        shared.reassembly.maxPendingBytesTotal = max(1, options.reassembly.maxPendingBytesTotal / count)
        self.sink = sink
        jobs = (0..<count).map { Job(index: $0, options: shared, receivesFramesAndMessages: sink.receivesFramesAndMessages) }
        router = PacketRouter(jobCount: count)
        captureIDs = Array(repeating: [:], count: count)
    }

    func run(_ source: any PacketSource, shouldStop: () -> Bool) -> (summary: CaptureSummary, damage: CaptureError?) {
        merge()  // what the first job says before any packet (the key log in use)
        var damage: CaptureError?
        var ended = false
        while !ended, !shouldStop() {
            var batches = [WorkBatch](repeating: WorkBatch(), count: jobs.count)
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
                if case .endOfCapture = read {
                    ended = true
                    break
                }
                switch read {
                case .packet(let packet):
                    sequence += 1
                    first = first ?? packet.timestamp
                    last = packet.timestamp
                    router.route(packet, sequence: sequence, into: &batches)
                    packets += 1
                    bytes += packet.bytes.count
                case .partDamaged(let error):
                    damage = damage ?? error
                    batches[0].marks.append((batches[0].packets.packetCount, sequence, .damage(error.message)))
                case .noPacketYet, .endOfCapture:
                    continue
                }
            }
            if ended { router.releaseAll(sequence: sequence, into: &batches) }
            let work = batches
            let jobs = self.jobs
            DispatchQueue.concurrentPerform(iterations: jobs.count) { jobs[$0].process(work[$0]) }
            merge()
        }
        let end = last ?? .zero
        let jobs = self.jobs
        DispatchQueue.concurrentPerform(iterations: jobs.count) { jobs[$0].finish(endingAt: end) }
        merge()
        var summary = CaptureSummary()
        for job in jobs { summary.merge(job.recorder.summary ?? CaptureSummary()) }
        // The capture's first and last packets in reading order, as one analyzer records them.
        summary.firstPacketTime = first
        summary.lastPacketTime = last
        sink.finish(summary)
        return (summary, damage)
    }

    /// Numbers the connections the jobs opened, in the order they were opened, then hands every
    /// recorded event to the sink in reading order.
    private func merge() {
        var opened: [(sequence: UInt64, job: Int, id: UInt64)] = []
        for job in jobs { opened += job.recorder.numbered.map { ($0.sequence, job.index, $0.id) } }
        opened.sort { ($0.sequence, $0.job, $0.id) < ($1.sequence, $1.job, $1.id) }
        for connection in opened {
            captureIDs[connection.job][connection.id] = nextID
            nextID += 1
        }
        var order: [(position: Position, connection: UInt64, job: Int, index: Int)] = []
        for job in jobs {
            for (index, recorded) in job.recorder.events.enumerated() {
                // Closes at a sweep or at the end go in connection order, as one table closes them.
                let byConnection = recorded.position.phase == .sweepBefore || recorded.position.phase == .end
                let connection = byConnection ? recorded.event.connection.map { captureIDs[job.index][$0.id] ?? 0 } ?? 0 : 0
                order.append((recorded.position, connection, job.index, index))
            }
        }
        order.sort { ($0.position, $0.connection, $0.job, $0.index) < ($1.position, $1.connection, $1.job, $1.index) }
        if let first, !startAnnounced {
            // One analyzer says so at its first packet, after what it said before any (`run`).
            startAnnounced = true
            sink.receive(.captureStarted(first))
        }
        deliver(order)
        for job in jobs {
            for id in job.recorder.removed { captureIDs[job.index][id] = nil }
            job.recorder.clear()
        }
    }

    private var startAnnounced = false

    private func deliver(_ order: [(position: Position, connection: UInt64, job: Int, index: Int)]) {
        for entry in order {
            let ids = captureIDs[entry.job]
            jobs[entry.job].recorder.deliver(entry.index, to: sink) { ids[$0] ?? $0 }
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
