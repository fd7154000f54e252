#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An operating-system error: the call that failed and its `errno` text.
public struct SystemError: Error, Sendable, CustomStringConvertible {
    public var call: String
    public var code: Int32

    public var description: String { "\(call): \(String(cString: strerror(code)))" }
    /// The error's text without the call's name, as `strerror` gives it.
    public var reason: String { String(cString: strerror(code)) }
    /// The reader of a pipe went away (`| head`): not a failure of the writer.
    public var isBrokenPipe: Bool { code == EPIPE }

    /// The error the last failed C library call left in `errno`.
    public static func last(call: String) -> SystemError { SystemError(call: call, code: errno) }
}

/// Every C library call wstap makes, in one place (libpcap and zlib keep their own wrappers,
/// `PcapCalls.swift` and `RawInflater.swift`). Interrupted calls are retried here; callers see
/// Swift types and `SystemError`s. Linux only: the package is built and tested on Linux.
public enum SystemCalls {
    public static let standardInput: Int32 = STDIN_FILENO
    public static let standardOutput: Int32 = STDOUT_FILENO
    public static let standardError: Int32 = STDERR_FILENO

    // MARK: Descriptors

    /// Writes all of `bytes`, retrying after interruptions and short writes.
    public static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) -> SystemError? {
        guard let base = bytes.baseAddress else { return nil }
        var offset = 0
        while offset < bytes.count {
            let written = write(descriptor, base + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return SystemError(call: "write", code: errno)
            }
            offset += written
        }
        return nil
    }

    /// Reads up to `count` bytes into `buffer`: how many arrived (0 at the end of the file).
    public static func read(_ descriptor: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> Result<Int, SystemError> {
        while true {
            let got = Glibc.read(descriptor, buffer, count)
            if got >= 0 { return .success(got) }
            if errno != EINTR { return .failure(SystemError(call: "read", code: errno)) }
        }
    }

    /// Reads up to `count` bytes at `offset` without moving the file position.
    public static func read(
        _ descriptor: Int32, into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int64
    ) -> Result<Int, SystemError> {
        while true {
            let got = pread(descriptor, buffer, count, off_t(offset))
            if got >= 0 { return .success(got) }
            if errno != EINTR { return .failure(SystemError(call: "pread", code: errno)) }
        }
    }

    /// Writes all of `bytes` at `offset` without moving the file position.
    public static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) -> SystemError? {
        guard let base = bytes.baseAddress else { return nil }
        var done = 0
        while done < bytes.count {
            let written = pwrite(descriptor, base + done, bytes.count - done, off_t(offset + Int64(done)))
            if written < 0 {
                if errno == EINTR { continue }
                return SystemError(call: "pwrite", code: errno)
            }
            if written == 0 { return SystemError(call: "pwrite", code: ENOSPC) }
            done += written
        }
        return nil
    }

    public static func seek(_ descriptor: Int32, to offset: Int64) {
        _ = lseek(descriptor, off_t(offset), SEEK_SET)
    }

    public static func close(_ descriptor: Int32) {
        _ = Glibc.close(descriptor)
    }

    /// A new open file description of what `descriptor` refers to (its own offset, unlike a
    /// duplicate), through /proc/self/fd: also for an unlinked file.
    public static func reopen(_ descriptor: Int32) -> Int32? {
        let reopened = open("/proc/self/fd/\(descriptor)", O_RDONLY | O_CLOEXEC)
        return reopened < 0 ? nil : reopened
    }

    /// Another descriptor for the same open file; nil if none could be made.
    public static func duplicate(_ descriptor: Int32) -> Int32? {
        let copy = dup(descriptor)
        return copy >= 0 ? copy : nil
    }

    /// The bytes of the file at `path` from `offset` to its end, at most `limit` of them (a file
    /// still being written is read again later from where this read stopped).
    public static func readFile(_ path: String, from offset: Int64, limit: Int) -> Result<[UInt8], SystemError> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(SystemError(call: "open", code: errno)) }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while bytes.count < limit {
            let wanted = min(chunk.count, limit - bytes.count)
            let result = chunk.withUnsafeMutableBytes {
                read(descriptor, into: $0.baseAddress!, count: wanted, at: offset + Int64(bytes.count))
            }
            switch result {
            case .failure(let error): return .failure(error)
            case .success(0): return .success(bytes)
            case .success(let got): bytes += chunk[0..<got]
            }
        }
        return .success(bytes)
    }

    /// What kind of file `path` is, and its size.
    public static func fileStatus(_ path: String) -> Result<(isRegularFile: Bool, size: Int64), SystemError> {
        var info = stat()
        guard stat(path, &info) == 0 else { return .failure(SystemError(call: "stat", code: errno)) }
        return .success(((info.st_mode & S_IFMT) == S_IFREG, Int64(info.st_size)))
    }

    /// A new temporary file in `$TMPDIR`, else (unset, or unusable) in `/tmp`, already unlinked:
    /// it disappears with its descriptor. The failure is the last directory's.
    public static func makeUnlinkedTemporaryFile(prefix: String) -> Result<Int32, SystemError> {
        let chosen = environment("TMPDIR").flatMap { $0.isEmpty ? nil : $0 }
        if let chosen, case .success(let descriptor) = makeUnlinkedTemporaryFile(prefix: prefix, in: chosen) {
            return .success(descriptor)
        }
        return makeUnlinkedTemporaryFile(prefix: prefix, in: "/tmp")
    }

    private static func makeUnlinkedTemporaryFile(prefix: String, in directory: String) -> Result<Int32, SystemError> {
        var path = Array("\(directory)/\(prefix)-XXXXXX".utf8CString)
        let descriptor = path.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else { return .failure(SystemError(call: "mkstemp", code: errno)) }
        _ = path.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        return .success(descriptor)
    }

    // MARK: C streams (libpcap reads offline captures from a `FILE *`)

    /// Opens `path` for reading as a C stream.
    public static func openStream(_ path: String) -> Result<OpaquePointer, SystemError> {
        guard let stream = fopen(path, "rb") else { return .failure(SystemError(call: "fopen", code: errno)) }
        return .success(OpaquePointer(stream))
    }

    /// Creates (or empties) `path` for writing as a C stream, refusing to follow a symbolic link
    /// at `path` (one planted where a privileged process writes would redirect its output).
    public static func createStreamForWriting(_ path: String) -> Result<OpaquePointer, SystemError> {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return .failure(SystemError(call: "open", code: errno)) }
        guard let stream = fdopen(descriptor, "wb") else {
            let code = errno
            close(descriptor)
            return .failure(SystemError(call: "fdopen", code: code))
        }
        return .success(OpaquePointer(stream))
    }

    /// Creates (or empties) `path` for writing, refusing to follow a symbolic link at `path`;
    /// with `exclusive`, refuses an existing file instead.
    public static func createFile(_ path: String, exclusive: Bool = false) -> Result<Int32, SystemError> {
        let flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC)
        let descriptor = open(path, flags, 0o644)
        guard descriptor >= 0 else { return .failure(SystemError(call: "open", code: errno)) }
        return .success(descriptor)
    }

    /// The names in a directory (without `.` and `..`); fails when `path` is not a directory.
    public static func directoryEntries(_ path: String) -> Result<[String], SystemError> {
        guard let directory = opendir(path) else { return .failure(SystemError(call: "opendir", code: errno)) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return .success(names)
    }

    /// Creates a directory; one that exists already is fine.
    public static func makeDirectory(_ path: String) -> SystemError? {
        if mkdir(path, 0o755) == 0 || errno == EEXIST { return nil }
        return SystemError(call: "mkdir", code: errno)
    }

    /// Raises the soft limit on open descriptors (`ulimit -n`) to the hard one.
    public static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// Makes the pipe behind `descriptor` hold up to `bytes` (Linux `F_SETPIPE_SZ`, at most
    /// /proc/sys/fs/pipe-max-size); returns the size it holds now, or nil when `descriptor` is
    /// not a pipe. A writer far faster than its reader then switches with it far less often.
    public static func enlargePipe(_ descriptor: Int32, to bytes: Int) -> Int? {
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFIFO else { return nil }
        let setPipeSize: Int32 = 1031  // F_SETPIPE_SZ (F_LINUX_SPECIFIC_BASE + 7)
        let getPipeSize: Int32 = 1032
        var size = fcntl(descriptor, setPipeSize, Int32(clamping: bytes))
        // Past the system's maximum for this user: the largest the system allows is tried.
        if size < 0 { size = fcntl(descriptor, setPipeSize, Int32(1 << 20)) }
        if size < 0 { size = fcntl(descriptor, getPipeSize) }
        return size < 0 ? nil : Int(size)
    }

    /// The soft limit on open descriptors.
    public static var openFileLimit: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(clamping: limit.rlim_cur)
    }

    /// The descriptor is a terminal (colours make sense).
    public static func isTerminal(_ descriptor: Int32) -> Bool { isatty(descriptor) == 1 }

    /// Moves a descriptor's position back to the start of its file.
    public static func seekToStart(_ descriptor: Int32) -> Bool {
        lseek(descriptor, 0, SEEK_SET) == 0
    }

    /// A C stream reading an open descriptor (which the stream then owns).
    public static func readingStream(_ descriptor: Int32) -> Result<OpaquePointer, SystemError> {
        guard let stream = fdopen(descriptor, "rb") else { return .failure(SystemError(call: "fdopen", code: errno)) }
        return .success(OpaquePointer(stream))
    }

    /// Standard input as a C stream.
    public static func standardInputStream() -> Result<OpaquePointer, SystemError> {
        guard let stream = fdopen(STDIN_FILENO, "rb") else { return .failure(SystemError(call: "fdopen", code: errno)) }
        return .success(OpaquePointer(stream))
    }

    public static func closeStream(_ stream: OpaquePointer) {
        fclose(UnsafeMutablePointer<FILE>(stream))
    }

    /// Reads up to `count` bytes from a C stream: how many arrived.
    public static func read(stream: OpaquePointer, into buffer: UnsafeMutableRawPointer, count: Int) -> Int {
        fread(buffer, 1, count, UnsafeMutablePointer<FILE>(stream))
    }

    /// Where a C stream is in its file.
    public static func position(of stream: OpaquePointer) -> Int64 {
        Int64(ftello(UnsafeMutablePointer<FILE>(stream)))
    }

    public static func descriptor(of stream: OpaquePointer) -> Int32 {
        fileno(UnsafeMutablePointer<FILE>(stream))
    }

    // MARK: Memory

    /// The offset of the first `byte` in `bytes` at or after `start` (linear, `memchr`).
    @inline(__always)
    public static func firstIndex(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let base = bytes.baseAddress, start < bytes.count,
              let found = memchr(base + start, Int32(byte), bytes.count - start)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(found))
    }

    // MARK: Process

    public static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The wall clock, as packets are stamped by a live capture.
    public static func wallClock() -> CaptureTimestamp {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return CaptureTimestamp(seconds: Int64(now.tv_sec), nanoseconds: UInt32(now.tv_nsec))
    }

    /// The processors online (at least 1).
    public static var processorCount: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// A write to a closed pipe fails with EPIPE instead of killing the process.
    public static func ignoreBrokenPipes() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// Memory freed in large blocks stays with the process for the next allocation (up to 64 MiB
    /// more than in use, blocks up to 32 MiB from the heap) instead of going back to the kernel at
    /// once: an exporter's buffers of one connection, freed as the next one grows its own, cost a
    /// page fault per 4 KiB touched again (bulk JSON: 0.2 s of 0.4 s).
    public static func keepFreedMemoryForReuse() {
        #if canImport(Glibc)
        // glibc's mallopt (<malloc.h> is not part of the Glibc module): M_MMAP_THRESHOLD is -3,
        // M_TRIM_THRESHOLD -1.
        typealias MallocOption = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: MallocOption.self)
        _ = mallopt(-3, .mebibytes(32))
        _ = mallopt(-1, .mebibytes(64))
        #endif
    }

    /// Leaves `signal` to a dispatch source: the default action (ending the process) is off.
    public static func ignore(signal number: Int32) {
        signal(number, SIG_IGN)
    }

    public static let interruptSignal = SIGINT
    public static let terminateSignal = SIGTERM

    /// Waits up to `milliseconds` for `descriptor` to become readable (or just waits, without one).
    public static func waitUntilReadable(_ descriptor: Int32?, milliseconds: Int32) {
        guard let descriptor, descriptor >= 0 else {
            usleep(UInt32(max(0, milliseconds)) * 1000)
            return
        }
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&entry, 1, milliseconds)
    }

    /// Switches the process to `user`'s uid, gid and groups, and checks root cannot be regained;
    /// on failure, why.
    public static func switchUser(to user: String) -> String? {
        guard let entry = getpwnam(user) else { return "no such user" }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        guard initgroups(user, gid) == 0 else { return SystemError(call: "initgroups", code: errno).description }
        guard setgid(gid) == 0 else { return SystemError(call: "setgid", code: errno).description }
        guard setuid(uid) == 0 else { return SystemError(call: "setuid", code: errno).description }
        guard getuid() == uid, geteuid() == uid, getgid() == gid else { return "the process still runs with other ids" }
        if uid != 0, setuid(0) == 0 { return "root privileges could be regained" }
        return nil
    }
}
