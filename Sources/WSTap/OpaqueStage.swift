import WSTapCore
import WSTapTCP

/// Bytes wstap does not decode: another protocol after a 101 (counted as upgraded bytes), or a
/// stream in which no protocol was recognised.
final class OpaqueStage: ConnectionStage {
    private let context: ConnectionContext
    private let countsUpgradedBytes: Bool

    init(context: ConnectionContext, countsUpgradedBytes: Bool) {
        self.context = context
        self.countsUpgradedBytes = countsUpgradedBytes
    }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        if countsUpgradedBytes { context.totals.upgradedBytes[direction] &+= UInt64(bytes.count) }
        return nil
    }

    override func missing(byteCount: UInt64, cause: MissingCause, direction: StreamDirection, at time: CaptureTimestamp)
        -> ConnectionStage?
    {
        nil
    }

    override func finish(at time: CaptureTimestamp) {}
}
