#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Buffered bytes to a file descriptor or to memory; exporters write through one.
public final class OutputChannel {
    private let fileDescriptor: Int32?
    private var buffer: [UInt8] = []
    private let flushThreshold = 1 << 16
    /// Everything written, when the channel writes to memory (tests, library users).
    public private(set) var memory: [UInt8] = []
    /// Set once a write failed (for example the reader of a pipe went away); later writes are dropped.
    public private(set) var failed = false
    /// Flush after every event (live capture), rather than when the buffer fills.
    public var flushesEachEvent = false

    /// Writes to `fileDescriptor` (standard output by default).
    public init(fileDescriptor: Int32 = STDOUT_FILENO) {
        self.fileDescriptor = fileDescriptor
        buffer.reserveCapacity(flushThreshold * 2)
    }

    /// Keeps everything in `memory`.
    public init(inMemory: ()) {
        fileDescriptor = nil
    }

    deinit { flush() }

    /// Writes what an exporter rendered.
    func write(_ rendered: JSONBuffer) {
        rendered.withBytes { buffer.appendBytes($0) }
        if buffer.count >= flushThreshold { flush() }
    }

    public func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= flushThreshold { flush() }
    }

    /// Called by exporters at the end of each event.
    public func endEvent() {
        if flushesEachEvent || buffer.count >= flushThreshold { flush() }
    }

    public func flush() {
        guard !buffer.isEmpty else { return }
        defer { buffer.removeAll(keepingCapacity: true) }
        guard let fileDescriptor else {
            memory.append(contentsOf: buffer)
            return
        }
        guard !failed else { return }
        buffer.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Glibc.write(fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failed = true
                    return
                }
                offset += written
            }
        }
    }
}
