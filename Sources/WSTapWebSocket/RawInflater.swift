import WSTapCore
private import CZlib

/// A raw DEFLATE decompressor (zlib, no header) whose window can persist across messages.
///
/// The only file that calls zlib. Inflating always uses the largest window (15 bits): a
/// window at least as large as the compressor's decodes any stream correctly.
final class RawInflater {
    enum Outcome: Equatable {
        case finished
        /// Output passed the limit; the rest was inflated and discarded to keep the window right.
        case limitExceeded(produced: UInt64)
        case failed(String)
    }

    /// The zlib context, made on the first message and given back when the budget needs it for
    /// another connection (`InflaterBudget`).
    private var stream: UnsafeMutablePointer<z_stream>?
    private let budget: InflaterBudget
    /// Links in the budget's least-recently-used list. Unretained: the list owns nothing, and an
    /// inflater leaves it in its `deinit`, so no link outlives its object (weak references cost
    /// a side table per inflater and made every release of one take the slow path: 16% more
    /// instructions on a compressed capture's summary).
    fileprivate var newer: Unretained<RawInflater>?
    fileprivate var older: Unretained<RawInflater>?
    fileprivate var isLive = false
    /// The budget gave the context (and its window) to another connection since the last look.
    private var contextDropped = false
    /// The last message's output, up to its limit; allocated on the first message.
    private var outputStart: UnsafeMutableRawPointer?
    private var outputCapacity = 0
    private var outputCount = 0
    /// Where output past the limit is inflated and dropped (the window still needs it).
    private var discard: UnsafeMutableRawBufferPointer?
    private static let chunkSize = 32 * 1024

    /// The bytes the last `inflateMessage` produced (at most its limit); valid until the next call.
    var output: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: outputStart, count: outputCount) }

    init(budget: InflaterBudget) {
        self.budget = budget
    }

    deinit {
        budget.remove(self)
        releaseContext()
    }

    /// Forgets the window: the next message starts a fresh context.
    func reset() {
        if let stream { inflateReset(stream) }
    }

    /// Whether the context was given away since the last call (and forgets that it was).
    func takeContextDropped() -> Bool {
        defer { contextDropped = false }
        return contextDropped
    }

    /// The budget needs this context for another connection: its memory is given back; the
    /// next message starts from an empty window.
    fileprivate func dropContext() {
        releaseContext()
        contextDropped = true
    }

    private func releaseContext() {
        outputStart?.deallocate()
        outputStart = nil
        outputCapacity = 0
        outputCount = 0
        discard?.deallocate()
        discard = nil
        if let stream {
            inflateEnd(stream)
            stream.deinitialize(count: 1)
            stream.deallocate()
        }
        stream = nil
    }

    /// The zlib context, made (within the budget) when there is none.
    private func liveStream() -> UnsafeMutablePointer<z_stream>? {
        budget.touch(self)
        if let stream { return stream }
        let made = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        made.initialize(to: z_stream())
        guard wstap_inflate_init_raw(made, 15) == Z_OK else {
            made.deinitialize(count: 1)
            made.deallocate()
            return nil
        }
        stream = made
        return made
    }

    /// Inflates `input` followed by the `00 00 ff ff` tail RFC 7692 §7.2.2 strips, appending at
    /// most `limit` bytes to `output`.
    func inflateMessage(_ input: UnsafeRawBufferPointer, limit: Int) -> Outcome {
        var produced: UInt64 = 0
        outputCount = 0
        guard let stream = liveStream() else { return .failed("zlib could not start a context") }
        if input.count <= Self.joinedInputLimit {
            // One call to zlib instead of two: message and tail copied side by side (in the
            // budget's scratch buffer, one per analyzer).
            let joined = budget.joinedInput
            if let source = input.baseAddress { joined.baseAddress!.copyMemory(from: source, byteCount: input.count) }
            (joined.baseAddress! + input.count).storeBytes(of: Self.tailWord, as: UInt32.self)
            let whole = UnsafeRawBufferPointer(rebasing: joined[0..<(input.count + Self.tail.count)])
            if let failure = run(whole, into: stream, limit: limit, produced: &produced) { return .failed(failure) }
        } else {
            if let failure = run(input, into: stream, limit: limit, produced: &produced) { return .failed(failure) }
            if let failure = Self.tail.withUnsafeBytes({ run($0, into: stream, limit: limit, produced: &produced) }) {
                return .failed(failure)
            }
        }
        return produced > UInt64(limit) ? .limitExceeded(produced: produced) : .finished
    }

    /// The empty stored block a sender strips from every message (RFC 7692 §7.2.1).
    private static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]
    private static let tailWord = UInt32(0xFFFF_0000).littleEndian
    /// Messages up to this size are copied next to their tail and inflated in one call.
    fileprivate static let joinedInputLimit = 16 * 1024

    /// Gives back the output memory if one message made it larger than a frame's payload buffer
    /// may stay between frames (`FrameDecoder.keptCapacity`): idle connections hold little.
    func releaseLargeOutput(above limit: Int = FrameDecoder.keptCapacity) {
        guard outputCapacity > limit else { return }
        outputStart?.deallocate()
        outputStart = nil
        outputCapacity = 0
        outputCount = 0
    }

    /// Inflates straight into the output buffer, growing it up to `limit`; what lies past the
    /// limit is inflated into a scratch chunk and only counted.
    private func run(
        _ input: UnsafeRawBufferPointer, into stream: UnsafeMutablePointer<z_stream>, limit: Int, produced: inout UInt64
    ) -> String? {
        guard let base = input.baseAddress, !input.isEmpty else { return nil }
        stream.pointee.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        defer {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
        }
        while true {
            let keeping = outputCount < limit
            let destination: UnsafeMutableRawPointer
            let room: Int
            if keeping {
                room = min(Self.chunkSize, limit - outputCount)
                growOutput(toHold: outputCount + room)
                destination = outputStart! + outputCount
            } else {
                let scratch = discard ?? UnsafeMutableRawBufferPointer.allocate(byteCount: Self.chunkSize, alignment: 16)
                discard = scratch
                destination = scratch.baseAddress!
                room = scratch.count
            }
            stream.pointee.next_out = destination.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(room)
            let status = inflate(stream, Z_SYNC_FLUSH)
            let written = room - Int(stream.pointee.avail_out)
            if keeping { outputCount += written }
            produced &+= UInt64(written)
            switch status {
            case Z_OK:
                if stream.pointee.avail_in == 0, written < room { return nil }
            case Z_STREAM_END:
                // The sender ended the DEFLATE stream (BFINAL); the next message starts a new one.
                inflateReset(stream)
                if stream.pointee.avail_in == 0 { return nil }
            case Z_BUF_ERROR:
                return nil
            default:
                let message = stream.pointee.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                return message
            }
        }
    }

    private func growOutput(toHold needed: Int) {
        guard needed > outputCapacity else { return }
        var capacity = max(outputCapacity * 2, 16 * 1024)
        while capacity < needed { capacity *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        if let old = outputStart {
            bigger.copyMemory(from: old, byteCount: outputCount)
            old.deallocate()
        }
        outputStart = bigger
        outputCapacity = capacity
    }
}

