import WSTapCore
import WSTapTCP

/// The first stage of every connection (and of the plaintext inside TLS): the first bytes choose
/// what decodes it, through the registry's first-bytes table. Until they do, the default stage
/// (HTTP/1.1) takes the gaps that come first.
///
/// The first bytes can also show that the TCP layer's guess of client and server was wrong (a
/// response from the "client"): the probe that takes them says so, and the roles are swapped.
final class ProtocolDetectionStage: Stage {
    private let stream: StreamContext
    /// The stage when no probe names another; it also takes gaps before the first byte.
    private let defaultStage: Stage
    /// The plaintext of a TLS connection: probes that do not apply inside TLS are skipped.
    private let insideTLS: Bool
    /// First bytes too few for a probe to tell (at most `FirstBytesProbe.maxHeldBytes`), held
    /// until more come.
    private var heldFirstBytes: [UInt8] = []
    private var heldDirection = StreamDirection.clientToServer

    init(stream: StreamContext, insideTLS: Bool) {
        self.stream = stream
        self.insideTLS = insideTLS
        defaultStage = stream.connection.stages.defaultStage(stream)
    }

    override var phase: ConnectionPhase { defaultStage.phase }

    override func ending(reason: ConnectionEndReason) -> ConnectionEnding { defaultStage.ending(reason: reason) }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        if !heldFirstBytes.isEmpty {
            if direction == heldDirection {
                let held = heldFirstBytes + bytes
                heldFirstBytes = []
                return held.withUnsafeBytes { decide($0, direction: direction, at: time, final: false) }
            }
            // The other side spoke first: the held bytes are decided on as they are.
            let swapped = stream.connection.rolesSwapped
            let chosen = decideHeld(at: time)
            let next = chosen.receive(bytes, direction: swapped == stream.connection.rolesSwapped ? direction : direction.reversed, at: time)
            return next ?? chosen
        }
        return decide(bytes, direction: direction, at: time, final: false)
    }

    private func decideHeld(at time: CaptureTimestamp) -> Stage {
        let held = heldFirstBytes
        heldFirstBytes = []
        return held.withUnsafeBytes { decide($0, direction: heldDirection, at: time, final: true) ?? defaultStage }
    }

    /// Asks the probes about `bytes`; nil while they are held for more. `final`: no more will
    /// come before a decision is needed (the other side spoke, a gap, the end).
    private func decide(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, final: Bool)
        -> Stage?
    {
        let mayHold = !final && bytes.count <= FirstBytesProbe.maxHeldBytes
        let first = FirstBytes(bytes: bytes, direction: direction, stream: stream, final: !mayHold)
        for probe in stream.connection.stages.firstBytes where !insideTLS || probe.appliesInsideTLS {
            switch probe.decide(first) {
            case .notMine:
                continue
            case .needMoreBytes where mayHold:
                heldFirstBytes = Array(bytes)
                heldDirection = direction
                return nil
            case .needMoreBytes:
                continue
            case .decodes(let swapRoles, let make):
                var direction = direction
                if swapRoles {
                    stream.connection.swapRoles()
                    direction = direction.reversed
                }
                let chosen = make.map { $0(stream) } ?? defaultStage
                return chosen.receive(bytes, direction: direction, at: time) ?? chosen
            }
        }
        return defaultStage.receive(bytes, direction: direction, at: time) ?? defaultStage
    }

    override func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        if !heldFirstBytes.isEmpty {
            // The held bytes cannot be completed: decided on what there is, then the gap.
            let swapped = stream.connection.rolesSwapped
            let chosen = decideHeld(at: time)
            let direction = swapped == stream.connection.rolesSwapped ? direction : direction.reversed
            return chosen.missing(gap, direction: direction, at: time) ?? chosen
        }
        // The protocol is still unknown: until a byte shows it, the default stage reports the gap.
        _ = defaultStage.missing(gap, direction: direction, at: time)
        return nil
    }

    override func finish(at time: CaptureTimestamp) {
        guard !heldFirstBytes.isEmpty else { return defaultStage.finish(at: time) }
        // The connection ended inside its first bytes: they go where they point, and end there.
        decideHeld(at: time).finish(at: time)
    }
}
