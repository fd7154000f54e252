import WSTapCore
import WSTapTCP

/// One TCP connection: the chain of stages its bytes go through, and the context they share.
///
/// The TCP layer's directions are turned into the analyzer's (client and server as decoding shows
/// them) before any stage sees the bytes; gaps and snapshot-length cuts are reported here, once,
/// for every stage.
final class Connection: TCPStreamHandler {
    private let context: ConnectionContext
    /// The connection itself as a stream (HTTP/1.1 and the WebSocket that takes it over).
    private let stream: StreamContext
    /// The first stage of the chain; it changes when a stage hands over. Held by hand: every
    /// packet calls it, and a counted reference would be retained around each call.
    private var stage: ManuallyRetained<Stage>
    /// Bytes arrived (not only gaps): the connection is listed even if nothing came of them.
    private var sawBytes = false
    private var reportedSnaplenCut = false
    /// Counted in the context's `heldBytes` as holding bytes for earlier events.
    private var countedAsHolding = false

    init(context: ConnectionContext) {
        self.context = context
        stream = StreamContext(connection: context)
        stage = ManuallyRetained(retaining: ConnectionChain.start(stream))
    }

    deinit { stage.release() }

    private func handOver(to next: Stage) {
        stage.release()
        stage = ManuallyRetained(retaining: next)
    }

    func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) {
        sawBytes = true
        let direction = context.direction(direction)
        if let next = stage.with({ $0.receive(bytes, direction: direction, at: time) }) { handOver(to: next) }
        countHeldBytes()
    }

    private func countHeldBytes(closing: Bool = false) {
        guard let tally = context.heldBytes else { return }
        let holds = !closing && stage.with(\.holdsBytesForEarlierEvents)
        guard holds != countedAsHolding else { return }
        countedAsHolding = holds
        tally.holders[ObjectIdentifier(self)] = holds ? self : nil
    }

    /// Live capture, nothing has come for a while: a frame search decides on what it holds.
    /// True when it held bytes and no longer does.
    func settle(at time: CaptureTimestamp) -> Bool {
        stage.with { $0.settle(at: time) }
        countHeldBytes()
        return !countedAsHolding
    }

    var record: ConnectionRecord { context.record }

    func missing(_ range: MissingRange, direction tcpDirection: StreamDirection, at time: CaptureTimestamp) {
        let direction = context.direction(tcpDirection)
        stream.totals.missingBytes[direction] &+= range.byteCount
        switch range.cause {
        case .notCaptured:
            context.report(.tcpGap(range, time: time, direction: direction))
        case .cutBySnaplen:
            if !reportedSnaplenCut {
                reportedSnaplenCut = true
                context.report(.snaplenTruncated(bytes: range.byteCount, time: time, direction: direction))
            }
        }
        let gap = MissingBytes(range.byteCount, cause: range.cause)
        if let next = stage.with({ $0.missing(gap, direction: direction, at: time) }) { handOver(to: next) }
        countHeldBytes()
    }

    func conflictingRetransmission(
        startSequence: UInt32, byteCount: Int, direction: StreamDirection, at time: CaptureTimestamp
    ) {
        context.report(.retransmissionConflict(
            sequence: startSequence, bytes: byteCount, time: time, direction: context.direction(direction)))
    }

    func finished(direction: StreamDirection, at time: CaptureTimestamp) {}

    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) {
        stage.with { $0.finish(at: time) }
        countHeldBytes(closing: true)
        guard context.opened || sawBytes else { return }
        // What the connection carried, and how it ended, are read from the stage that decodes it now.
        let (phase, ending) = stage.with { stream.judgeEnding(of: $0, end: reason, at: time) }
        context.emit(.connectionClosed(ConnectionEnd(
            time: time, reason: reason, protocolKind: phase.protocolKind, websocketDetection: phase.websocketDetection,
            tls: context.tls, totals: stream.totals, counters: stream.counters, ending: ending)), at: time)
    }
}
