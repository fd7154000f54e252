import WSTapCore
/// A complete data message (RFC 6455 §5.4), reassembled from its frames.
public struct WebSocketMessage {
    /// `.text` or `.binary`: the opcode of the message's first frame.
    public var opcode: WebSocketOpcode
    /// The message bytes; borrowed, valid only during the callback.
    public var payload: UnsafeRawBufferPointer
    public var frameCount: Int
    /// RSV1 was set on the first frame (permessage-deflate, RFC 7692).
    public var compressed: Bool
    /// False when bytes of the message were lost or not kept.
    public var isComplete: Bool
    /// For text messages, whether the payload is valid UTF-8; nil for binary or undecoded.
    public var isValidUTF8: Bool?
    /// False when the message is compressed and could not be decompressed: `payload` then holds
    /// the compressed bytes and must not be shown as the message.
    public var isDecoded: Bool
}

/// What decoding one direction yields, in stream order.
public enum WebSocketEvent {
    /// A frame, and for close frames its parsed body.
    case frame(DecodedFrame, close: CloseFrameBody?)
    case message(WebSocketMessage)
    case violation(FrameViolation)
    /// Frame boundaries were found: after a gap, or in a connection whose start was not captured.
    /// `skippedBytes` before them could not be decoded; `role` is the sender's, from its masking.
    case resynchronized(skippedBytes: UInt64, role: WebSocketRole)
}

/// Which side of the connection sent the bytes being decoded: it decides the masking rule.
public enum WebSocketRole: Sendable {
    case client
    case server
}

/// Decodes one direction of a WebSocket connection: frames, RFC checks, and message assembly.
public final class WebSocketStreamDecoder {
    /// The sender's role; nil until frames show it (masked frames come from clients).
    public private(set) var role: WebSocketRole?
    /// RSV bits the negotiated extensions define (RSV1 = 4).
    private let allowedReservedBits: UInt8
    private let maxMessageBytes: Int
    private let compression: MessageCompression
    private let inflater: RawInflater?
    /// Earlier bytes of the shared compression window are unknown (gap, capture started late, or an
    /// inflate error). Messages are still inflated from a fresh window: zlib rejects any reference
    /// to bytes it has not seen, so a message that inflates is right, and one that fails is reported.
    private var compressionWindowIncomplete = false
    private var reportedWindowIncomplete = false
    private var frames: FrameDecoder
    /// Bytes held while looking for frame boundaries; nil while frames are in sync.
    private var searchBuffer: [UInt8]? {
        didSet { if searchBuffer?.isEmpty ?? true { searchChunks.removeAll() } }
    }
    /// Where each received piece of `searchBuffer` ends, and when it was captured: frames found
    /// later are stamped with the time of the piece that completed them.
    private var searchChunks: [(end: Int, time: CaptureTimestamp)] = []
    /// Capture time of the bytes being decoded now: the time of each event this decoder emits.
    public private(set) var currentTime = CaptureTimestamp.zero
    private var skippedBytes: UInt64 = 0
    /// Continuations right after a loss belong to a message whose start was lost: not a violation.
    private var continuationsMayBeOrphaned = false
    /// Bytes searched in all without finding frames; past `searchGiveUpBytes` the stream is not WebSocket.
    private var searchedWithoutFrames: UInt64 = 0
    private static let maxSearchBuffer = 1 << 20
    private static let searchGiveUpBytes: UInt64 = 4 << 20
    private var messageOpcode: WebSocketOpcode?
    private var messageCompressed = false
    private var messageFrameCount = 0
    private var messageComplete = true
    private var messageBuffer: [UInt8] = []
    private var closeSeen = false

