import WSTapCore

/// Payload bytes the capture lacks: `length` bytes at `offset` of the payload as it was sent.
/// The payload handed on holds the captured bytes only, in order: the bytes before a gap are at
/// `offset` minus the lengths of the gaps before it. Missing bytes are never filled in or spliced
/// over silently: every gap is listed.
public struct PayloadGap: Sendable, Equatable {
    public var offset: UInt64
    public var length: UInt64

    public init(offset: UInt64, length: UInt64) {
        self.offset = offset
        self.length = length
    }
}

/// One frame as decoded from a direction's byte stream.
public struct DecodedFrame {
    public var header: FrameHeader
    /// The unmasked payload; borrowed, valid only during the callback that receives it.
    public var payload: UnsafeRawBufferPointer
    /// Payload bytes beyond the decoder's size limit that were read past but not kept.
    public var bytesNotKept: UInt64
    /// Payload bytes lost in a capture gap (the frame boundaries are still known).
    public var bytesMissing: UInt64
    /// Where those bytes were, in order (empty when none are missing); borrowed like `payload`
    /// (a frame stays a plain value: no reference counting on the path of every frame).
    public var gaps = UnsafeBufferPointer<PayloadGap>(start: nil, count: 0)

    /// True when `payload` holds every byte the length field announced.
    public var isComplete: Bool { bytesNotKept == 0 && bytesMissing == 0 }
}

/// Splits one direction's byte stream into frames (RFC 6455 §5.2), however the bytes are cut.
///
/// A state machine: waiting for a header, then for payload. Payload that arrives whole in one
/// call is handed out without copying (masked payload is unmasked into a reused buffer); only a
/// frame that spans calls is accumulated.
///
/// Linear: each input byte is looked at once (a header byte copied at most once into
/// `headerBytes`, a payload byte unmasked or copied once), and the payload buffer grows to four
/// times what has arrived, never from the length field alone; between frames a connection keeps
/// at most `keptCapacity` of it.
public struct FrameDecoder {
    private struct PayloadProgress {
        var header: FrameHeader
        var remaining: UInt64
        /// Payload bytes consumed so far, kept or not: the masking key position.
        var position: UInt64 = 0
        var bytesNotKept: UInt64 = 0
        var bytesMissing: UInt64 = 0
    }

    private enum State {
        case header
        case payload(PayloadProgress)
        /// Bytes were lost where a header was expected; frame boundaries are unknown.
        case desynchronized
    }

    /// The payload (and unmasking) buffer a connection keeps between frames: a larger one is
    /// given back, so that thousands of idle connections that once received a long frame do not
    /// each hold it.
    static let keptCapacity = Int.kibibytes(16)
    /// Payload bytes kept per frame; longer payloads are read past and counted, not stored.
    public let maxPayloadBytes: Int
    private var state = State.header
    private var headerBytes: [UInt8] = []
    private var payload: [UInt8] = []
    /// Where the current frame's payload lacks bytes (see `PayloadGap`).
    private var gaps: [PayloadGap] = []
    /// Where a whole masked payload is unmasked; shared by copies of the decoder, which is
    /// harmless as its bytes live only during one `emit`.
    private let scratch = ScratchBytes()

    public init(maxPayloadBytes: Int = .mebibytes(64)) {
        self.maxPayloadBytes = maxPayloadBytes
    }

    public var isSynchronized: Bool {
        if case .desynchronized = state { return false }
        return true
    }

    /// Payload bytes the current frame still expects (0 between frames).
    public var remainingPayload: UInt64 {
        if case .payload(let progress) = state { return progress.remaining }
        return 0
    }

    /// True between frames, when no header or payload byte is outstanding.
    public var isAtFrameBoundary: Bool {
        if case .header = state { return headerBytes.isEmpty }
        return false
    }

