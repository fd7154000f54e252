import WSTapCore

/// Where frames begin in one direction's bytes: frame after frame while boundaries are known,
/// and a search (`FrameSearch`) while they are not (a connection caught mid-way, after a gap that
/// crossed a frame boundary, or after a head that was cut).
///
/// While searching, received bytes are held (at most `maxSearchBuffer`) with the capture time of
/// each piece, so that frames found later carry the time of the piece that completed them.
struct FrameSynchronizer {
    /// What synchronizing reports, in stream order.
    enum Output {
        case frame(DecodedFrame, time: CaptureTimestamp)
        /// Frame boundaries were found after `skippedBytes` that could not be decoded; `masked`
        /// is the found frames' masking (the sender's role).
        case resynchronized(skippedBytes: UInt64, masked: Bool)
        /// A gap crossed a frame boundary: the frame it cut ended, and a search begins.
        case lostSynchronization(bytes: UInt64)
        case violation(FrameViolation)
    }

    private var frames: FrameDecoder
    private let allowedReservedBits: UInt8
    /// Bytes held while looking for frame boundaries; nil while frames are in step.
    private var searchBuffer: [UInt8]? {
        didSet { if searchBuffer?.isEmpty ?? true { searchChunks.removeAll() } }
    }
    /// Where each received piece of `searchBuffer` ends, and when it was captured.
    private var searchChunks: [(end: Int, time: CaptureTimestamp)] = []
    private var skippedBytes: UInt64 = 0
    /// Bytes searched in all without finding frames; past `searchGiveUpBytes` the stream is not WebSocket.
    private var searchedWithoutFrames: UInt64 = 0
    /// The connection is known to carry WebSocket: shorter chains are believed.
    var confirmed = false
    private static let maxSearchBuffer = 1 << 20
    private static let searchGiveUpBytes: UInt64 = 4 << 20

    init(allowedReservedBits: UInt8, maxPayloadBytes: Int, synchronized: Bool) {
        self.allowedReservedBits = allowedReservedBits
        frames = FrameDecoder(maxPayloadBytes: maxPayloadBytes)
        if !synchronized { searchBuffer = [] }
    }

    /// True once this direction searched long enough without finding frames: it is not WebSocket.
    var gaveUpSearching: Bool { searchedWithoutFrames >= Self.searchGiveUpBytes }

    /// Frame boundaries are known: bytes can go to `decodeInStep`.
    var isInStep: Bool { searchBuffer == nil }

    /// Bytes are held for a search: frames found in them later will carry earlier times.
    var holdsSearchBytes: Bool { !(searchBuffer?.isEmpty ?? true) }

    /// Decodes bytes while frame boundaries are known (`isInStep`): the common path, with each
    /// frame handed straight to `frame`, in the time of the bytes being decoded.
    @inline(__always)
    mutating func decodeInStep(_ bytes: UnsafeRawBufferPointer, frame: (DecodedFrame) -> Void) {
        frames.decode(bytes, emit: frame)
    }

    /// Bytes captured at `time`. `role` is the sender's, when known: it decides the masking a
    /// searched frame must have.
    mutating func receive(
        _ bytes: UnsafeRawBufferPointer, at time: CaptureTimestamp, role: WebSocketRole?, output: (Output) -> Void
    ) {
        if searchBuffer != nil {
            guard !gaveUpSearching else { return }
            searchBuffer?.appendBytes(bytes)
            searchChunks.append((searchBuffer?.count ?? 0, time))
            search(final: false, role: role, at: time, output: output)
            return
        }
        frames.decode(bytes) { output(.frame($0, time: time)) }
    }

    /// Searches what is held now, with the requirement `confirmed` sets (the other direction
    /// just showed the connection is WebSocket): frames are found without waiting for more bytes.
    mutating func searchHeldBytes(at time: CaptureTimestamp, role: WebSocketRole?, output: (Output) -> Void) {
        guard let held = searchBuffer, !held.isEmpty, role != nil, !gaveUpSearching else { return }
        search(final: false, role: role, at: time, output: output)
    }

    /// The stream ended: decode what a search still holds, and report a frame cut off at the end.
    mutating func finish(at time: CaptureTimestamp, role: WebSocketRole?, output: (Output) -> Void) {
        // A short chain is only believed where the connection is known to carry WebSocket.
        if searchBuffer != nil, !gaveUpSearching, role != nil { search(final: true, role: role, at: time, output: output) }
        if let held = searchBuffer, !held.isEmpty || skippedBytes > 0 {
            if role != nil { output(.violation(.undecodableBytes(skippedBytes + UInt64(held.count)))) }
            searchBuffer = []
            skippedBytes = 0
            return
        }
        let lacking = frames.finish { output(.frame($0, time: time)) }
        if lacking > 0 { output(.violation(.payloadMissing(bytes: lacking))) }
    }