/// How many zlib contexts one analyzer keeps at once (each up to about 55 KB: 7 KB of state, a
/// 32 KiB window, an output buffer of 16 KiB or more; docs/limits.md has the measured cost): past `maxContexts`, the least recently used connection's context is
/// given back, and that connection's next message that needs its window reports
/// `deflate-context-lost` (docs/limits.md). One per analyzer (per job); not shared between threads.
public final class InflaterBudget {
    public let maxContexts: Int
    /// Contexts given back to make room, over the analysis.
    public private(set) var contextsDropped: UInt64 = 0
    private(set) var liveContexts = 0
    /// Least recently used first; `newest` is the last one used (unretained: each inflater is
    /// its connection's, and leaves the list in its `deinit`).
    private var oldest: Unretained<RawInflater>?
    private var newest: Unretained<RawInflater>?
    /// The scratch buffer where a message is joined to its tail before inflating.
    fileprivate let joinedInput: UnsafeMutableRawBufferPointer

    public init(maxContexts: Int = 4096) {
        self.maxContexts = max(1, maxContexts)
        joinedInput = .allocate(byteCount: RawInflater.joinedInputLimit + 4, alignment: 16)
    }

    deinit { joinedInput.deallocate() }

    /// `inflater` is about to use its context: it becomes the most recently used (admitted, and
    /// the oldest evicted, when it had none).
    fileprivate func touch(_ inflater: RawInflater) {
        let link = Unretained(inflater)
        if inflater.isLive {
            guard !(newest?.isSame(as: link) ?? false) else { return }
            unlink(inflater)
        } else {
            if liveContexts >= maxContexts, let evicted = oldest {
                evicted.with { evicted in
                    remove(evicted)
                    contextsDropped &+= 1
                    evicted.dropContext()
                }
            }
            inflater.isLive = true
            liveContexts += 1
        }
        inflater.older = newest
        inflater.newer = nil
        newest?.with { $0.newer = link }
        newest = link
        if oldest == nil { oldest = link }
    }

    /// An inflater goes away: out of the list.
    fileprivate func remove(_ inflater: RawInflater) {
        guard inflater.isLive else { return }
        unlink(inflater)
        inflater.isLive = false
        liveContexts -= 1
    }

    private func unlink(_ inflater: RawInflater) {
        let (older, newer) = (inflater.older, inflater.newer)
        if let newer { newer.with { $0.older = older } } else { newest = older }
        if let older { older.with { $0.newer = newer } } else { oldest = newer }
        inflater.older = nil
        inflater.newer = nil
    }
}