    /// Feeds in-order bytes; `emit` receives each completed frame.
    public mutating func decode(_ bytes: UnsafeRawBufferPointer, emit: (DecodedFrame) -> Void) {
        var rest = bytes
        while !rest.isEmpty {
            switch state {
            case .desynchronized:
                return
            case .header where headerBytes.isEmpty:
                guard case .header(let header) = FrameHeader.parse(rest) else {
                    headerBytes.appendBytes(rest)
                    return
                }
                let available = UInt64(rest.count - header.headerLength)
                if header.payloadLength <= available, header.payloadLength <= UInt64(maxPayloadBytes) {
                    let end = header.headerLength + Int(header.payloadLength)
                    emitWhole(header, payload: UnsafeRawBufferPointer(rebasing: rest[header.headerLength..<end]), emit: emit)
                    rest = UnsafeRawBufferPointer(rebasing: rest[end...])
                } else {
                    rest = UnsafeRawBufferPointer(rebasing: rest[header.headerLength...])
                    state = .payload(PayloadProgress(header: header, remaining: header.payloadLength))
                }
            case .header:
                let alreadyHeld = headerBytes.count
                let take = min(14 - alreadyHeld, rest.count)
                headerBytes.appendBytes(UnsafeRawBufferPointer(rebasing: rest[rest.startIndex..<(rest.startIndex + take)]))
                let parsed = headerBytes.withUnsafeBytes { FrameHeader.parse($0) }
                guard case .header(let header) = parsed else {
                    rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + take)...])
                    continue
                }
                rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + header.headerLength - alreadyHeld)...])
                headerBytes.removeAll(keepingCapacity: true)
                startPayload(header, emit: emit)
            case .payload(var progress):
                let take = Int(min(progress.remaining, UInt64(rest.count)))
                append(UnsafeRawBufferPointer(rebasing: rest[rest.startIndex..<(rest.startIndex + take)]), to: &progress)
                rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + take)...])
                progress.remaining -= UInt64(take)
                finishOrContinue(progress, emit: emit)
            }
        }
    }

    /// Accounts for bytes lost in the capture. A gap inside a payload keeps the frame boundaries;
    /// a gap that runs past the current frame ends it as partial, and boundaries are lost.
    public mutating func missing(byteCount: UInt64, emit: (DecodedFrame) -> Void) -> Bool {
        guard case .payload(var progress) = state else {
            reset()
            state = .desynchronized
            return false
        }
        let inFrame = min(byteCount, progress.remaining)
        progress.remaining -= inFrame
        lose(inFrame, in: &progress)
        finishOrContinue(progress, emit: emit)
        guard byteCount > inFrame else { return true }
        reset()
        state = .desynchronized
        return false
    }

    /// At the end of the stream: a frame cut off inside its payload is handed on as partial.
    /// Returns the payload bytes the cut-off frame lacks.
    @discardableResult
    public mutating func finish(emit: (DecodedFrame) -> Void) -> UInt64 {
        guard case .payload(var progress) = state else { return 0 }
        let lacking = progress.remaining
        progress.remaining = 0
        lose(lacking, in: &progress)
        finishOrContinue(progress, emit: emit)
        return lacking
    }

    /// Forgets any partial frame and waits for a header at the next byte.
    public mutating func reset() {
        state = .header
        headerBytes.removeAll()
        payload.removeAll()
        gaps.removeAll()
    }

    /// `count` payload bytes of the current frame were not captured, at its current position.
    private mutating func lose(_ count: UInt64, in progress: inout PayloadProgress) {
        guard count > 0 else { return }
        gaps.append(PayloadGap(offset: progress.position, length: count))
        progress.position &+= count
        progress.bytesMissing &+= count
    }

    private mutating func startPayload(_ header: FrameHeader, emit: (DecodedFrame) -> Void) {
        payload.removeAll(keepingCapacity: payload.capacity <= Self.keptCapacity)
        finishOrContinue(PayloadProgress(header: header, remaining: header.payloadLength), emit: emit)
    }

    private mutating func finishOrContinue(_ progress: PayloadProgress, emit: (DecodedFrame) -> Void) {
        guard progress.remaining == 0 else {
            state = .payload(progress)
            return
        }
        state = .header
        payload.withUnsafeBytes { bytes in
            gaps.withUnsafeBufferPointer { gaps in
                emit(DecodedFrame(
                    header: progress.header, payload: bytes,
                    bytesNotKept: progress.bytesNotKept, bytesMissing: progress.bytesMissing, gaps: gaps))
            }
        }
        payload.removeAll(keepingCapacity: payload.capacity <= Self.keptCapacity)
        if !gaps.isEmpty { gaps.removeAll() }
    }

    /// Keeps what fits under the limit, unmasking it at its position in the payload.
    private mutating func append(_ bytes: UnsafeRawBufferPointer, to progress: inout PayloadProgress) {
        let room = max(0, maxPayloadBytes - payload.count)
        let keep = min(room, bytes.count)
        if payload.count + keep > payload.capacity {
            // Room grows with the bytes that arrive, never from a length field alone: four times
            // what is held, up to what the header claims (within the limit). A long payload is
            // copied about a third of its length again while it grows (doubling: once more).
            let claimed = Int(min(progress.header.payloadLength, UInt64(maxPayloadBytes)))
            payload.reserveCapacity(max(payload.count + keep, min(claimed, (payload.count + keep) * 4)))
        }
        if keep > 0 {
            let start = payload.count
            payload.appendBytes(UnsafeRawBufferPointer(rebasing: bytes[bytes.startIndex..<(bytes.startIndex + keep)]))
            if let key = progress.header.maskingKey {
                payload.withUnsafeMutableBytes { all in
                    unmask(UnsafeMutableRawBufferPointer(rebasing: all[start...]), key: key,
                           offset: Int(progress.position & 3))
                }
            }
        }
        progress.bytesNotKept &+= UInt64(bytes.count - keep)
        progress.position &+= UInt64(bytes.count)
    }

    private mutating func emitWhole(_ header: FrameHeader, payload bytes: UnsafeRawBufferPointer, emit: (DecodedFrame) -> Void) {
        guard let key = header.maskingKey else {
            emit(DecodedFrame(header: header, payload: bytes, bytesNotKept: 0, bytesMissing: 0))
            return
        }
        // The scratch buffer belongs to this decoder: used without reference counting.
        Unretained(scratch).with { scratch in
            let unmasked = scratch.room(bytes.count)
            unmask(bytes, into: unmasked, key: key, offset: 0)
            emit(DecodedFrame(header: header, payload: UnsafeRawBufferPointer(unmasked), bytesNotKept: 0, bytesMissing: 0))
            scratch.release(above: Self.keptCapacity)
        }
    }
}

/// A reusable raw buffer for bytes that live only during one callback.
final class ScratchBytes {
    private var base: UnsafeMutableRawPointer?
    private var capacity = 0

    deinit { base?.deallocate() }

    /// Room for `count` bytes; what the buffer held before is gone.
    @inline(__always)
    func room(_ count: Int) -> UnsafeMutableRawBufferPointer {
        if count > capacity {
            base?.deallocate()
            capacity = max(count, 256)
            base = .allocate(byteCount: capacity, alignment: 16)
        }
        return UnsafeMutableRawBufferPointer(start: base, count: count)
    }

    /// Frees the memory if it grew past `limit` (one huge payload should not stay resident).
    @inline(__always)
    func release(above limit: Int) {
        guard capacity > limit else { return }
        base?.deallocate()
        base = nil
        capacity = 0
    }
}