    /// A decoder for one direction. With `synchronized: false` it first searches for frame
    /// boundaries (a connection whose start was not captured); `role` may then be nil.
    public init(
        role: WebSocketRole?, allowedReservedBits: UInt8, compression: MessageCompression = .none,
        maxPayloadBytes: Int = 64 << 20, synchronized: Bool = true
    ) {
        self.role = role
        if !synchronized {
            searchBuffer = []
            compressionWindowIncomplete = true
            continuationsMayBeOrphaned = true
        }
        self.allowedReservedBits = allowedReservedBits
        self.maxMessageBytes = maxPayloadBytes
        self.compression = compression
        if case .perMessageDeflate = compression { inflater = RawInflater() } else { inflater = nil }
        frames = FrameDecoder(maxPayloadBytes: maxPayloadBytes)
    }

    /// True once this direction searched long enough without finding frames: it is not WebSocket.
    public var gaveUpSearching: Bool { searchedWithoutFrames >= Self.searchGiveUpBytes }

    /// Sets the sender's role when the other direction revealed it.
    public func assumeRole(_ role: WebSocketRole) {
        if self.role == nil { self.role = role }
    }

    /// Decodes bytes captured at `time`; events are emitted during the call.
    public func receive(_ bytes: UnsafeRawBufferPointer, at time: CaptureTimestamp = .zero, emit: (WebSocketEvent) -> Void) {
        currentTime = time
        if searchBuffer != nil {
            guard !gaveUpSearching else { return }
            searchBuffer?.appendBytes(bytes)
            searchChunks.append((searchBuffer?.count ?? 0, time))
            search(final: false, emit: emit)
            return
        }
        // `self` is borrowed for the call; captured as a reference, it would be retained around
        // every frame (and a release after the frame's output waits for all its stores).
        let borrowedSelf = Unmanaged.passUnretained(self)
        frames.decode(bytes) { frame in
            borrowedSelf._withUnsafeGuaranteedRef { $0.handle(frame, emit: emit) }
        }
    }

    /// Decodes held bytes from `offset` on, piece by piece, each with the time it was captured.
    private func replay(_ buffer: [UInt8], from offset: Int, chunks: [(end: Int, time: CaptureTimestamp)], emit: (WebSocketEvent) -> Void) {
        let resumeTime = currentTime
        var start = offset
        buffer.withUnsafeBytes { bytes in
            for chunk in chunks where chunk.end > start {
                currentTime = chunk.time
                frames.decode(UnsafeRawBufferPointer(rebasing: bytes[start..<min(chunk.end, bytes.count)])) { frame in
                    handle(frame, emit: emit)
                }
                start = chunk.end
            }
            if start < bytes.count {
                currentTime = resumeTime
                frames.decode(UnsafeRawBufferPointer(rebasing: bytes[start...])) { frame in handle(frame, emit: emit) }
            }
        }
        currentTime = resumeTime
    }

    /// The stream ended: decode what a search still holds, and report a frame cut off at the end.
    public func finish(at time: CaptureTimestamp = .zero, emit: (WebSocketEvent) -> Void) {
        currentTime = time
        // A short chain is only believed where the connection is known to carry WebSocket.
        if searchBuffer != nil, !gaveUpSearching, role != nil { search(final: true, emit: emit) }
        if let held = searchBuffer, !held.isEmpty || skippedBytes > 0 {
            if role != nil { emit(.violation(.undecodableBytes(skippedBytes + UInt64(held.count)))) }
            searchBuffer = []
            skippedBytes = 0
            return
        }
        let lacking = frames.finish { frame in handle(frame, emit: emit) }
        if lacking > 0 { emit(.violation(.payloadMissing(bytes: lacking))) }
        emitOpenMessageAsIncomplete(emit: emit)
    }

    /// A fragmented message that can never complete is handed on with what it has, marked incomplete.
    private func emitOpenMessageAsIncomplete(emit: (WebSocketEvent) -> Void) {
        guard let opcode = messageOpcode else { return }
        messageOpcode = nil
        messageBuffer.withUnsafeBytes { bytes in
            emitMessage(opcode: opcode, payload: bytes, frameCount: messageFrameCount,
                        compressed: messageCompressed, complete: false, emit: emit)
        }
        messageBuffer = []
    }

