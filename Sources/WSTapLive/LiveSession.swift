import WSTap
import WSTapCapture
import Foundation

/// When a live capture stops on its own (besides Ctrl-C / SIGTERM).
public struct StopConditions: Sendable {
    /// Stop after this many WebSocket data messages (`-c`).
    public var messages: UInt64?
    /// Stop after this many WebSocket frames (`-c` with `--count-frames`).
    public var frames: UInt64?
    /// Stop after this many seconds (`--duration`).
    public var durationSeconds: Double?

    public init(messages: UInt64? = nil, frames: UInt64? = nil, durationSeconds: Double? = nil) {
        self.messages = messages
        self.frames = frames
        self.durationSeconds = durationSeconds
    }
}

/// Runs the analyzer on a live interface: a capture thread reads packets and never waits on
/// decoding or output; the calling thread decodes and writes. Between them a bounded queue of
/// packet batches; packets that do not fit are dropped and counted (`dropped_by_wstap`). A batch
/// holds everything the kernel had ready, handed over as soon as the kernel has no more: under
/// load batches are large and hand-overs rare; when quiet each packet goes on at once.
public final class LiveSession: @unchecked Sendable {
    private let capture: LiveCapture
    private let analyzer: Analyzer
    private let writer: CaptureFileWriter?
    private let conditions: StopConditions
    private let queue: BatchQueue
    private let stopLock = NSLock()
    private var stopRequested = false
    private var captureFailure: CaptureError?
    /// Packets waiting for the decoder, at most: past it they are dropped and counted.
    private static let queueLimitBytes = Int.mebibytes(64)

    public init(
        capture: LiveCapture, analyzer: Analyzer, writer: CaptureFileWriter? = nil,
        stop conditions: StopConditions = StopConditions()
    ) {
        self.capture = capture
        self.analyzer = analyzer
        self.writer = writer
        self.conditions = conditions
        queue = BatchQueue(limitBytes: Self.queueLimitBytes)
    }

    /// Ends the capture soon; safe from any thread (a signal handler's queue, for instance).
    public func requestStop() {
        stopLock.lock()
        stopRequested = true
        stopLock.unlock()
        capture.stop()
    }

    private var shouldStop: Bool {
        stopLock.lock()
        defer { stopLock.unlock() }
        return stopRequested
    }

    /// Captures and decodes until stopped, then closes every connection and delivers the summary
    /// with the capture counters. Returns a capture failure, if the device or the `-w` file failed.
    /// `tick` is called on the decoding thread after each batch and at least every tenth of a
    /// second while no packet comes (a streaming output writes what its reorder window let pass).
    @discardableResult
    public func run(outputFailed: @escaping () -> Bool = { false }, tick: () -> Void = {}) -> CaptureError? {
        let captureDone = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            let failure = captureLoop()
            stopLock.lock()
            captureFailure = failure
            stopLock.unlock()
            queue.close()
            captureDone.signal()
        }
        thread.name = "wstap-capture"
        thread.start()
        while let next = queue.pop(waitingAtMost: 0.1) {
            if case .batch(let batch) = next {
                batch.forEachPacket { packet in
                    guard !reachedCount() else { return }
                    analyzer.process(packet)
                }
            }
            tick()
            if reachedCount() || outputFailed() { requestStop() }
        }
        captureDone.wait()
        writer?.close()
        if let writer, let failure = writer.failure {
            stopLock.lock()
            if captureFailure == nil { captureFailure = .writeFailed(path: writer.path, reason: failure.reason) }
            stopLock.unlock()
        }
        let counters = capture.statistics()
        analyzer.finish(liveStatistics: LiveStatistics(
            received: counters?.received ?? 0, droppedByKernel: counters?.droppedByKernel ?? 0,
            droppedByInterface: counters?.droppedByInterface ?? 0, droppedByWstap: queue.droppedPackets))
        stopLock.lock()
        defer { stopLock.unlock() }
        return captureFailure
    }

    private func reachedCount() -> Bool {
        if let messages = conditions.messages, analyzer.messageCount >= messages { return true }
        if let frames = conditions.frames, analyzer.frameCount >= frames { return true }
        return false
    }

    private func captureLoop() -> CaptureError? {
        let started = DispatchTime.now().uptimeNanoseconds
        let deadline = conditions.durationSeconds.map { started + UInt64($0 * 1e9) }
        var batch = PacketBatch()
        defer { if !batch.isEmpty { queue.push(batch) } }
        while !shouldStop {
            if let deadline, DispatchTime.now().uptimeNanoseconds >= deadline { break }
            let read: PacketSourceRead
            do {
                read = try capture.nextPacket()
            } catch {
                return error
            }
            switch read {
            case .packet(let packet):
                if let writer {
                    writer.write(packet)
                    if let failure = writer.failure { return .writeFailed(path: writer.path, reason: failure.reason) }
                }
                batch.append(packet)
                // Everything the kernel has ready goes in one batch: one hand-over, not one per packet.
                if batch.byteCount >= .kibibytes(256) {
                    queue.push(batch)
                    batch = PacketBatch()
                }
            case .noPacketYet:
                // Nothing more right now: what was read goes to the decoder before waiting.
                if !batch.isEmpty {
                    queue.push(batch)
                    batch = PacketBatch()
                }
                if let writer, let failure = writer.flush() {
                    return .writeFailed(path: writer.path, reason: failure.reason)
                }
                capture.waitForPackets()
            case .endOfCapture:
                return nil
            case .partDamaged(let error):
                return error  // A live device has no parts: its failure ends the capture.
            }
        }
        return nil
    }
}

/// A bounded hand-over between the capture thread and the decoder.
final class BatchQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var batches: [PacketBatch] = []
    private var head = 0
    private var queuedBytes = 0
    private var closed = false
    private let limitBytes: Int
    private var dropped: UInt64 = 0

    init(limitBytes: Int) { self.limitBytes = limitBytes }

    var droppedPackets: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return dropped
    }

    func push(_ batch: PacketBatch) {
        condition.lock()
        defer { condition.unlock() }
        guard queuedBytes + batch.byteCount <= limitBytes else {
            dropped &+= UInt64(batch.packetCount)
            return
        }
        batches.append(batch)
        queuedBytes += batch.byteCount
        condition.signal()
    }

    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
    }

    enum Next {
        case batch(PacketBatch)
        /// None came within the wait.
        case idle
    }

    /// The next batch, waiting at most `seconds` for one; nil once closed and drained.
    func pop(waitingAtMost seconds: Double) -> Next? {
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: seconds)
        while head == batches.count, !closed {
            if !condition.wait(until: deadline), head == batches.count, !closed { return .idle }
        }
        guard head < batches.count else { return nil }
        let batch = batches[head]
        head += 1
        if head > 64, head * 2 > batches.count {
            batches.removeFirst(head)
            head = 0
        }
        queuedBytes -= batch.byteCount
        return .batch(batch)
    }
}
