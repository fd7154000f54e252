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
    private var held: HeldBytes?
    private var skippedBytes: UInt64 = 0
    /// Bytes searched in all without finding frames; past `searchGiveUpBytes` the stream is not WebSocket.
    private var searchedWithoutFrames: UInt64 = 0
    /// The connection is known to carry WebSocket: shorter chains are believed.
    var confirmed = false
    /// After the last search: the held bytes begin with complete frames that end where they end,
    /// too few to decide alone (`WebSocketConnectionDecoder` weighs both directions' together).
    private(set) var tentativeChain: FrameSearch.TentativeChain?
    private static let maxSearchBuffer = Int.mebibytes(1)
    private static let searchGiveUpBytes: UInt64 = .mebibytes(4)

    init(allowedReservedBits: UInt8, maxPayloadBytes: Int, synchronized: Bool) {
        self.allowedReservedBits = allowedReservedBits
        frames = FrameDecoder(maxPayloadBytes: maxPayloadBytes)
        if !synchronized { held = HeldBytes() }
    }

    /// True once this direction searched long enough without finding frames: it is not WebSocket.
    var gaveUpSearching: Bool { searchedWithoutFrames >= Self.searchGiveUpBytes }

    /// Frame boundaries are known: bytes can go to `decodeInStep`.
    var isInStep: Bool { held == nil }

    /// Bytes are held for a search: frames found in them later will carry earlier times.
    var holdsSearchBytes: Bool { !(held?.isEmpty ?? true) }

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
        if held != nil {
            guard !gaveUpSearching else { return }
            held!.append(bytes, at: time)
            search(final: false, role: role, at: time, output: output)
            return
        }
        frames.decode(bytes) { output(.frame($0, time: time)) }
    }

    /// Searches what is held now, with the requirement `confirmed` sets (the other direction
    /// just showed the connection is WebSocket): frames are found without waiting for more bytes.
    mutating func searchHeldBytes(at time: CaptureTimestamp, role: WebSocketRole?, output: (Output) -> Void) {
        guard holdsSearchBytes, role != nil, !gaveUpSearching else { return }
        search(final: false, role: role, at: time, output: output)
    }

    /// Live capture, nothing more has come for a while: the held bytes are decided on as at the
    /// stream's end (a lone whole frame is believed), and the stream goes on.
    mutating func settle(at time: CaptureTimestamp, role: WebSocketRole?, output: (Output) -> Void) {
        guard holdsSearchBytes, !gaveUpSearching else { return }
        search(final: true, role: role, at: time, output: output)
    }

    /// Takes the tentative chain the last search found as the frames: the other direction's
    /// frames make up for its shortness.
    mutating func acceptTentativeChain(at time: CaptureTimestamp, output: (Output) -> Void) {
        guard let chain = tentativeChain, held != nil else { return }
        resume(at: 0, masked: chain.masked, time: time, output: output)
    }

    /// The stream ended: decode what a search still holds, and report a frame cut off at the end.
    mutating func finish(at time: CaptureTimestamp, role: WebSocketRole?, output: (Output) -> Void) {
        // A short chain is only believed where the connection is known to carry WebSocket.
        if held != nil, !gaveUpSearching, role != nil { search(final: true, role: role, at: time, output: output) }
        if let held, !held.isEmpty || skippedBytes > 0 {
            if role != nil { output(.violation(.undecodableBytes(skippedBytes + UInt64(held.count)))) }
            startSearch()
            skippedBytes = 0
            return
        }
        let lacking = frames.finish { output(.frame($0, time: time)) }
        if lacking > 0 { output(.violation(.payloadMissing(bytes: lacking))) }
    }

    /// The next bytes may not start at a frame boundary (the head before them was cut): search.
    /// False when a search or a frame was already under way.
    mutating func boundaryUnknown() -> Bool {
        guard held == nil, frames.isAtFrameBoundary else { return false }
        startSearch()
        return true
    }

    /// Bytes the capture lacks. `reportsPartialFrames: false` keeps frames cut this way from
    /// being reported one by one (a snapshot length cuts every packet; it is reported once).
    /// `boundaryLost`: `byteCount` is at most what was lost and what follows may not continue
    /// the frame in progress: it ends at the gap, and frames are searched for.
    mutating func missing(
        byteCount: UInt64, at time: CaptureTimestamp, role: WebSocketRole?, reportsPartialFrames: Bool,
        boundaryLost: Bool = false, output: (Output) -> Void
    ) {
        if boundaryLost, held == nil {
            let cut = min(byteCount, frames.remainingPayload)
            if cut > 0 {
                _ = frames.missing(byteCount: cut) { output(.frame($0, time: time)) }
                output(.violation(.payloadMissing(bytes: cut)))
            }
            if !frames.isAtFrameBoundary {
                let rest = frames.remainingPayload
                _ = frames.missing(byteCount: rest) { output(.frame($0, time: time)) }
                output(.lostSynchronization(bytes: rest))
            }
            startSearch()
            return
        }
        if let held {
            if let role, !held.isEmpty, let masked = held.withUnsafeBytes({
                FrameSearch.chainEndingInGap($0, gap: byteCount, rules: FrameSearch.Rules(
                    allowedReservedBits: allowedReservedBits, masked: role == .client))
            }) {
                // Frames run from the first byte to a frame the gap cuts exactly: boundaries are known.
                resume(at: 0, masked: masked, time: time, output: output)
                _ = frames.missing(byteCount: byteCount) { output(.frame($0, time: time)) }
                if reportsPartialFrames { output(.violation(.payloadMissing(bytes: byteCount))) }
                return
            }
            // Bytes on both sides of a gap cannot chain: what was held is lost too.
            skippedBytes &+= UInt64(held.count) &+ byteCount
            startSearch()
            return
        }
        let insideFrame = min(byteCount, frames.remainingPayload)
        let stillSynchronized = frames.missing(byteCount: byteCount) { output(.frame($0, time: time)) }
        if stillSynchronized {
            if reportsPartialFrames { output(.violation(.payloadMissing(bytes: byteCount))) }
            return
        }
        output(.lostSynchronization(bytes: byteCount))
        startSearch()
        skippedBytes = byteCount - insideFrame
    }

    /// Holds bytes from now on to look for frame boundaries.
    private mutating func startSearch() {
        held = HeldBytes()
        tentativeChain = nil
    }

    /// Looks for frame boundaries in the held bytes; resumes decoding at the first one found.
    ///
    /// Linear over a stream: bytes before the first candidate are dropped for good, and each call
    /// looks at each dropped offset once and at the candidate's chain once (`FrameSearch` bounds
    /// the work per offset); a candidate that waits for more bytes costs a bounded amount per call.
    private mutating func search(final: Bool, role: WebSocketRole?, at time: CaptureTimestamp, output: (Output) -> Void) {
        guard let bytesHeld = held else { return }
        let rules = FrameSearch.Rules(
            allowedReservedBits: allowedReservedBits, masked: role.map { $0 == .client },
            maxPayloadLength: UInt64(Self.maxSearchBuffer))
        let outcome = bytesHeld.withUnsafeBytes {
            FrameSearch.search($0, rules: rules, requirement: final ? .lastChance : confirmed ? .confirmed : .normal)
        }
        tentativeChain = nil
        switch outcome {
        case .found(let offset, let masked):
            resume(at: offset, masked: masked, time: time, output: output)
        case .needMoreData(let candidate, let tentative):
            var drop = candidate
            // A chain that needs more than the search may hold is not taken: look past its start.
            if bytesHeld.count - candidate > Self.maxSearchBuffer { drop = candidate + 1 } else { tentativeChain = tentative }
            if drop > 0 {
                held!.dropFirst(drop)
                skippedBytes &+= UInt64(drop)
                searchedWithoutFrames &+= UInt64(drop)
            }
        case .noFrames:
            skippedBytes &+= UInt64(bytesHeld.count)
            searchedWithoutFrames &+= UInt64(bytesHeld.count)
            startSearch()
        }
        if gaveUpSearching {
            startSearch()
        }
    }

    /// Frames start `offset` bytes into the held bytes: decodes them from there, piece by piece,
    /// each with the time it was captured, and goes on in step.
    private mutating func resume(at offset: Int, masked: Bool, time: CaptureTimestamp, output: (Output) -> Void) {
        guard let bytesHeld = held else { return }
        skippedBytes &+= UInt64(offset)
        held = nil
        tentativeChain = nil
        output(.resynchronized(skippedBytes: skippedBytes, masked: masked))
        skippedBytes = 0
        searchedWithoutFrames = 0
        frames.reset()
        bytesHeld.forEachPiece(from: offset) { piece, time in
            frames.decode(piece) { output(.frame($0, time: time)) }
        }
    }
}

