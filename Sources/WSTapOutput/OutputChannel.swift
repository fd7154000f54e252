import WSTap
import WSTapCore
/// Buffered bytes to a file descriptor or to memory; exporters write through one.
public final class OutputChannel {
    private let fileDescriptor: Int32?
    /// Bytes not yet written. The NDJSON exporter renders each line straight into it.
    let pending = OutputBuffer(capacity: OutputChannel.initialCapacity)
    private static let initialCapacity = 1 << 17
    private let flushThreshold = 1 << 16
    /// Everything written, when the channel writes to memory (tests, library users).
    public private(set) var memory: [UInt8] = []
    /// Set once a write failed (for example the reader of a pipe went away); later writes are dropped.
    public private(set) var failed = false
    /// Why output was lost, as one line; nil while all went out, and when the reader of a pipe
    /// went away (`| head`), which is a normal end rather than an error.
    public private(set) var failure: String?
    /// Flush after every event (live capture), rather than when the buffer fills.
    public var flushesEachEvent = false

    /// Writes to `fileDescriptor` (standard output by default).
    public init(fileDescriptor: Int32 = SystemCalls.standardOutput) {
        self.fileDescriptor = fileDescriptor
    }

    /// Keeps everything in `memory`.
    public init(inMemory: ()) {
        fileDescriptor = nil
    }

    deinit { flush() }

    /// Writes what an exporter rendered; a large rendering goes out as it is, without a copy.
    func write(_ rendered: OutputBuffer) {
        rendered.withBytes { write(bytes: $0) }
    }

    /// Writes bytes as they are.
    func write(bytes: UnsafeRawBufferPointer) {
        if bytes.count >= flushThreshold / 2 {
            flush()
            send(bytes)
            return
        }
        pending.append(bytes)
        if pending.count >= flushThreshold { flush() }
    }

    /// Marks the output as failed (a part of it could not be produced): later writes are dropped.
    func markFailed(_ reason: String) {
        if !failed { failure = reason }
        failed = true
    }

    public func write(_ text: String) {
        var text = text
        text.withUTF8 { write(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Called by exporters at the end of each event.
    public func endEvent() {
        if flushesEachEvent || pending.count >= flushThreshold { flush() }
    }

    public func flush() {
        guard pending.count > 0 else { return }
        pending.withBytes { send($0) }
        // One huge line (a large message as base64) must not stay resident.
        pending.removeAll(shrinkingAbove: 4 << 20, to: Self.initialCapacity)
    }

    private func send(_ bytes: UnsafeRawBufferPointer) {
        guard let fileDescriptor else {
            memory.appendBytes(bytes)
            return
        }
        guard !failed, let error = SystemCalls.writeAll(fileDescriptor, bytes) else { return }
        failed = true
        if !error.isBrokenPipe { failure = error.reason }
    }
}
