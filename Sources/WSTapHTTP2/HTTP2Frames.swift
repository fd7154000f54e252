import WSTapCore
import WSTapHTTP
import NIOCore
import NIOHPACK

/// HTTP/2 frame types (RFC 9113 §6), named once.
public struct HTTP2FrameType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let data = HTTP2FrameType(rawValue: 0)
    public static let headers = HTTP2FrameType(rawValue: 1)
    public static let priority = HTTP2FrameType(rawValue: 2)
    public static let rstStream = HTTP2FrameType(rawValue: 3)
    public static let settings = HTTP2FrameType(rawValue: 4)
    public static let pushPromise = HTTP2FrameType(rawValue: 5)
    public static let ping = HTTP2FrameType(rawValue: 6)
    public static let goAway = HTTP2FrameType(rawValue: 7)
    public static let windowUpdate = HTTP2FrameType(rawValue: 8)
    public static let continuation = HTTP2FrameType(rawValue: 9)

    private static let names = [
        "DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION",
    ]

    public var description: String {
        Self.names.indices.contains(Int(rawValue)) ? Self.names[Int(rawValue)] : "type-\(rawValue)"
    }
}

/// SETTINGS identifiers wstap reads (RFC 9113 §6.5.2, RFC 8441 §3).
public enum HTTP2Setting {
    public static let headerTableSize: UInt16 = 1
    public static let maxFrameSize: UInt16 = 5
    public static let enableConnectProtocol: UInt16 = 8
}

/// What the HTTP/2 frame layer of a connection reports, in stream order per direction.
public enum HTTP2Event {
    /// The client's connection preface (RFC 9113 §3.4).
    case preface
    case settings(DirectionalSettings)
    /// A complete header block (HEADERS and its CONTINUATIONs), HPACK-decoded, pseudo-headers first.
    case headers(stream: UInt32, HTTPHeaders, endStream: Bool)
    /// DATA payload (padding removed); borrowed for the call.
    case data(stream: UInt32, UnsafeRawBufferPointer, endStream: Bool)
    case resetStream(stream: UInt32, errorCode: UInt32)
    case goAway(lastStream: UInt32, errorCode: UInt32)
    case violation(HTTP2Violation)

    /// A SETTINGS frame (not an acknowledgement) and its parameters.
    public struct DirectionalSettings: Sendable {
        public var parameters: [(identifier: UInt16, value: UInt32)]
    }
}

/// A breach of HTTP/2 framing, or bytes that cannot be followed.
public enum HTTP2Violation: Sendable, Equatable {
    /// A frame longer than SETTINGS_MAX_FRAME_SIZE allows (or than 2^24-1).
    case frameTooLarge(length: Int, limit: Int)
    /// Padding longer than the frame, or a frame too short for its fixed fields.
    case malformedFrame(HTTP2FrameType, String)
    /// A header block could not be decoded: the HPACK state of this direction is now unknown.
    case headerBlockUndecodable(stream: UInt32, String)
    /// A frame other than CONTINUATION in the middle of a header block.
    case continuationExpected(HTTP2FrameType)
    /// Bytes lost: frames are searched for again, and header blocks can no longer be decoded.
    case bytesLost(UInt64)
}

/// The HTTP/2 frame layer of one connection (RFC 9113 §4-6): both directions' frames, header
/// blocks put together from HEADERS/PUSH_PROMISE and CONTINUATION and decoded with HPACK
/// (swift-nio-http2's `NIOHPACK`, one decoder per direction, sized by the other side's
/// SETTINGS_HEADER_TABLE_SIZE), padding removed. Flow control is not enforced.
///
/// Linear: bytes are appended once and frames taken off the front; a frame is at most the
/// receiver's SETTINGS_MAX_FRAME_SIZE (2^24-1 at most) and a header block at most 1 MiB.
public struct HTTP2FrameLayer: StreamParser {
    public typealias Event = (HTTP2Event, StreamDirection)

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let maxHeaderBlock = Int.mebibytes(1)

    private struct Direction {
        var pending: [UInt8] = []
        var start = 0
        /// The client's preface is still to be read (client direction only).
        var prefaceLeft = 0
        /// A header block in progress: its stream, END_STREAM, and fragments so far.
        var block: (stream: UInt32, endStream: Bool, isPush: Bool, fragments: [UInt8])?
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        /// Bytes were lost: HPACK state is unknown and frames are not in step.
        var lost = false
        /// What the other side's SETTINGS allow this side's frames to be.
        var maxFrameSize = 16_384
    }

    private var directions = DirectionPair(Direction())