/// The bytes a search holds, with the capture time of each received piece.
///
/// Dropping from the front moves a start index; the storage is compacted once the dropped part
/// is at least half of it, so each byte is copied a bounded number of times (amortised linear).
private struct HeldBytes {
    private var storage: [UInt8] = []
    private var start = 0
    /// Where each received piece ends in `storage`, and when it was captured; from `firstPiece` on.
    private var pieces: [(end: Int, time: CaptureTimestamp)] = []
    private var firstPiece = 0

    var count: Int { storage.count - start }
    var isEmpty: Bool { storage.count == start }

    mutating func append(_ bytes: UnsafeRawBufferPointer, at time: CaptureTimestamp) {
        guard !bytes.isEmpty else { return }
        storage.appendBytes(bytes)
        pieces.append((storage.count, time))
    }

    mutating func dropFirst(_ length: Int) {
        start += length
        while firstPiece < pieces.count, pieces[firstPiece].end <= start { firstPiece += 1 }
        guard start >= 4096, start * 2 >= storage.count else { return }
        storage.removeFirst(start)
        pieces.removeFirst(firstPiece)
        for index in pieces.indices { pieces[index].end -= start }
        start = 0
        firstPiece = 0
    }

    func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }

    /// The held bytes from `offset` on, piece by piece, with each piece's capture time.
    func forEachPiece(from offset: Int, _ body: (UnsafeRawBufferPointer, CaptureTimestamp) -> Void) {
        storage.withUnsafeBytes { bytes in
            var position = start + offset
            for piece in pieces[firstPiece...] where piece.end > position {
                body(UnsafeRawBufferPointer(rebasing: bytes[position..<piece.end]), piece.time)
                position = piece.end
            }
        }
    }
}