    /// Looks for frame boundaries in the held bytes; resumes decoding at the first one found.
    private func search(final: Bool, emit: (WebSocketEvent) -> Void) {
        guard var buffer = searchBuffer else { return }
        let chunks = searchChunks
        let rules = FrameSearch.Rules(
            allowedReservedBits: allowedReservedBits, masked: role.map { $0 == .client },
            maxPayloadLength: UInt64(Self.maxSearchBuffer))
        let outcome = buffer.withUnsafeBytes {
            FrameSearch.search($0, rules: rules, requirement: final ? .lastChance : .normal)
        }
        switch outcome {
        case .found(let offset, let masked):
            skippedBytes &+= UInt64(offset)
            searchBuffer = nil
            let found: WebSocketRole = masked ? .client : .server
            if role == nil { role = found }
            emit(.resynchronized(skippedBytes: skippedBytes, role: found))
            skippedBytes = 0
            searchedWithoutFrames = 0
            continuationsMayBeOrphaned = true
            frames.reset()
            replay(buffer, from: offset, chunks: chunks, emit: emit)
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

    /// Whether messages of this direction reset the compression window (no context takeover).
    private var resetsCompressionContext: Bool {
        guard case .perMessageDeflate(let parameters) = compression else { return true }
        guard let role else { return false }
        return parameters.resetsContext(for: role)
    }

    /// The next bytes may not start at a frame boundary (the head before them was cut): search.
    public func boundaryUnknown() {
        guard searchBuffer == nil, frames.isAtFrameBoundary else { return }
        searchBuffer = []
        continuationsMayBeOrphaned = true
    }

    /// Bytes the capture lacks. `reportsPartialFrames: false` keeps frames cut this way from
    /// being reported one by one (a snapshot length cuts every packet; it is reported once).
    public func missing(
        byteCount: UInt64, at time: CaptureTimestamp = .zero, reportsPartialFrames: Bool = true,
        emit: (WebSocketEvent) -> Void
    ) {
        currentTime = time
        if !resetsCompressionContext { compressionWindowIncomplete = true }
        if let held = searchBuffer {
            if let role, !held.isEmpty, let masked = held.withUnsafeBytes({
                FrameSearch.chainEndingInGap($0, gap: byteCount, rules: FrameSearch.Rules(
                    allowedReservedBits: allowedReservedBits, masked: role == .client))
            }) {
                // Frames run from the first byte to a frame the gap cuts exactly: boundaries are known.
                let chunks = searchChunks
                searchBuffer = nil
                emit(.resynchronized(skippedBytes: skippedBytes, role: masked ? .client : .server))
                skippedBytes = 0
                frames.reset()
                replay(held, from: 0, chunks: chunks, emit: emit)
                _ = frames.missing(byteCount: byteCount) { frame in handle(frame, emit: emit) }
                if reportsPartialFrames { emit(.violation(.payloadMissing(bytes: byteCount))) }
                return
            }
            // Bytes on both sides of a gap cannot chain: what was held is lost too.
            skippedBytes &+= UInt64(held.count) &+ byteCount
            searchBuffer = []
            return
        }
        let insideFrame = min(byteCount, frames.remainingPayload)
        let stillSynchronized = frames.missing(byteCount: byteCount) { frame in handle(frame, emit: emit) }
        if stillSynchronized {
            if reportsPartialFrames { emit(.violation(.payloadMissing(bytes: byteCount))) }
            return
        }
        emit(.violation(.lostSynchronization(bytes: byteCount)))
        emitOpenMessageAsIncomplete(emit: emit)
        searchBuffer = []
        skippedBytes = byteCount - insideFrame
    }

    private func handle(_ frame: DecodedFrame, emit: (WebSocketEvent) -> Void) {
        let header = frame.header
        let opcode = header.opcode
        checkHeader(header, emit: emit)
        if !frame.isComplete, frame.bytesNotKept > 0 {
            emit(.violation(.payloadNotKept(length: header.payloadLength, kept: frame.payload.count)))
        }
        if closeSeen { emit(.violation(.dataAfterClose(opcode))) }
        var closeBody: CloseFrameBody?
        if opcode == .close {
            let (body, violations) = CloseFrameBody.parse(frame.payload)
            closeBody = body
            violations.forEach { emit(.violation($0)) }
            closeSeen = true
        }
        emit(.frame(frame, close: closeBody))
        if !opcode.isControl, !opcode.isReserved { assemble(frame, emit: emit) }
    }

    /// RFC 6455 §5.1-5.5 and RFC 7692 §6 rules that one header can break.
    private func checkHeader(_ header: FrameHeader, emit: (WebSocketEvent) -> Void) {
        let opcode = header.opcode
        if role == .client, !header.masked { emit(.violation(.unmaskedClientFrame)) }
        if role == .server, header.masked { emit(.violation(.maskedServerFrame)) }
        if opcode.isReserved { emit(.violation(.reservedOpcode(opcode.rawValue))) }
        let undefinedBits = header.rsv & ~allowedReservedBits
        if undefinedBits != 0 {
            emit(.violation(.reservedBitsWithoutExtension(rsv: header.rsv)))
        } else if header.rsv1, allowedReservedBits == 0b100, opcode.isControl || opcode == .continuation {
            emit(.violation(.compressedBitMisplaced(opcode)))
        }
        if opcode.isControl {
            if header.payloadLength > 125 { emit(.violation(.controlFrameTooLong(header.payloadLength))) }
            if !header.fin { emit(.violation(.fragmentedControlFrame)) }
        }
        if header.lengthTopBitSet { emit(.violation(.lengthTopBitSet)) }
        if header.nonMinimalLength { emit(.violation(.nonMinimalLength(header.payloadLength))) }
    }

    private func assemble(_ frame: DecodedFrame, emit: (WebSocketEvent) -> Void) {
        let header = frame.header
        if header.opcode == .continuation {
            guard messageOpcode != nil else {
                if !continuationsMayBeOrphaned { emit(.violation(.continuationWithoutStart)) }
                return
            }
        } else {
            continuationsMayBeOrphaned = false
            if messageOpcode != nil { emit(.violation(.newMessageInsideFragmented)) }
            // A whole message in one frame is handed on without copying.
            if header.fin {
                messageOpcode = nil
                clearMessageBuffer()
                emitMessage(opcode: header.opcode, payload: frame.payload, frameCount: 1,
                            compressed: header.rsv1, complete: frame.isComplete, emit: emit)
                return
            }
            messageOpcode = header.opcode
            messageCompressed = header.rsv1
            messageFrameCount = 0
            messageComplete = true
            clearMessageBuffer()
        }
        messageFrameCount += 1
        messageComplete = messageComplete && frame.isComplete
        let room = max(0, maxMessageBytes - messageBuffer.count)
        if frame.payload.count > room {
            if messageComplete { emit(.violation(.messageTooLarge(limit: maxMessageBytes))) }
            messageComplete = false
        }
        messageBuffer.appendBytes(UnsafeRawBufferPointer(rebasing: frame.payload.prefix(room)))
        guard header.fin, let opcode = messageOpcode else { return }
        messageOpcode = nil
        messageBuffer.withUnsafeBytes { bytes in
            emitMessage(opcode: opcode, payload: bytes, frameCount: messageFrameCount,
                        compressed: messageCompressed, complete: messageComplete, emit: emit)
        }
        clearMessageBuffer()
    }

    /// Empties the buffer of a fragmented message; a huge one's memory is given back. An empty
    /// buffer is left alone: clearing it still checks its storage, on every message.
    private func clearMessageBuffer() {
        if messageBuffer.capacity > 1 << 20 {
            messageBuffer = []
        } else if !messageBuffer.isEmpty {
            messageBuffer.removeAll(keepingCapacity: true)
        }
    }

    private func emitMessage(
        opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, frameCount: Int, compressed: Bool,
        complete: Bool, emit: (WebSocketEvent) -> Void
    ) {
        // An extension wstap does not know may transform any message: none is shown as decoded.
        if case .unsupported = compression {
            emit(.message(WebSocketMessage(
                opcode: opcode, payload: payload, frameCount: frameCount, compressed: compressed,
                isComplete: complete, isValidUTF8: nil, isDecoded: false)))
            return
        }
        guard compressed else {
            deliver(opcode: opcode, payload: payload, frameCount: frameCount, compressed: false,
                    complete: complete, emit: emit)
            return
        }
        guard inflater != nil, case .perMessageDeflate = compression else {
            emit(.message(WebSocketMessage(
                opcode: opcode, payload: payload, frameCount: frameCount, compressed: true,
                isComplete: complete, isValidUTF8: nil, isDecoded: false)))
            return
        }
        if resetsCompressionContext { inflater?.reset() }
        guard complete else {
            emit(.violation(.compressedMessageIncomplete))
            if !resetsCompressionContext { compressionWindowIncomplete = true }
            inflater?.reset()
            emit(.message(WebSocketMessage(
                opcode: opcode, payload: payload, frameCount: frameCount, compressed: true,
                isComplete: false, isValidUTF8: nil, isDecoded: false)))
            return
        }
        // The decoder owns its inflater: used without reference counting, and its output is
        // handed on in place.
        let borrowedInflater = Unmanaged.passUnretained(inflater.unsafelyUnwrapped)
        let limit = maxMessageBytes
        switch borrowedInflater._withUnsafeGuaranteedRef({ $0.inflateMessage(payload, limit: limit) }) {
        case .finished:
            let inflated = borrowedInflater._withUnsafeGuaranteedRef { $0.output }
            deliver(opcode: opcode, payload: inflated, frameCount: frameCount, compressed: true, complete: true, emit: emit)
            borrowedInflater._withUnsafeGuaranteedRef { $0.releaseLargeOutput() }
        case .limitExceeded(let produced):
            emit(.violation(.decompressedTooLarge(produced: produced, limit: maxMessageBytes)))
            let inflated = borrowedInflater._withUnsafeGuaranteedRef { $0.output }
            deliver(opcode: opcode, payload: inflated, frameCount: frameCount, compressed: true, complete: false, emit: emit)
            borrowedInflater._withUnsafeGuaranteedRef { $0.releaseLargeOutput() }
        case .failed(let reason):
            if compressionWindowIncomplete {
                // Expected when the window is unknown: reported once per direction.
                if !reportedWindowIncomplete { emit(.violation(.compressionContextLost)) }
                reportedWindowIncomplete = true
            } else {
                emit(.violation(.decompressionFailed(reason)))
                if !resetsCompressionContext { compressionWindowIncomplete = true }
            }
            inflater?.reset()
            emit(.message(WebSocketMessage(
                opcode: opcode, payload: payload, frameCount: frameCount, compressed: true,
                isComplete: complete, isValidUTF8: nil, isDecoded: false)))
        }
    }

    /// Emits a decoded message, checking text for UTF-8 over the whole message (RFC 6455 §8.1).
    private func deliver(
        opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, frameCount: Int, compressed: Bool,
        complete: Bool, emit: (WebSocketEvent) -> Void
    ) {
        var validUTF8: Bool?
        if opcode == .text {
            let valid = UTF8Validation.isValid(payload)
            validUTF8 = valid
            if !valid, complete { emit(.violation(.invalidUTF8Text)) }
        }
        emit(.message(WebSocketMessage(
            opcode: opcode, payload: payload, frameCount: frameCount, compressed: compressed,
            isComplete: complete, isValidUTF8: validUTF8, isDecoded: true)))
    }
}
