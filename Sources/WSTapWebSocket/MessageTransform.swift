import WSTapCore

/// What the negotiated extension does to one direction's messages: nothing, permessage-deflate
/// (RFC 7692 §7.2.2, with the compression window kept across messages unless the sender resets
/// it), or an extension wstap cannot undo.
struct MessageTransform {
    /// The message's bytes as the application sent them, or the reason they are not available.
    enum Result {
        /// `payload` is borrowed for the callback; `isComplete` is false when the output was cut
        /// at the limit (or the message was already incomplete).
        case decoded(payload: UnsafeRawBufferPointer, isComplete: Bool)
        /// The message cannot be decoded: its bytes on the wire are all there is.
        case undecoded
    }

    private let compression: MessageCompression
    /// Owns the inflater; `inflaterReference` is the same object, called without reference counting.
    private let inflater: RawInflater?
    private let inflaterReference: Unretained<RawInflater>?
    private let maxMessageBytes: Int
    /// Earlier bytes of the shared compression window are unknown (gap, capture started late, or
    /// an inflate error). Messages are still inflated from a fresh window: zlib rejects any
    /// reference to bytes it has not seen, so a message that inflates is right.
    private var windowIncomplete: Bool
    private var reportedWindowIncomplete = false

    init(compression: MessageCompression, maxMessageBytes: Int, windowKnown: Bool, inflaters: InflaterBudget) {
        self.compression = compression
        self.maxMessageBytes = maxMessageBytes
        if case .perMessageDeflate = compression { inflater = RawInflater(budget: inflaters) } else { inflater = nil }
        inflaterReference = inflater.map(Unretained.init)
        windowIncomplete = !windowKnown
    }

    /// Whether messages from `role` reset the compression window (no context takeover).
    func resetsContext(for role: WebSocketRole?) -> Bool {
        guard case .perMessageDeflate(let parameters) = compression else { return true }
        guard let role else { return false }
        return parameters.resetsContext(for: role)
    }

    /// Bytes of the stream were lost: a window kept across messages is no longer known.
    mutating func streamLostBytes(role: WebSocketRole?) {
        if !resetsContext(for: role) { windowIncomplete = true }
    }

    /// Undoes the extension on one assembled message from `role`.
    mutating func apply(
        to message: AssembledMessage, role: WebSocketRole?, violation: (FrameViolation) -> Void,
        result: (Result) -> Void
    ) {
        // An extension wstap does not know may transform any message: none is shown as decoded.
        if case .unsupported = compression { return result(.undecoded) }
        guard message.compressed else { return result(.decoded(payload: message.payload, isComplete: message.isComplete)) }
        guard let inflaterReference else { return result(.undecoded) }
        inflaterReference.with { inflate(message, with: $0, role: role, violation: violation, result: result) }
    }

    private mutating func inflate(
        _ message: AssembledMessage, with inflater: RawInflater, role: WebSocketRole?, violation: (FrameViolation) -> Void,
        result: (Result) -> Void
    ) {
        let resets = resetsContext(for: role)
        // The budget gave this context to another connection: the window kept across messages is gone.
        if inflater.takeContextDropped(), !resets { windowIncomplete = true }
        if resets { inflater.reset() }
        guard message.isComplete else {
            violation(.compressedMessageIncomplete)
            if !resets { windowIncomplete = true }
            inflater.reset()
            return result(.undecoded)
        }
        switch inflater.inflateMessage(message.payload, limit: maxMessageBytes) {
        case .finished:
            result(.decoded(payload: inflater.output, isComplete: true))
            inflater.releaseLargeOutput()
        case .limitExceeded(let produced):
            violation(.decompressedTooLarge(produced: produced, limit: maxMessageBytes))
            result(.decoded(payload: inflater.output, isComplete: false))
            inflater.releaseLargeOutput()
        case .failed(let reason):
            if windowIncomplete {
                // Expected when the window is unknown: reported once per direction.
                if !reportedWindowIncomplete { violation(.compressionContextLost) }
                reportedWindowIncomplete = true
            } else {
                violation(.decompressionFailed(reason))
                if !resets { windowIncomplete = true }
            }
            inflater.reset()
            result(.undecoded)
        }
    }
}
