/// A breach of RFC 6455 framing rules found in one direction.
public enum FrameViolation: Hashable, Sendable {
    case unmaskedClientFrame
    case maskedServerFrame
    case reservedOpcode(UInt8)
    /// RSV bits set that no negotiated extension defines (RFC 6455 §5.2).
    case reservedBitsWithoutExtension(rsv: UInt8)
    /// RSV1 (compressed) on a continuation or control frame (RFC 7692 §6).
    case compressedBitMisplaced(WebSocketOpcode)
    case controlFrameTooLong(UInt64)
    case fragmentedControlFrame
    case nonMinimalLength(UInt64)
    case lengthTopBitSet
    case continuationWithoutStart
    /// A new data frame arrived while a fragmented message was still open; that message is lost.
    case newMessageInsideFragmented
    case invalidUTF8Text
    case invalidUTF8CloseReason
    case invalidCloseCode(UInt16)
    /// A close payload of exactly one byte (RFC 6455 §5.5.1).
    case closePayloadTooShort
    case dataAfterClose(WebSocketOpcode)
    /// A frame longer than the payload limit: its payload was read past, not kept.
    case payloadNotKept(length: UInt64, kept: Int)
    /// A message longer than the message limit.
    case messageTooLarge(limit: Int)
    /// Bytes lost inside a frame's payload; the frame's boundaries are still known.
    case payloadMissing(bytes: UInt64)
    /// Bytes lost where a frame header was expected; the direction is no longer decoded.
    case lostSynchronization(bytes: UInt64)
    /// zlib could not inflate a compressed message.
    case decompressionFailed(String)
    /// A message decompressed past the message limit (a decompression bomb is cut here).
    case decompressedTooLarge(produced: UInt64, limit: Int)
    /// Context takeover with an earlier part of the stream missing: the window is unknown.
    case compressionContextLost
    /// A compressed message with bytes missing cannot be inflated.
    case compressedMessageIncomplete
    /// Bytes at the end of the stream in which no frame could be found.
    case undecodableBytes(UInt64)
}
