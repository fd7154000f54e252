import WSTapCore
import WSTapTCP
import WSTapTLS

/// TLS in front of HTTP: decrypts the records with the key log and hands the plaintext of each
/// direction to a chain of its own, chosen by the ALPN protocol the server selected (else by the
/// plaintext's first bytes), with the time of the segment that completed each record. A
/// connection it cannot decrypt stays visible: its session, the reason, and its record bytes.
final class TLSStage: Stage {
    private let stream: StreamContext
    private var decoder: TLSConnectionDecoder
    /// The chain the plaintext goes through; it hands over like the connection's own.
    private var inner: Stage
    private var decrypted = false

    init(stream: StreamContext) {
        self.stream = stream
        decoder = TLSConnectionDecoder(keyLog: stream.options.keyLog, waitsForKeys: stream.options.waitsForTLSKeys)
        inner = ConnectionChain.afterTLS(stream)
    }

    override var phase: ConnectionPhase { decrypted ? inner.phase : .tls }

    override func ending(reason: ConnectionEndReason) -> ConnectionEnding {
        decrypted ? inner.ending(reason: reason) : super.ending(reason: reason)
    }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        decoder.receive(bytes, direction: direction, at: time) { handle($0.event, at: $0.time) }
        return nil
    }

    override func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        decoder.missing(gap, direction: direction, at: time) { handle($0.event, at: $0.time) }
        return nil
    }

    override func finish(at time: CaptureTimestamp) {
        for direction in StreamDirection.allCases {
            decoder.finish(direction: direction, at: time) { handle($0.event, at: $0.time) }
        }
        stream.tls = decoder.session
        inner.finish(at: time)
    }

    override var holdsBytesForEarlierEvents: Bool { inner.holdsBytesForEarlierEvents }

    override func settle(at time: CaptureTimestamp) { inner.settle(at: time) }

    private func handle(_ event: TLSEvent, at time: CaptureTimestamp) {
        switch event {
        case .session(let session):
            stream.tls = session
            stream.emit(.tls(session), at: time)
            decrypted = session.decrypted
            // The ALPN table may choose what the plaintext is (HTTP/2); else its first bytes tell.
            if let chosen = ConnectionChain.plaintextStage(stream, alpn: session.alpn, at: time) { inner = chosen }
        case .plaintext(let bytes, let direction):
            if let next = inner.receive(bytes, direction: direction, at: time) { inner = next }
        case .plaintextGap(let byteCount, let direction):
            // The count may be off by padding: what follows is searched for, not assumed in step.
            if let next = inner.missing(MissingBytes(byteCount, cause: .notCaptured), direction: direction, at: time) {
                inner = next
            }
            inner.boundaryUnknown(direction: direction)
        case .violation(let violation, let direction):
            stream.report(Issue(violation, time: time, direction: direction))
        }
    }
}
