import Testing
import WSTapHTTP
@testable import WSTapWebSocket

/// Builds a frame the way a peer would put it on the wire.
func wireFrame(
    _ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0, mask: UInt32? = nil,
    lengthForm: Int? = nil
) -> [UInt8] {
    var bytes: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    let form = lengthForm ?? (payload.count < 126 ? 7 : payload.count <= 0xFFFF ? 16 : 64)
    switch form {
    case 7: bytes.append(maskBit | UInt8(payload.count))
    case 16: bytes += [maskBit | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
    default:
        bytes.append(maskBit | 127)
        for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((UInt64(payload.count) >> UInt64(shift)) & 0xFF)) }
    }
    guard let mask else { return bytes + payload }
    let key = [UInt8(mask >> 24), UInt8((mask >> 16) & 0xFF), UInt8((mask >> 8) & 0xFF), UInt8(mask & 0xFF)]
    return bytes + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
}

/// A frame as a comparable summary: header fields and payload.
struct FrameSummary: Equatable {
    var fin: Bool, rsv: UInt8, opcode: UInt8, masked: Bool, length: UInt64, payload: [UInt8], missing: UInt64
}

func decodeAll(_ chunks: [[UInt8]], maxPayload: Int = 1 << 20) -> [FrameSummary] {
    var decoder = FrameDecoder(maxPayloadBytes: maxPayload)
    var frames: [FrameSummary] = []
    for chunk in chunks {
        chunk.withUnsafeBytes { bytes in
            decoder.decode(bytes) { frame in
                frames.append(FrameSummary(
                    fin: frame.header.fin, rsv: frame.header.rsv, opcode: frame.header.opcode.rawValue,
                    masked: frame.header.masked, length: frame.header.payloadLength,
                    payload: Array(frame.payload), missing: frame.bytesMissing))
            }
        }
    }
    return frames
}

struct FrameHeaderTests {
    @Test func sevenBitLength() {
        let bytes = wireFrame(0x1, Array("hi".utf8))
        guard case .header(let header) = bytes.withUnsafeBytes({ FrameHeader.parse($0) }) else {
            Issue.record("no header"); return
        }
        #expect(header.fin && header.opcode == .text && header.payloadLength == 2 && header.headerLength == 2)
        #expect(!header.masked && !header.nonMinimalLength)
    }

    @Test func sixteenBitLength() {
        let bytes = wireFrame(0x2, [UInt8](repeating: 7, count: 126), mask: 0x01020304)
        guard case .header(let header) = bytes.withUnsafeBytes({ FrameHeader.parse($0) }) else {
            Issue.record("no header"); return
        }
        #expect(header.payloadLength == 126 && header.headerLength == 8 && header.maskingKey == 0x01020304)
        #expect(!header.nonMinimalLength)
    }

    @Test func sixtyFourBitLength() {
        let bytes = wireFrame(0x2, [UInt8](repeating: 1, count: 65536))
        guard case .header(let header) = bytes.withUnsafeBytes({ FrameHeader.parse($0) }) else {
            Issue.record("no header"); return
        }
        #expect(header.payloadLength == 65536 && header.headerLength == 10 && !header.nonMinimalLength)
    }

    @Test func nonMinimalLengthsAreFlagged() {
        for form in [16, 64] {
            let bytes = wireFrame(0x1, Array("short".utf8), lengthForm: form)
            guard case .header(let header) = bytes.withUnsafeBytes({ FrameHeader.parse($0) }) else {
                Issue.record("no header"); return
            }
            #expect(header.nonMinimalLength, "form \(form)")
        }
    }

    @Test func topBitOfSixtyFourBitLengthIsFlagged() {
        let bytes: [UInt8] = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1]
        guard case .header(let header) = bytes.withUnsafeBytes({ FrameHeader.parse($0) }) else {
            Issue.record("no header"); return
        }
        #expect(header.lengthTopBitSet)
    }

    @Test func incompleteHeadersNeedMoreData() {
        let full = wireFrame(0x1, [UInt8](repeating: 0, count: 300), mask: 0xAABBCCDD)
        for cut in 0..<8 {
            #expect(Array(full.prefix(cut)).withUnsafeBytes { FrameHeader.parse($0) } == .needMoreData, "cut \(cut)")
        }
    }

    @Test func reservedBitsAndOpcodeComeFromTheFirstByte() {
        let bytes = wireFrame(0x3, [], fin: false, rsv: 0b101)
        guard case .header(let header) = bytes.withUnsafeBytes({ FrameHeader.parse($0) }) else {
            Issue.record("no header"); return
        }
        #expect(!header.fin && header.rsv == 5 && header.rsv1 && header.opcode.isReserved)
    }
}

