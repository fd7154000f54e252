import WSTap
import WSTapCore
/// Rendered JSON moved out of memory while its connection is still open: one unlinked temporary
/// file (in `$TMPDIR`, else `/tmp`) that the JSON exporter appends to and reads back once, when
/// the connection is written. Without a usable file the JSON simply stays in memory.
final class JSONSpool {
    /// Where one stored piece is in the file.
    struct Chunk {
        var offset: Int64
        var length: Int
    }

    private var descriptor: Int32 = -1
    private var size: Int64 = 0
    /// Why no temporary file could be made or written, once that happened.
    private(set) var failure: SystemError?
    /// No temporary file could be made or written: nothing more is tried.
    var isUnusable: Bool { failure != nil }
    private var readBuffer: UnsafeMutableRawPointer?
    private static let readSize = Int.mebibytes(1)

    deinit {
        if descriptor >= 0 { SystemCalls.close(descriptor) }
        readBuffer?.deallocate()
    }

    /// Appends `bytes` to the file; nil if they cannot be stored.
    func store(_ bytes: UnsafeRawBufferPointer) -> Chunk? {
        guard !bytes.isEmpty, openIfNeeded() else { return nil }
        if let error = SystemCalls.writeAll(descriptor, bytes, at: size) {
            failure = error
            return nil
        }
        defer { size += Int64(bytes.count) }
        return Chunk(offset: size, length: bytes.count)
    }

    /// Writes a stored chunk to `output`; false if it could not be read back.
    func copy(_ chunk: Chunk, to output: OutputChannel) -> Bool {
        let buffer = readBuffer ?? .allocate(byteCount: Self.readSize, alignment: 16)
        readBuffer = buffer
        var done = 0
        while done < chunk.length {
            let count = min(chunk.length - done, Self.readSize)
            guard case .success(let result) = SystemCalls.read(descriptor, into: buffer, count: count, at: chunk.offset + Int64(done)),
                  result > 0
            else { return false }
            output.write(bytes: UnsafeRawBufferPointer(start: buffer, count: result))
            done += result
        }
        return true
    }

    private func openIfNeeded() -> Bool {
        if descriptor >= 0 { return true }
        guard !isUnusable else { return false }
        switch SystemCalls.makeUnlinkedTemporaryFile(prefix: "wstap-json") {
        case .success(let opened):
            descriptor = opened
            return true
        case .failure(let error):
            failure = error
            return false
        }
    }
}
