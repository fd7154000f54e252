import WSTapCore
private import CZlib

/// A gzip-compressed capture (`.pcap.gz`, as ring buffers are often kept): decompressed once
/// into an unlinked temporary file ($TMPDIR, else /tmp), which the readers then take like any
/// capture file. The only file of this module that calls zlib.
enum GzipFile {
    /// The first bytes of a gzip stream.
    static func starts(_ magic: UInt32?) -> Bool {
        magic.map { withUnsafeBytes(of: $0) { $0[0] == 0x1F && $0[1] == 0x8B } } ?? false
    }

    /// Decompresses `path` into a new unlinked temporary file, positioned at its start; the
    /// descriptor, or why not. A stream cut short keeps what it held (the readers then report
    /// the cut record).
    static func decompress(_ path: String) -> Result<Int32, CaptureError> {
        guard let input = gzopen(path, "rb") else { return .failure(.cannotOpen(path: path, reason: "cannot open it as gzip")) }
        defer { gzclose(input) }
        let output: Int32
        switch SystemCalls.makeUnlinkedTemporaryFile(prefix: "wstap-gunzip") {
        case .success(let descriptor): output = descriptor
        case .failure(let error):
            return .failure(.cannotOpen(path: path, reason: "no temporary file to decompress it into (\(error.reason))"))
        }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: .mebibytes(1), alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let got = gzread(input, chunk.baseAddress, UInt32(chunk.count))
            if got <= 0 { break }  // the end, or a stream cut short: what came before is kept
            if let error = SystemCalls.writeAll(output, UnsafeRawBufferPointer(rebasing: chunk[0..<Int(got)])) {
                SystemCalls.close(output)
                return .failure(.cannotOpen(path: path, reason: "cannot decompress it into a temporary file (\(error.reason))"))
            }
        }
        guard SystemCalls.seekToStart(output) else {
            SystemCalls.close(output)
            return .failure(.cannotOpen(path: path, reason: "cannot read back its decompressed copy"))
        }
        return .success(output)
    }
}
