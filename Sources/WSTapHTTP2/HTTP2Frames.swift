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
    public static let initialWindowSize: UInt16 = 4
    public static let maxFrameSize: UInt16 = 5
    public static let enableConnectProtocol: UInt16 = 8
}

/// The `HTTP2-Settings` header of an `Upgrade: h2c` request (RFC 7540 §3.2.1): the client's
/// SETTINGS payload in base64url without padding, which apply as if sent in a SETTINGS frame.
public enum HTTP2UpgradeSettings {
    /// The parameters of a request's one `HTTP2-Settings` header; nil when it has none, several,
    /// or one that does not decode.
    public static func of(_ headers: HTTPHeaders) -> [(identifier: UInt16, value: UInt32)]? {
        let values = headers.values("HTTP2-Settings")
        return values.count == 1 ? decode(values[0]) : nil
    }

    /// The parameters, or nil when the value is not base64url or not a SETTINGS payload.
    public static func decode(_ value: String) -> [(identifier: UInt16, value: UInt32)]? {
        var text = String(value.filter { !$0.isWhitespace }.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 })
        guard text.count % 4 != 1 else { return nil }
        text += String(repeating: "=", count: (4 - text.count % 4) % 4)
        guard let bytes = Base64.decode(text), bytes.count % 6 == 0 else { return nil }
        return stride(from: 0, to: bytes.count, by: 6).map { at in
            let identifier = UInt16(bytes[at]) << 8 | UInt16(bytes[at + 1])
            let high = UInt32(bytes[at + 2]) << 24 | UInt32(bytes[at + 3]) << 16
            return (identifier, high | UInt32(bytes[at + 4]) << 8 | UInt32(bytes[at + 5]))
        }
    }

    private static let names = [
        1: "HEADER_TABLE_SIZE", 2: "ENABLE_PUSH", 3: "MAX_CONCURRENT_STREAMS", 4: "INITIAL_WINDOW_SIZE", 5: "MAX_FRAME_SIZE",
        6: "MAX_HEADER_LIST_SIZE", 8: "ENABLE_CONNECT_PROTOCOL", 9: "NO_RFC7540_PRIORITIES",
    ]

    /// `MAX_FRAME_SIZE=16384`; an unknown identifier by its number.
    public static func describe(_ parameters: [(identifier: UInt16, value: UInt32)]) -> String {
        parameters.map { "\(names[Int($0.identifier)] ?? "0x\(String($0.identifier, radix: 16))")=\($0.value)" }.joined(separator: " ")
    }
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
    /// Bytes of a stream's DATA the capture lacks (a gap inside a DATA frame whose header was
    /// seen): the stream goes on after them. `boundaryLost`: the gap ran past the frame, so the
    /// stream may have lost more (`bytes` is the most it can have lost) and its next bytes may not
    /// continue these.
    case dataMissing(stream: UInt32, bytes: UInt64, boundaryLost: Bool)
    /// Bytes were lost across frame boundaries and frames were found again: any stream of the
    /// direction may have lost DATA, so each one's next bytes may not start where its units do.
    case boundariesLost
    case resetStream(stream: UInt32, errorCode: UInt32)
    case goAway(lastStream: UInt32, errorCode: UInt32, debug: String)
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
    /// A header block could not be decoded (or was partly lost): the HPACK table starts afresh
    /// from here, and later blocks that refer to entries it lost are not decoded either.
    case headerBlockUndecodable(stream: UInt32, String)
    /// A frame other than CONTINUATION in the middle of a header block.
    case continuationExpected(HTTP2FrameType)
    /// Bytes lost across frame boundaries: frames are searched for again.
    case bytesLost(UInt64)
    /// Frames were found again after a loss: `skipped` bytes between could not be decoded.
    case framesFound(skipped: UInt64)
    /// DATA beyond the flow-control window the receiver granted (RFC 9113 §6.9); later DATA of
    /// the direction is not checked.
    case flowControlExceeded(stream: UInt32, window: Int, length: Int)
}