    /// The next bytes may not start at a frame boundary (the head before them was cut): search.
    /// False when a search or a frame was already under way.
    mutating func boundaryUnknown() -> Bool {
        guard searchBuffer == nil, frames.isAtFrameBoundary else { return false }
        searchBuffer = []
        return true
    }

    /// Bytes the capture lacks. `reportsPartialFrames: false` keeps frames cut this way from
    /// being reported one by one (a snapshot length cuts every packet; it is reported once).
    mutating func missing(
        byteCount: UInt64, at time: CaptureTimestamp, role: WebSocketRole?, reportsPartialFrames: Bool,
        output: (Output) -> Void
    ) {
        if let held = searchBuffer {
            if let role, !held.isEmpty, let masked = held.withUnsafeBytes({
                FrameSearch.chainEndingInGap($0, gap: byteCount, rules: FrameSearch.Rules(
                    allowedReservedBits: allowedReservedBits, masked: role == .client))
            }) {
                // Frames run from the first byte to a frame the gap cuts exactly: boundaries are known.
                let chunks = searchChunks
                searchBuffer = nil
                output(.resynchronized(skippedBytes: skippedBytes, masked: masked))
                skippedBytes = 0
                frames.reset()
                replay(held, from: 0, chunks: chunks, resumeTime: time, output: output)
                _ = frames.missing(byteCount: byteCount) { output(.frame($0, time: time)) }
                if reportsPartialFrames { output(.violation(.payloadMissing(bytes: byteCount))) }
                return
            }
            // Bytes on both sides of a gap cannot chain: what was held is lost too.
            skippedBytes &+= UInt64(held.count) &+ byteCount
            searchBuffer = []
            return
        }
        let insideFrame = min(byteCount, frames.remainingPayload)
        let stillSynchronized = frames.missing(byteCount: byteCount) { output(.frame($0, time: time)) }
        if stillSynchronized {
            if reportsPartialFrames { output(.violation(.payloadMissing(bytes: byteCount))) }
            return
        }
        output(.lostSynchronization(bytes: byteCount))
        searchBuffer = []
        skippedBytes = byteCount - insideFrame
    }

    /// Looks for frame boundaries in the held bytes; resumes decoding at the first one found.
    ///
    /// Linear over a stream: each call looks at the held bytes once (`FrameSearch.search` is
    /// linear in its input), and bytes before the first candidate are dropped for good.
    private mutating func search(final: Bool, role: WebSocketRole?, at time: CaptureTimestamp, output: (Output) -> Void) {
        guard var buffer = searchBuffer else { return }
        let chunks = searchChunks
        let rules = FrameSearch.Rules(
            allowedReservedBits: allowedReservedBits, masked: role.map { $0 == .client },
            maxPayloadLength: UInt64(Self.maxSearchBuffer))
        let outcome = buffer.withUnsafeBytes {
            FrameSearch.search($0, rules: rules, requirement: final ? .lastChance : confirmed ? .confirmed : .normal)
        }
        switch outcome {
        case .found(let offset, let masked):
            skippedBytes &+= UInt64(offset)
            searchBuffer = nil
            output(.resynchronized(skippedBytes: skippedBytes, masked: masked))
            skippedBytes = 0
            searchedWithoutFrames = 0
            frames.reset()
            replay(buffer, from: offset, chunks: chunks, resumeTime: time, output: output)
        case .needMoreData(let candidate):
            var drop = candidate
            // A chain that needs more than the search may hold is not taken: look past its start.
            if buffer.count - candidate > Self.maxSearchBuffer { drop = candidate + 1 }
            if drop > 0 {
                buffer.removeFirst(drop)
                skippedBytes &+= UInt64(drop)
                searchedWithoutFrames &+= UInt64(drop)
            }
            searchBuffer = buffer
            searchChunks = chunks.compactMap { $0.end > drop ? ($0.end - drop, $0.time) : nil }
        case .noFrames:
            skippedBytes &+= UInt64(buffer.count)
            searchedWithoutFrames &+= UInt64(buffer.count)
            searchBuffer = []
        }
        if gaveUpSearching { searchBuffer = [] }
    }

    /// Decodes held bytes from `offset` on, piece by piece, each with the time it was captured.
    private mutating func replay(
        _ buffer: [UInt8], from offset: Int, chunks: [(end: Int, time: CaptureTimestamp)], resumeTime: CaptureTimestamp,
        output: (Output) -> Void
    ) {
        var start = offset
        buffer.withUnsafeBytes { bytes in
            for chunk in chunks where chunk.end > start {
                frames.decode(UnsafeRawBufferPointer(rebasing: bytes[start..<min(chunk.end, bytes.count)])) {
                    output(.frame($0, time: chunk.time))
                }
                start = chunk.end
            }
            if start < bytes.count {
                frames.decode(UnsafeRawBufferPointer(rebasing: bytes[start...])) { output(.frame($0, time: resumeTime)) }
            }
        }
    }
}
