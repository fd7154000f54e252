import WSTapCore
import WSTapTCP
import WSTapTLS

/// TLS in front of HTTP: decrypts the records with the key log and hands the plaintext of each
/// direction to a chain of its own (protocol detection → HTTP → WebSocket), with the time of the
/// segment that completed each record. A connection it cannot decrypt stays visible: its session,
/// the reason, and its record bytes.
final class TLSStage: ConnectionStage {
    private let context: ConnectionContext
    private var decoder: TLSConnectionDecoder
    /// The chain the plaintext goes through; it hands over like the connection's own.
    private var inner: ConnectionStage

    init(context: ConnectionContext) {
        self.context = context
        decoder = TLSConnectionDecoder(keyLog: context.options.keyLog, waitsForKeys: context.options.waitsForTLSKeys)
        inner = ConnectionChain.afterTLS(context)
        context.phase = .tls
    }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        decoder.receive(bytes, direction: direction, at: time) { handle($0, at: $1) }
        return nil
    }

    override func missing(byteCount: UInt64, cause: MissingCause, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        decoder.missing(byteCount: byteCount, direction: direction, at: time) { handle($0, at: $1) }
        return nil
    }

    override func finish(at time: CaptureTimestamp) {
        decoder.finish(at: time) { handle($0, at: $1) }
        context.tls = decoder.session
        inner.finish(at: time)
    }

    override var holdsBytesForEarlierEvents: Bool { inner.holdsBytesForEarlierEvents }

    private func handle(_ event: TLSEvent, at time: CaptureTimestamp) {
        switch event {
        case .session(let session):
            context.tls = session
            context.emit(.tls(context.record, time, session))
            // Decrypted, the plaintext's protocol decides what the connection is.
            if session.decrypted, session.alpn != "h2" { context.phase = .undecided }
        case .plaintext(let bytes, let direction):
            if let next = inner.receive(bytes, direction: direction, at: time) { inner = next }
        case .plaintextGap(let byteCount, let direction):
            // The count may be off by padding: what follows is searched for, not assumed in step.
            if let next = inner.missing(byteCount: byteCount, cause: .notCaptured, direction: direction, at: time) { inner = next }
            inner.boundaryUnknown(direction: direction)
        case .violation(let violation, let direction):
            context.report(Issue(violation, time: time, direction: direction))
        }
    }
}