/// The HTTP/2 frame layer of one connection (RFC 9113 §4-6): both directions' frames, header
/// blocks put together from HEADERS/PUSH_PROMISE and CONTINUATION and decoded with HPACK
/// (swift-nio-http2's `NIOHPACK`, one decoder per direction, sized by the other side's
/// SETTINGS_HEADER_TABLE_SIZE), padding removed, flow control checked (not enforced).
///
/// Bytes lost inside a frame whose header was seen keep the frames in step (DATA tells its stream
/// how much it lost; a header block is lost and HPACK starts afresh). Bytes lost across frame
/// boundaries make the layer search for two frame headers in a row that fit what is known, as the
/// WebSocket decoder searches for frames. After a loss the HPACK decoder starts empty: entries
/// added later sit at the lowest dynamic indices in the real table too, so blocks that refer only
/// to them (and the static table) decode exactly; a block that refers to an entry added before
/// the loss fails to decode, is reported, and does not stop the direction.
///
/// Linear: bytes are appended once and frames taken off the front; a frame is at most the
/// receiver's SETTINGS_MAX_FRAME_SIZE (2^24-1 at most) and a header block at most 1 MiB; the
/// search looks at each byte once.
public struct HTTP2FrameLayer: StreamParser {
    public typealias Event = (HTTP2Event, StreamDirection)

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    static let maxHeaderBlock = Int.mebibytes(1)
    /// Streams whose flow-control windows are followed at once per direction; past it, the
    /// direction is no longer checked.
    static let maxWindowedStreams = 10_000

    /// The part of a frame that comes after bytes lost inside it.
    private struct FrameRest {
        var type: HTTP2FrameType
        var stream: UInt32
        /// DATA payload bytes still to come (they go to the stream).
        var body: Int
        /// Bytes after them to skip (padding, or the rest of a frame that is not DATA).
        var skip: Int
        var endStream: Bool
    }

    /// What the sender of a direction may still send under flow control (RFC 9113 §6.9).
    private struct FlowWindows {
        var connection = 65_535
        var initial = 65_535
        var streams: [UInt32: Int] = [:]
        /// False after a violation, a loss, or too many streams: the direction is not checked.
        var checked = true

        /// The direction is no longer checked: its stream windows are forgotten.
        mutating func stopChecking() {
            checked = false
            streams = [:]
        }
    }

    private struct Direction {
        var pending: [UInt8] = []
        var start = 0
        /// The client's preface is still to be read (client direction only).
        var prefaceLeft = 0
        /// A header block in progress: its stream, END_STREAM, and fragments so far.
        var block: (stream: UInt32, endStream: Bool, isPush: Bool, fragments: [UInt8])?
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        /// The dynamic table size the other side's SETTINGS allow (for a decoder started afresh).
        var tableSize = 4_096
        /// The rest of a frame cut by a loss.
        var rest: FrameRest?
        /// Frame boundaries are unknown after a loss: bytes skipped so far while searching.
        var searchSkipped: UInt64?
        /// What the other side's SETTINGS allow this side's frames to be (never under the 16,384
        /// every peer must accept: smaller values are not applied).
        var maxFrameSize = 16_384
        var windows = FlowWindows()
    }

    private var directions = DirectionPair(Direction())
    /// The highest stream id either side opened: DATA found by a search must be on a stream up to it.
    private var highestStream: UInt32 = 0

    /// `expectsPreface`: the client's first bytes are the connection preface (prior knowledge,
    /// TLS with ALPN h2, or after a 101 to h2c). `openedStreams`: the highest stream opened
    /// before the frames (1 after an h2c upgrade, whose request is stream 1).
    public init(expectsPreface: Bool, openedStreams: UInt32 = 0) {
        directions[0].prefaceLeft = expectsPreface ? Self.preface.count : 0
        highestStream = openedStreams
    }

    /// The client's SETTINGS given in an `Upgrade: h2c` request's `HTTP2-Settings` header.
    public mutating func clientSettings(_ parameters: [(identifier: UInt16, value: UInt32)]) {
        for parameter in parameters { apply(setting: parameter.identifier, value: parameter.value, from: .clientToServer) }
    }

