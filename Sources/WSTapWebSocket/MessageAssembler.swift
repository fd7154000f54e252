import WSTapCore

/// A data message's frames put together (RFC 6455 §5.4), before any extension transforms it.
/// `payload` is borrowed: valid only during the callback that hands it out.
struct AssembledMessage {
    var opcode: WebSocketOpcode
    var payload: UnsafeRawBufferPointer
    var frameCount: Int
    /// RSV1 was set on the first frame (permessage-deflate, RFC 7692 §6).
    var compressed: Bool
    /// False when bytes of a frame were lost or not kept, or the message was cut at the limit.
    var isComplete: Bool
    /// The message is one frame, handed on as it is: `payload` is the frame's payload.
    var isFramePayload = false
    /// Bytes the capture lacks, at their offsets in the message as sent; borrowed like `payload`.
    var gaps = UnsafeBufferPointer<PayloadGap>(start: nil, count: 0)
}

/// Puts one direction's data frames together into messages (compare NIO's
/// `NIOWebSocketFrameAggregator`): a message in one frame is handed on in place, a fragmented one
/// is copied into a buffer of at most `maxMessageBytes`.
///
/// Linear: each fragment's bytes are appended once (the buffer grows by doubling); an empty
/// continuation costs a counter, not memory.
struct MessageAssembler {
    private let maxMessageBytes: Int
    /// Continuations right after a loss belong to a message whose start was lost: not a violation.
    var continuationsMayBeOrphaned: Bool
    private var opcode: WebSocketOpcode?
    private var compressed = false
    private var frameCount = 0
    private var complete = true
    private var buffer: [UInt8] = []
    private var gaps: [PayloadGap] = []
    /// Payload bytes of the message's frames so far, as sent (gaps' offsets in the message).
    private var sentLength: UInt64 = 0

    init(maxMessageBytes: Int, continuationsMayBeOrphaned: Bool) {
        self.maxMessageBytes = maxMessageBytes
        self.continuationsMayBeOrphaned = continuationsMayBeOrphaned
    }

    /// Adds a data frame (not control, not reserved); a message it completes goes to `message`.
    mutating func add(
        _ frame: DecodedFrame, violation: (FrameViolation) -> Void, message: (AssembledMessage) -> Void
    ) {
        let header = frame.header
        if header.opcode == .continuation {
            guard opcode != nil else {
                if !continuationsMayBeOrphaned { violation(.continuationWithoutStart) }
                return
            }
        } else {
            continuationsMayBeOrphaned = false
            if opcode != nil { violation(.newMessageInsideFragmented) }
            // A whole message in one frame is handed on without copying.
            if header.fin {
                opcode = nil
                clearBuffer()
                message(AssembledMessage(
                    opcode: header.opcode, payload: frame.payload, frameCount: 1, compressed: header.rsv1,
                    isComplete: frame.isComplete, isFramePayload: true, gaps: frame.gaps))
                return
            }
            opcode = header.opcode
            compressed = header.rsv1
            frameCount = 0
            complete = true
            clearBuffer()
        }
        for gap in frame.gaps { gaps.append(PayloadGap(offset: sentLength &+ gap.offset, length: gap.length)) }
        sentLength &+= header.payloadLength
        frameCount += 1
        complete = complete && frame.isComplete
        let room = max(0, maxMessageBytes - buffer.count)
        if frame.payload.count > room {
            if complete { violation(.messageTooLarge(limit: maxMessageBytes)) }
            complete = false
        }
        buffer.appendBytes(UnsafeRawBufferPointer(rebasing: frame.payload.prefix(room)))
        guard header.fin, let finished = opcode else { return }
        opcode = nil
        buffer.withUnsafeBytes { bytes in
            gaps.withUnsafeBufferPointer { gaps in
                message(AssembledMessage(
                    opcode: finished, payload: bytes, frameCount: frameCount, compressed: compressed, isComplete: complete,
                    gaps: gaps))
            }
        }
        clearBuffer()
    }

    /// A fragmented message that can never complete (a loss, the end of the stream) is handed on
    /// with what it has, marked incomplete.
    mutating func flushIncomplete(message: (AssembledMessage) -> Void) {
        guard let open = opcode else { return }
        opcode = nil
        buffer.withUnsafeBytes { bytes in
            gaps.withUnsafeBufferPointer { gaps in
                message(AssembledMessage(
                    opcode: open, payload: bytes, frameCount: frameCount, compressed: compressed, isComplete: false, gaps: gaps))
            }
        }
        buffer = []
        gaps = []
        sentLength = 0
    }

    /// Empties the buffer of a fragmented message; past what a frame's payload buffer keeps
    /// (`FrameDecoder.keptCapacity`), its memory is given back. An empty buffer is left alone:
    /// clearing it still checks its storage, on every message.
    private mutating func clearBuffer() {
        if !gaps.isEmpty { gaps = [] }
        sentLength = 0
        if buffer.capacity > FrameDecoder.keptCapacity {
            buffer = []
        } else if !buffer.isEmpty {
            buffer.removeAll(keepingCapacity: true)
        }
    }
}
