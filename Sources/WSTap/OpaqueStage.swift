import WSTapCore
import WSTapTCP

/// Bytes wstap does not decode: another protocol after a 101 (counted as upgraded bytes), or a
/// stream in which no protocol was recognised.
final class OpaqueStage: Stage {
    private let stream: StreamContext
    private let afterSwitch: Bool

    init(stream: StreamContext, afterSwitch: Bool) {
        self.stream = stream
        self.afterSwitch = afterSwitch
    }

    override var phase: ConnectionPhase { afterSwitch ? .otherUpgrade : .opaque }

    override func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        if afterSwitch { stream.totals.upgradedBytes[direction] &+= UInt64(bytes.count) }
        return nil
    }
}