    /// `expectsPreface`: the client's first bytes are the connection preface (prior knowledge,
    /// TLS with ALPN h2, or after a 101 to h2c).
    public init(expectsPreface: Bool) {
        directions[0].prefaceLeft = expectsPreface ? Self.preface.count : 0
    }

    /// Whether `bytes` begin like the client connection preface (all of it when there are 24).
    public static func startsWithPreface(_ bytes: UnsafeRawBufferPointer) -> Bool {
        !bytes.isEmpty && preface.starts(with: bytes.prefix(preface.count))
    }

    public mutating func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void
    ) {
        let index = direction
        var bytes = bytes[...]
        if directions[index].prefaceLeft > 0 {
            let take = min(directions[index].prefaceLeft, bytes.count)
            directions[index].prefaceLeft -= take
            bytes = bytes.dropFirst(take)
            if directions[index].prefaceLeft == 0 { emit((.preface, direction)) }
        }
        guard !directions[index].lost else { return }
        directions[index].pending.append(contentsOf: bytes)
        // A header block that failed to decode stops the direction too (`lost`): the HPACK table
        // it would have changed is unknown.
        while !directions[index].lost, let frame = nextFrame(index, direction: direction, emit: emit) {
            handle(frame, index: index, direction: direction, emit: emit)
        }
        compact(index)
    }

    public mutating func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void) {
        let index = direction
        guard !directions[index].lost else { return }
        // Without the lost bytes, neither the frame boundaries nor the HPACK table can be trusted.
        directions[index].lost = true
        directions[index].pending = []
        directions[index].start = 0
        directions[index].block = nil
        emit((.violation(.bytesLost(gap.count)), direction))
    }

    public mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void) {}

    private struct Frame {
        var type: HTTP2FrameType
        var flags: UInt8
        var stream: UInt32
        var payload: ArraySlice<UInt8>
    }

    private mutating func nextFrame(_ index: StreamDirection, direction: StreamDirection, emit: (Event) -> Void) -> Frame? {
        let available = directions[index].pending.count - directions[index].start
        guard available >= 9 else { return nil }
        let start = directions[index].start
        let header = directions[index].pending[start..<(start + 9)]
        let length = Int(header[start]) << 16 | Int(header[start + 1]) << 8 | Int(header[start + 2])
        let limit = max(directions[index].maxFrameSize, 16_384)
        guard length <= limit else {
            emit((.violation(.frameTooLarge(length: length, limit: limit)), direction))
            directions[index].lost = true
            directions[index].pending = []
            directions[index].start = 0
            return nil
        }
        guard available >= 9 + length else { return nil }
        let stream = (UInt32(header[start + 5]) << 24 | UInt32(header[start + 6]) << 16 | UInt32(header[start + 7]) << 8
            | UInt32(header[start + 8])) & 0x7FFF_FFFF
        let frame = Frame(
            type: HTTP2FrameType(rawValue: header[start + 3]), flags: header[start + 4], stream: stream,
            payload: directions[index].pending[(start + 9)..<(start + 9 + length)])
        directions[index].start += 9 + length
        return frame
    }

    private mutating func compact(_ index: StreamDirection) {
        let start = directions[index].start
        if start == directions[index].pending.count {
            directions[index].pending.removeAll(keepingCapacity: directions[index].pending.count <= .kibibytes(64))
            directions[index].start = 0
        } else if start > directions[index].pending.count / 2 {
            directions[index].pending.removeSubrange(0..<start)
            directions[index].start = 0
        }
    }

    /// The payload without its padding (RFC 9113 §6.1), or nil when the padding does not fit.
    private static func unpadded(_ payload: ArraySlice<UInt8>, flags: UInt8, extra: Int) -> ArraySlice<UInt8>? {
        var body = payload
        var padding = 0
        if flags & 0x8 != 0 {
            guard let first = body.first else { return nil }
            padding = Int(first)
            body = body.dropFirst()
        }
        guard body.count >= padding + extra else { return nil }
        return body.dropLast(padding).dropFirst(extra)
    }

    private mutating func handle(_ frame: Frame, index: StreamDirection, direction: StreamDirection, emit: (Event) -> Void) {
        if let block = directions[index].block, frame.type != .continuation || frame.stream != block.stream {
            emit((.violation(.continuationExpected(frame.type)), direction))
            directions[index].block = nil
        }
        switch frame.type {
        case .data:
            guard let body = Self.unpadded(frame.payload, flags: frame.flags, extra: 0) else {
                return emit((.violation(.malformedFrame(.data, "padding longer than the frame")), direction))
            }
            body.withUnsafeBytes { emit((.data(stream: frame.stream, $0, endStream: frame.flags & 0x1 != 0), direction)) }
        case .headers, .pushPromise:
            // HEADERS may carry a priority (5 bytes); PUSH_PROMISE carries the promised stream (4).
            let extra = frame.type == .pushPromise ? 4 : (frame.flags & 0x20 != 0 ? 5 : 0)
            guard let fragment = Self.unpadded(frame.payload, flags: frame.flags, extra: extra) else {
                return emit((.violation(.malformedFrame(frame.type, "too short for its padding and fields")), direction))
            }
            directions[index].block = (frame.stream, frame.flags & 0x1 != 0, frame.type == .pushPromise, Array(fragment))
            if frame.flags & 0x4 != 0 { endBlock(index: index, direction: direction, emit: emit) }
        case .continuation:
            guard var block = directions[index].block, block.stream == frame.stream else {
                return emit((.violation(.malformedFrame(.continuation, "without a header block to continue")), direction))
            }
            guard block.fragments.count + frame.payload.count <= Self.maxHeaderBlock else {
                directions[index].block = nil
                return emit((.violation(.headerBlockUndecodable(stream: frame.stream, "a header block over 1 MiB")), direction))
            }
            block.fragments += frame.payload
            directions[index].block = block
            if frame.flags & 0x4 != 0 { endBlock(index: index, direction: direction, emit: emit) }
        case .settings:
            guard frame.flags & 0x1 == 0 else { return }  // an acknowledgement
            guard frame.payload.count % 6 == 0 else {
                return emit((.violation(.malformedFrame(.settings, "a length that is not a multiple of 6")), direction))
            }
            var parameters: [(UInt16, UInt32)] = []
            var offset = frame.payload.startIndex
            while offset < frame.payload.endIndex {
                let p = frame.payload
                let identifier = UInt16(p[offset]) << 8 | UInt16(p[offset + 1])
                let value = UInt32(p[offset + 2]) << 24 | UInt32(p[offset + 3]) << 16 | UInt32(p[offset + 4]) << 8 | UInt32(p[offset + 5])
                parameters.append((identifier, value))
                offset += 6
                // This side's limits govern what the other side sends and how it encodes headers.
                let other = index.reversed
                if identifier == HTTP2Setting.maxFrameSize, value >= 16_384, value < 1 << 24 { directions[other].maxFrameSize = Int(value) }
                if identifier == HTTP2Setting.headerTableSize {
                    directions[other].decoder.maxDynamicTableLength = min(Int(value), .kibibytes(64))
                }
            }
            emit((.settings(.init(parameters: parameters)), direction))
        case .rstStream:
            guard frame.payload.count == 4 else { return emit((.violation(.malformedFrame(.rstStream, "not 4 bytes")), direction)) }
            emit((.resetStream(stream: frame.stream, errorCode: Self.word(frame.payload, frame.payload.startIndex)), direction))
        case .goAway:
            guard frame.payload.count >= 8 else { return emit((.violation(.malformedFrame(.goAway, "shorter than 8 bytes")), direction)) }
            let start = frame.payload.startIndex
            emit((.goAway(lastStream: Self.word(frame.payload, start) & 0x7FFF_FFFF, errorCode: Self.word(frame.payload, start + 4)), direction))
        default:
            break  // PRIORITY, PING, WINDOW_UPDATE and unknown types: nothing to decode here.
        }
    }

    private static func word(_ bytes: ArraySlice<UInt8>, _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }

    /// A complete header block: decoded with this direction's HPACK decoder (a failure leaves the
    /// table unknown: later blocks may decode wrongly, so the direction stops decoding them).
    private mutating func endBlock(index: StreamDirection, direction: StreamDirection, emit: (Event) -> Void) {
        guard let block = directions[index].block else { return }
        directions[index].block = nil
        var buffer = ByteBufferAllocator().buffer(bytes: block.fragments)
        do {
            let decoded = try directions[index].decoder.decodeHeaders(from: &buffer)
            guard !block.isPush else { return }
            let headers = HTTPHeaders(decoded.map { HTTPHeader(name: $0.name, value: $0.value) })
            emit((.headers(stream: block.stream, headers, endStream: block.endStream), direction))
        } catch {
            emit((.violation(.headerBlockUndecodable(stream: block.stream, "\(error)")), direction))
            directions[index].lost = true
            directions[index].pending = []
            directions[index].start = 0
        }
    }
}

/// HTTP/2 error codes (RFC 9113 §7), as RST_STREAM and GOAWAY carry them.
public enum HTTP2ErrorCode {
    static let names = [
        "NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED",
        "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
        "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
    ]

    /// `CANCEL`; an unknown code as its number.
    public static func name(_ code: UInt32) -> String {
        code < names.count ? names[Int(code)] : String(code)
    }
}