struct FrameDecoderTests {
    static let stream: [UInt8] =
        wireFrame(0x1, Array("hello".utf8), mask: 0x11223344)
        + wireFrame(0x2, (0..<300).map { UInt8($0 & 0xFF) }, fin: false, mask: 0xDEADBEEF)
        + wireFrame(0x9, Array("ping".utf8), mask: 0x01010101)
        + wireFrame(0x0, [9, 8, 7], mask: 0x0A0B0C0D)
        + wireFrame(0x8, [0x03, 0xE8] + Array("bye".utf8))
        + wireFrame(0x1, [])

    @Test func decodesAStreamInOneChunk() {
        let frames = decodeAll([Self.stream])
        #expect(frames.map(\.opcode) == [1, 2, 9, 0, 8, 1])
        #expect(frames[0].payload == Array("hello".utf8))
        #expect(frames[1].payload == (0..<300).map { UInt8($0 & 0xFF) })
        #expect(frames[3].payload == [9, 8, 7])
        #expect(frames[4].payload == [0x03, 0xE8] + Array("bye".utf8))
        #expect(frames[5].payload.isEmpty && frames[5].length == 0)
    }

    /// Every cut point and one byte at a time give the same frames (NIO's split-feeder idea).
    @Test func everySplitGivesTheSameFrames() {
        let whole = decodeAll([Self.stream])
        for cut in 1..<Self.stream.count {
            let parts = [Array(Self.stream[..<cut]), Array(Self.stream[cut...])]
            #expect(decodeAll(parts) == whole, "cut at \(cut)")
        }
        #expect(decodeAll(Self.stream.map { [$0] }) == whole)
    }

    @Test func framesOverTheLimitAreReadPastNotKept() {
        var decoder = FrameDecoder(maxPayloadBytes: 10)
        let bytes = wireFrame(0x2, [UInt8](repeating: 5, count: 50), mask: 0x10203040) + wireFrame(0x1, Array("next".utf8))
        var seen: [(Int, UInt64)] = []
        bytes.withUnsafeBytes { decoder.decode($0) { seen.append(($0.payload.count, $0.bytesNotKept)) } }
        #expect(seen.count == 2)
        #expect(seen.first?.0 == 10 && seen.first?.1 == 40)
        #expect(seen.last?.0 == 4 && seen.last?.1 == 0)
    }

    @Test func gapInsidePayloadKeepsFrameBoundariesAndMaskPosition() {
        var decoder = FrameDecoder()
        let payload = Array("0123456789".utf8)
        let bytes = wireFrame(0x1, payload, mask: 0xA1B2C3D4) + wireFrame(0x1, Array("ok".utf8), mask: 0x01020304)
        var frames: [[UInt8]] = []
        var missing: [UInt64] = []
        // Header (6 bytes) and the first 3 payload bytes arrive, then 4 are lost, then the rest.
        Array(bytes[0..<9]).withUnsafeBytes { decoder.decode($0) { frames.append(Array($0.payload)) } }
        #expect(decoder.missing(byteCount: 4) { frames.append(Array($0.payload)); missing.append($0.bytesMissing) })
        Array(bytes[13...]).withUnsafeBytes { decoder.decode($0) { frames.append(Array($0.payload)); missing.append($0.bytesMissing) } }
        #expect(frames == [Array("012789".utf8), Array("ok".utf8)])
        #expect(missing == [4, 0])
    }

    @Test func gapAtAFrameBoundaryDesynchronizes() {
        var decoder = FrameDecoder()
        let ok = decoder.missing(byteCount: 10) { _ in }
        #expect(!ok && !decoder.isSynchronized)
        var count = 0
        wireFrame(0x1, [1]).withUnsafeBytes { decoder.decode($0) { _ in count += 1 } }
        #expect(count == 0)
    }

    @Test func unmaskHandlesEveryAlignment() {
        let key: UInt32 = 0x12345678
        let plain = (0..<37).map { UInt8($0 * 3 & 0xFF) }
        let masked = Array(wireFrame(0x2, plain, mask: key).dropFirst(6))
        for offset in 0..<4 {
            var part = Array(masked[offset...])
            part.withUnsafeMutableBytes { unmask($0, key: key, offset: offset) }
            #expect(part == Array(plain[offset...]), "offset \(offset)")
        }
    }
}
