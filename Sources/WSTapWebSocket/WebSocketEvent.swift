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
    /// The message is the one uncompressed frame emitted just before it: its payload is that
    /// frame's payload, byte for byte (an exporter may reuse what it rendered for the frame).
    public var isFramePayload: Bool = false
    /// Bytes the capture lacks, at their offsets in the message as sent (empty when none).
    /// `payload` holds the captured bytes only; `isValidUTF8` is then nil unless a captured part
    /// is itself invalid: what was not captured is neither valid nor invalid.
    /// Borrowed like `payload`.
    public var gaps = UnsafeBufferPointer<PayloadGap>(start: nil, count: 0)
    /// The payload bytes its frames carried as captured: for a compressed message, its size
    /// before inflating.
    public var wireLength = 0
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
