import Synchronization
import WSTapCore
private import CZlib

/// A gzip-compressed capture (`.pcap.gz`, as ring buffers are often kept): decompressed once
/// into an unlinked temporary file ($TMPDIR, else /tmp), which the readers then take like any
/// capture file. The only file of this module that calls zlib.
public enum GzipFile {
    /// The first bytes of a gzip stream.
    static func starts(_ magic: UInt32?) -> Bool {
        magic.map { withUnsafeBytes(of: $0) { $0[0] == 0x1F && $0[1] == 0x8B } } ?? false
    }

    /// A decompressed copy: its descriptor (at its start), and what is wrong with the gzip
    /// stream when something is (cut short, a failed check): the bytes before it are kept, and
    /// the reader reports it as damage where the capture ends.
    struct Decompressed {
        var descriptor: Int32
        var damage: String?
        /// Bytes decompressed (where the damage is, in the capture's own offsets).
        var size: Int64
    }

    /// How many readers of each file the process will open (`--jobs`: every job reads every
    /// file): a decompressed copy is kept for the others until that many took it.
    /// Said again with fewer (`--jobs` lowered for the open-file limit), copies already made
    /// wait for that many fewer readers, and are let go when none is still to come.
    public static func expectReaders(_ count: Int) {
        copies.withLock { shared in
            let change = max(1, count) - shared.readers
            shared.readers = max(1, count)
            for (path, entry) in shared.waiting {
                let left = entry.left + change
                if left > 0 {
                    shared.waiting[path]?.left = left
                } else {
                    SystemCalls.close(entry.copy.descriptor)
                    shared.waiting[path] = nil
                }
            }
        }
    }

    private struct SharedCopies: ~Copyable {
        var readers = 1
        /// Copies made for readers still to come: the copy (its descriptor is the cache's own)
        /// and how many readers have not taken it yet.
        var waiting: [String: (copy: Decompressed, left: Int)] = [:]
    }

    private static let copies = Mutex(SharedCopies())

    /// The decompressed copy of `path` for one reader, with its own descriptor (and offset):
    /// made once per process however many jobs read the file (docs/limits.md), not once per job.
    static func sharedCopy(_ path: String) -> Result<Decompressed, CaptureError> {
        copies.withLock { shared in
            if var entry = shared.waiting[path] {
                entry.left -= 1
                let reopened = SystemCalls.reopen(entry.copy.descriptor)
                if entry.left <= 0 {
                    SystemCalls.close(entry.copy.descriptor)
                    shared.waiting[path] = nil
                } else {
                    shared.waiting[path] = entry
                }
                guard let reopened else { return .failure(.cannotOpen(path: path, reason: "its decompressed copy could not be opened again")) }
                var copy = entry.copy
                copy.descriptor = reopened
                return .success(copy)
            }
            let made = decompress(path)
            guard case .success(let copy) = made, shared.readers > 1, let kept = SystemCalls.reopen(copy.descriptor) else { return made }
            var cached = copy
            cached.descriptor = kept
            shared.waiting[path] = (cached, shared.readers - 1)
            return made
        }
    }

    /// Decompresses `path` (every member of a multi-member stream, as gzip -d does) into a new
    /// unlinked temporary file; the copy, or why there is none.
    static func decompress(_ path: String) -> Result<Decompressed, CaptureError> {
        let input: OpaquePointer
        switch SystemCalls.openStream(path) {
        case .success(let opened): input = opened
        case .failure(let error): return .failure(.cannotOpen(path: path, reason: error.reason))
        }
        defer { SystemCalls.closeStream(input) }
        let output: Int32
        switch SystemCalls.makeUnlinkedTemporaryFile(prefix: "wstap-gunzip") {
        case .success(let descriptor): output = descriptor
        case .failure(let error):
            return .failure(.cannotOpen(path: path, reason: "no temporary file to decompress it into (\(error.reason))"))
        }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let inputChunk = UnsafeMutableRawBufferPointer.allocate(byteCount: .mebibytes(1), alignment: 16)
        let outputChunk = UnsafeMutableRawBufferPointer.allocate(byteCount: .mebibytes(1), alignment: 16)
        defer {
            inflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
            inputChunk.deallocate()
            outputChunk.deallocate()
        }
        guard wstap_inflate_init_gzip(stream) == Z_OK else {
            SystemCalls.close(output)
            return .failure(.cannotOpen(path: path, reason: "zlib could not start"))
        }
        var written: Int64 = 0
        var damage: String?
        var inMember = true  // between members only at a member's end
        reading: while true {
            let got = SystemCalls.read(stream: input, into: inputChunk.baseAddress!, count: inputChunk.count)
            if got <= 0 {
                if inMember { damage = "the gzip stream is cut short (\(written) bytes decompressed; its end and check are missing)" }
                break
            }
            stream.pointee.next_in = inputChunk.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_in = uInt(got)
            while stream.pointee.avail_in > 0 {
                if !inMember {
                    // Another member follows (concatenated .gz files); anything else is trailing garbage.
                    guard stream.pointee.next_in.pointee == 0x1F else {
                        damage = "bytes after the end of the gzip stream that are not another gzip member"
                        break reading
                    }
                    inflateReset(stream)
                    inMember = true
                }
                stream.pointee.next_out = outputChunk.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(outputChunk.count)
                let status = inflate(stream, Z_NO_FLUSH)
                let produced = outputChunk.count - Int(stream.pointee.avail_out)
                if produced > 0 {
                    if let error = SystemCalls.writeAll(output, UnsafeRawBufferPointer(rebasing: outputChunk[0..<produced])) {
                        SystemCalls.close(output)
                        return .failure(.cannotOpen(path: path, reason: "cannot decompress it into a temporary file (\(error.reason))"))
                    }
                    written += Int64(produced)
                }
                switch status {
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    // No progress without more input.
                    if produced == 0 { continue reading }
                case Z_STREAM_END:
                    inMember = false
                default:
                    let reason = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    damage = "the gzip data is damaged after \(written) decompressed bytes (\(reason))"
                    break reading
                }
            }
        }
        guard SystemCalls.seekToStart(output) else {
            SystemCalls.close(output)
            return .failure(.cannotOpen(path: path, reason: "cannot read back its decompressed copy"))
        }
        return .success(Decompressed(descriptor: output, damage: damage, size: written))
    }
}