    /// Whether `bytes` begin like the client connection preface (all of it when there are 24).
    public static func startsWithPreface(_ bytes: UnsafeRawBufferPointer) -> Bool {
        !bytes.isEmpty && preface.starts(with: bytes.prefix(preface.count))
    }

    public mutating func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void
    ) {
        var bytes = bytes[...]
        if directions[direction].prefaceLeft > 0 {
            let take = min(directions[direction].prefaceLeft, bytes.count)
            directions[direction].prefaceLeft -= take
            bytes = bytes.dropFirst(take)
            if directions[direction].prefaceLeft == 0 { emit((.preface, direction)) }
        }
        if let rest = directions[direction].rest {
            bytes = finishCutFrame(rest, from: bytes, direction: direction, emit: emit)
            if directions[direction].rest != nil { return }
        }
        directions[direction].pending.append(contentsOf: bytes)
        if directions[direction].searchSkipped != nil, !searchFrames(direction, emit: emit) {
            return compact(direction)
        }
        while let frame = nextFrame(direction, emit: emit) {
            handle(frame, direction: direction, emit: emit)
        }
        compact(direction)
    }

    public mutating func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void) {
        // Flow control cannot be followed past a loss: WINDOW_UPDATEs may be among the lost bytes.
        directions[0].windows.stopChecking()
        directions[1].windows.stopChecking()
        if directions[direction].prefaceLeft > 0 {
            let inPreface = Int(min(UInt64(directions[direction].prefaceLeft), gap.count))
            directions[direction].prefaceLeft -= inPreface
            if gap.count == UInt64(inPreface) { return }
            return loseBoundaries(direction, lost: gap.count - UInt64(inPreface), emit: emit)
        }
        if let rest = directions[direction].rest {
            return loseInside(rest, gap: gap.count, direction: direction, emit: emit)
        }
        let start = directions[direction].start
        let available = directions[direction].pending.count - start
        guard directions[direction].searchSkipped == nil, available >= 9, let header = Self.header(directions[direction].pending, at: start) else {
            // The gap begins at a frame boundary or inside a frame header: what follows is unknown.
            return loseBoundaries(direction, lost: gap.count, emit: emit)
        }
        let limit = directions[direction].maxFrameSize
        guard header.length <= limit else { return loseBoundaries(direction, lost: gap.count, emit: emit) }
        // The frame's header is held: the gap begins inside this frame.
        let payload = directions[direction].pending[(start + 9)...]
        directions[direction].pending.removeAll(keepingCapacity: true)
        directions[direction].start = 0
        var rest = FrameRest(type: header.type, stream: header.stream, body: 0, skip: header.length - payload.count,
                             endStream: header.flags & 0x1 != 0)
        if header.type == .data {
            let padded = header.flags & 0x8 != 0
            let padding = padded ? payload.first.map(Int.init) : 0
            let bodyStart = padded ? 1 : 0
            if let padding, header.length >= bodyStart + padding {
                let bodyEnd = header.length - padding
                let have = payload.dropFirst(bodyStart).prefix(max(0, bodyEnd - bodyStart))
                if !have.isEmpty {
                    have.withUnsafeBytes { emit((.data(stream: header.stream, $0, endStream: false), direction)) }
                }
                rest.body = max(0, bodyEnd - max(bodyStart, payload.count))
                rest.skip = header.length - max(payload.count, bodyEnd)
            } else {
                // The padding length was lost: the rest of the frame is taken as the stream's (at most that much lost).
                rest.body = 0
                emit((.dataMissing(stream: header.stream, bytes: UInt64(rest.skip), boundaryLost: true), direction))
            }
        } else if header.type == .headers || header.type == .continuation || header.type == .pushPromise {
            lostHeaderBlock(direction, stream: header.stream, emit: emit)
        }
        loseInside(rest, gap: gap.count, direction: direction, emit: emit)
    }

    public mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (Event) -> Void) {}

    // MARK: - Losses

    /// `gap` bytes lost inside a frame whose header was seen, `rest` being what it still lacked.
    private mutating func loseInside(_ rest: FrameRest, gap: UInt64, direction: StreamDirection, emit: (Event) -> Void) {
        var rest = rest
        let inBody = Int(min(UInt64(rest.body), gap))
        let inSkip = Int(min(UInt64(rest.skip), gap - UInt64(inBody)))
        let beyond = gap - UInt64(inBody) - UInt64(inSkip)
        // A gap that runs past the frame may have taken more of this stream's bytes (in frames
        // that followed): it is told the most it can have lost, so it does not trust what comes next.
        if inBody > 0 { emit((.dataMissing(stream: rest.stream, bytes: UInt64(inBody) + beyond, boundaryLost: beyond > 0), direction)) }
        rest.body -= inBody
        rest.skip -= inSkip
        if beyond > 0 {
            directions[direction].rest = nil
            if rest.type == .data, rest.endStream {
                [UInt8]().withUnsafeBytes { emit((.data(stream: rest.stream, $0, endStream: true), direction)) }
            }
            return loseBoundaries(direction, lost: beyond, emit: emit)
        }
        directions[direction].rest = rest
        if rest.body == 0, rest.skip == 0 { _ = finishCutFrame(rest, from: UnsafeRawBufferPointer(start: nil, count: 0)[...], direction: direction, emit: emit) }
    }

    /// Takes the rest of a cut frame from the front of `bytes`; returns what follows it.
    private mutating func finishCutFrame(
        _ rest: FrameRest, from bytes: Slice<UnsafeRawBufferPointer>, direction: StreamDirection, emit: (Event) -> Void
    ) -> Slice<UnsafeRawBufferPointer> {
        var rest = rest
        var bytes = bytes
        let body = bytes.prefix(rest.body)
        if !body.isEmpty {
            emit((.data(stream: rest.stream, UnsafeRawBufferPointer(rebasing: body), endStream: false), direction))
            rest.body -= body.count
            bytes = bytes.dropFirst(body.count)
        }
        let skipped = min(rest.skip, bytes.count)
        rest.skip -= skipped
        bytes = bytes.dropFirst(skipped)
        guard rest.body == 0, rest.skip == 0 else {
            directions[direction].rest = rest
            return bytes
        }
        directions[direction].rest = nil
        if rest.type == .data, rest.endStream {
            [UInt8]().withUnsafeBytes { emit((.data(stream: rest.stream, $0, endStream: true), direction)) }
        }
        return bytes
    }

    /// Bytes lost where frame boundaries cannot be known: the header block in progress is lost,
    /// HPACK starts afresh, and frames are searched for.
    private mutating func loseBoundaries(_ direction: StreamDirection, lost: UInt64, emit: (Event) -> Void) {
        let held = UInt64(directions[direction].pending.count - directions[direction].start)
        directions[direction].pending.removeAll(keepingCapacity: true)
        directions[direction].start = 0
        directions[direction].rest = nil
        if let block = directions[direction].block { lostHeaderBlock(direction, stream: block.stream, emit: emit) }
        restartHPACK(direction)
        emit((.violation(.bytesLost(lost)), direction))
        emit((.boundariesLost, direction))
        directions[direction].searchSkipped = (directions[direction].searchSkipped ?? 0) &+ held
    }

    private mutating func lostHeaderBlock(_ direction: StreamDirection, stream: UInt32, emit: (Event) -> Void) {
        directions[direction].block = nil
        restartHPACK(direction)
        emit((.violation(.headerBlockUndecodable(stream: stream, "part of it was not captured")), direction))
    }

    /// A decoder with an empty dynamic table, of the size the other side allows.
    private mutating func restartHPACK(_ direction: StreamDirection) {
        directions[direction].decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        directions[direction].decoder.maxDynamicTableLength = directions[direction].tableSize
    }

    /// Looks for a frame header that fits what is known, followed by another that fits or ending
    /// exactly where the bytes so far end. True when found: framing goes on from it. Each offset is looked at
    /// once; a candidate waits where it is for the bytes that confirm it.
    private mutating func searchFrames(_ direction: StreamDirection, emit: (Event) -> Void) -> Bool {
        let pending = directions[direction].pending
        var offset = directions[direction].start
        let limit = directions[direction].maxFrameSize
        while offset + 9 <= pending.count {
            if let first = Self.header(pending, at: offset), fits(first, limit: limit) {
                let next = offset + 9 + first.length
                // A frame that ends exactly where the bytes so far end is confirmed by that end
                // (segments end on frame boundaries far more often than by chance).
                if next + 9 > pending.count, next != pending.count {
                    // Confirmed by the next header, which has not come yet.
                    directions[direction].searchSkipped! &+= UInt64(offset - directions[direction].start)
                    directions[direction].start = offset
                    return false
                }
                let confirmed = next == pending.count || Self.header(pending, at: next).map {
                    $0.type == .continuation ? first.type == .headers || first.type == .pushPromise : fits($0, limit: limit)
                } ?? false
                if confirmed {
                    let skipped = directions[direction].searchSkipped! &+ UInt64(offset - directions[direction].start)
                    directions[direction].searchSkipped = nil
                    directions[direction].start = offset
                    emit((.violation(.framesFound(skipped: skipped)), direction))
                    return true
                }
            }
            offset += 1
        }
        let keep = max(directions[direction].start, pending.count - 8)
        directions[direction].searchSkipped! &+= UInt64(keep - directions[direction].start)
        directions[direction].start = keep
        return false
    }

    /// Whether a header found by a search fits RFC 9113's rules for its type and what is known.
    private func fits(_ header: FrameHeader, limit: Int) -> Bool {
        let (length, flags, stream) = (header.length, header.flags, header.stream)
        guard length <= limit, !header.reservedBit else { return false }
        switch header.type {
        case .data: return stream != 0 && stream <= highestStream && flags & ~0x09 == 0
        case .headers: return stream != 0 && flags & ~0x2D == 0
        case .priority: return stream != 0 && length == 5 && flags == 0
        case .rstStream: return stream != 0 && length == 4 && flags == 0
        case .settings: return stream == 0 && flags & ~0x1 == 0 && (flags == 1 ? length == 0 : length % 6 == 0)
        case .pushPromise: return stream != 0 && length >= 4 && flags & ~0x0C == 0
        case .ping: return stream == 0 && length == 8 && flags & ~0x1 == 0
        case .goAway: return stream == 0 && length >= 8 && flags == 0
        case .windowUpdate: return length == 4 && flags == 0
        default: return false  // CONTINUATION belongs to a block; unknown types say nothing.
        }
    }

    // MARK: - Frames

    private struct FrameHeader {
        var length: Int
        var type: HTTP2FrameType
        var flags: UInt8
        var stream: UInt32
        var reservedBit: Bool
    }

    private static func header(_ bytes: [UInt8], at start: Int) -> FrameHeader? {
        guard start + 9 <= bytes.count else { return nil }
        return FrameHeader(
            length: Int(bytes[start]) << 16 | Int(bytes[start + 1]) << 8 | Int(bytes[start + 2]),
            type: HTTP2FrameType(rawValue: bytes[start + 3]), flags: bytes[start + 4],
            stream: (UInt32(bytes[start + 5]) << 24 | UInt32(bytes[start + 6]) << 16 | UInt32(bytes[start + 7]) << 8
                | UInt32(bytes[start + 8])) & 0x7FFF_FFFF,
            reservedBit: bytes[start + 5] & 0x80 != 0)
    }

    private struct Frame {
        var type: HTTP2FrameType
        var flags: UInt8
        var stream: UInt32
        var payload: ArraySlice<UInt8>
    }

    private mutating func nextFrame(_ direction: StreamDirection, emit: (Event) -> Void) -> Frame? {
        let start = directions[direction].start
        guard let header = Self.header(directions[direction].pending, at: start) else { return nil }
        let limit = directions[direction].maxFrameSize
        guard header.length <= limit else {
            emit((.violation(.frameTooLarge(length: header.length, limit: limit)), direction))
            // Not a frame this connection allows: what follows is searched for.
            directions[direction].start += 1
            directions[direction].searchSkipped = 1
            restartHPACK(direction)
            emit((.boundariesLost, direction))
            return searchFrames(direction, emit: emit) ? nextFrame(direction, emit: emit) : nil
        }
        guard directions[direction].pending.count - start >= 9 + header.length else { return nil }
        let frame = Frame(
            type: header.type, flags: header.flags, stream: header.stream,
            payload: directions[direction].pending[(start + 9)..<(start + 9 + header.length)])
        directions[direction].start += 9 + header.length
        return frame
    }

    /// Drops the frames taken. Emptied, the buffer keeps at most 16 KiB of room (a default-size
    /// frame and its header): an idle connection whose last read held large frames gave back
    /// 64 KiB or more per direction (issue 30: 150 KB per open HTTP/2 connection over TLS).
    private mutating func compact(_ direction: StreamDirection) {
        let start = directions[direction].start
        if start == directions[direction].pending.count {
            directions[direction].pending.removeAll(keepingCapacity: directions[direction].pending.capacity <= Self.keptCapacity)
            directions[direction].start = 0
        } else if start > directions[direction].pending.count / 2 {
            directions[direction].pending.removeSubrange(0..<start)
            directions[direction].start = 0
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

    private mutating func handle(_ frame: Frame, direction: StreamDirection, emit: (Event) -> Void) {
        if let block = directions[direction].block, frame.type != .continuation || frame.stream != block.stream {
            emit((.violation(.continuationExpected(frame.type)), direction))
            directions[direction].block = nil
            restartHPACK(direction)
        }
        switch frame.type {
        case .data:
            consumeWindow(frame.stream, direction: direction, length: frame.payload.count, emit: emit)
            if frame.flags & 0x1 != 0 { directions[direction].windows.streams[frame.stream] = nil }
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
            if frame.type == .headers { highestStream = max(highestStream, frame.stream) }
            if frame.type == .pushPromise, let promised = Self.unpadded(frame.payload, flags: frame.flags, extra: 0)?.prefix(4),
                promised.count == 4 {
                highestStream = max(highestStream, Self.word(promised, promised.startIndex) & 0x7FFF_FFFF)
            }
            directions[direction].block = (frame.stream, frame.flags & 0x1 != 0, frame.type == .pushPromise, Array(fragment))
            if frame.flags & 0x4 != 0 { endBlock(direction: direction, emit: emit) }
        case .continuation:
            guard var block = directions[direction].block, block.stream == frame.stream else {
                return emit((.violation(.malformedFrame(.continuation, "without a header block to continue")), direction))
            }
            guard block.fragments.count + frame.payload.count <= Self.maxHeaderBlock else {
                directions[direction].block = nil
                restartHPACK(direction)
                return emit((.violation(.headerBlockUndecodable(stream: frame.stream, "a header block over 1 MiB")), direction))
            }
            block.fragments += frame.payload
            directions[direction].block = block
            if frame.flags & 0x4 != 0 { endBlock(direction: direction, emit: emit) }
        case .settings:
            guard frame.flags & 0x1 == 0 else { return }  // an acknowledgement
            guard frame.payload.count % 6 == 0 else {
                return emit((.violation(.malformedFrame(.settings, "a length that is not a multiple of 6")), direction))
            }
            var parameters: [(UInt16, UInt32)] = []
            var offset = frame.payload.startIndex
            while offset < frame.payload.endIndex {
                let identifier = UInt16(frame.payload[offset]) << 8 | UInt16(frame.payload[offset + 1])
                let value = Self.word(frame.payload, offset + 2)
                parameters.append((identifier, value))
                offset += 6
                apply(setting: identifier, value: value, from: direction)
            }
            emit((.settings(.init(parameters: parameters)), direction))
        case .rstStream:
            guard frame.payload.count == 4 else { return emit((.violation(.malformedFrame(.rstStream, "not 4 bytes")), direction)) }
            for side in StreamDirection.allCases { directions[side].windows.streams[frame.stream] = nil }
            emit((.resetStream(stream: frame.stream, errorCode: Self.word(frame.payload, frame.payload.startIndex)), direction))
        case .goAway:
            guard frame.payload.count >= 8 else { return emit((.violation(.malformedFrame(.goAway, "shorter than 8 bytes")), direction)) }
            let start = frame.payload.startIndex
            let debug = String(decoding: frame.payload.dropFirst(8).prefix(200), as: UTF8.self)
            emit((.goAway(lastStream: Self.word(frame.payload, start) & 0x7FFF_FFFF, errorCode: Self.word(frame.payload, start + 4),
                          debug: debug), direction))
        case .windowUpdate:
            guard frame.payload.count == 4 else {
                return emit((.violation(.malformedFrame(.windowUpdate, "not 4 bytes")), direction))
            }
            // This side grants the other side's sender more room.
            let increment = Int(Self.word(frame.payload, frame.payload.startIndex) & 0x7FFF_FFFF)
            let sender = direction.reversed
            if frame.stream == 0 {
                directions[sender].windows.connection += increment
            } else if directions[sender].windows.checked {
                grow(sender, stream: frame.stream, by: increment)
            }
        default:
            break  // PRIORITY, PING and unknown types: nothing to decode here.
        }
    }

    /// A SETTINGS parameter from `direction`: its limits govern what the other side sends and how
    /// it encodes headers.
    private mutating func apply(setting identifier: UInt16, value: UInt32, from direction: StreamDirection) {
        let other = direction.reversed
        switch identifier {
        case HTTP2Setting.maxFrameSize where value >= 16_384 && value < 1 << 24:
            directions[other].maxFrameSize = Int(value)
        case HTTP2Setting.headerTableSize:
            directions[other].tableSize = min(Int(value), .kibibytes(64))
            directions[other].decoder.maxDynamicTableLength = directions[other].tableSize
        case HTTP2Setting.initialWindowSize where value <= 0x7FFF_FFFF:
            // A change applies to every open stream's window (RFC 9113 §6.9.2).
            let delta = Int(value) - directions[other].windows.initial
            directions[other].windows.initial = Int(value)
            for key in directions[other].windows.streams.keys { directions[other].windows.streams[key]! += delta }
        default:
            break
        }
    }

    private mutating func grow(_ sender: StreamDirection, stream: UInt32, by increment: Int) {
        if directions[sender].windows.streams[stream] == nil {
            guard directions[sender].windows.streams.count < Self.maxWindowedStreams else {
                return directions[sender].windows.stopChecking()
            }
            directions[sender].windows.streams[stream] = directions[sender].windows.initial
        }
        directions[sender].windows.streams[stream]! += increment
    }

    /// DATA of `length` (padding included) from `direction`'s sender: within both windows, or a violation once.
    private mutating func consumeWindow(_ stream: UInt32, direction: StreamDirection, length: Int, emit: (Event) -> Void) {
        guard directions[direction].windows.checked, length > 0 else { return }
        grow(direction, stream: stream, by: 0)
        guard directions[direction].windows.checked else { return }
        // Read in place: a copy of the windows would make the next write copy their table.
        let window = min(directions[direction].windows.connection, directions[direction].windows.streams[stream]!)
        directions[direction].windows.connection -= length
        directions[direction].windows.streams[stream]! -= length
        if length > window {
            directions[direction].windows.stopChecking()
            emit((.violation(.flowControlExceeded(stream: stream, window: window, length: length)), direction))
        }
    }

    private static let keptCapacity = Int.kibibytes(16) + 9

    private static func word(_ bytes: ArraySlice<UInt8>, _ at: Int) -> UInt32 {
        UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3])
    }

    /// A complete header block, decoded with this direction's HPACK decoder. A failure leaves the
    /// table unknown: the decoder starts afresh (later blocks that refer only to entries added
    /// after this one still decode exactly).
    private mutating func endBlock(direction: StreamDirection, emit: (Event) -> Void) {
        guard let block = directions[direction].block else { return }
        directions[direction].block = nil
        var buffer = ByteBufferAllocator().buffer(bytes: block.fragments)
        do {
            let decoded = try directions[direction].decoder.decodeHeaders(from: &buffer)
            guard !block.isPush else { return }
            let headers = HTTPHeaders(decoded.map { HTTPHeader(name: $0.name, value: $0.value) })
            emit((.headers(stream: block.stream, headers, endStream: block.endStream), direction))
        } catch {
            restartHPACK(direction)
            emit((.violation(.headerBlockUndecodable(stream: block.stream, "\(error)")), direction))
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
