import Foundation
import Testing
import WSTapHTTP
@testable import WSTapWebSocket

/// Decodes one direction and returns the violations and message payloads it reports.
func violations(
    _ bytes: [UInt8], role: WebSocketRole = .client, allowedBits: UInt8 = 0,
    compression: MessageCompression = .none
) -> (violations: [FrameViolation], messages: [[UInt8]], decoded: [Bool]) {
    let decoder = WebSocketStreamDecoder(direction: .clientToServer, role: role, allowedReservedBits: allowedBits, compression: compression)
    var found: [FrameViolation] = []
    var messages: [[UInt8]] = []
    var decoded: [Bool] = []
    bytes.withUnsafeBytes { raw in
        decoder.receive(raw) { streamEvent in
            switch streamEvent.event {
            case .violation(let violation): found.append(violation)
            case .message(let message):
                messages.append(Array(message.payload))
                decoded.append(message.isDecoded)
            case .frame, .resynchronized: break
            }
        }
    }
    return (found, messages, decoded)
}

struct StreamDecoderTests {
    let key: UInt32 = 0x0F1E2D3C

    @Test func cleanClientTrafficHasNoViolations() {
        let result = violations(wireFrame(0x1, Array("hi".utf8), mask: key) + wireFrame(0x8, [0x03, 0xE8], mask: key))
        #expect(result.violations.isEmpty)
        #expect(result.messages == [Array("hi".utf8)])
    }

    @Test func maskingRulesDependOnTheSender() {
        #expect(violations(wireFrame(0x1, [0x41])).violations == [.unmaskedClientFrame])
        #expect(violations(wireFrame(0x1, [0x41], mask: key), role: .server).violations == [.maskedServerFrame])
    }

    @Test func reservedOpcodesAndBits() {
        #expect(violations(wireFrame(0x3, [], mask: key)).violations == [.reservedOpcode(3)])
        #expect(violations(wireFrame(0x1, [0x41], rsv: 0b010, mask: key)).violations == [.reservedBitsWithoutExtension(rsv: 2)])
        #expect(violations(wireFrame(0x1, [0x41], rsv: 0b100, mask: key), allowedBits: 0b100).violations.isEmpty)
        #expect(violations(wireFrame(0x9, [], rsv: 0b100, mask: key), allowedBits: 0b100).violations
            == [.compressedBitMisplaced(.ping)])
    }

    @Test func controlFrameRules() {
        #expect(violations(wireFrame(0x9, [UInt8](repeating: 0, count: 126), mask: key)).violations
            == [.controlFrameTooLong(126)])
        #expect(violations(wireFrame(0xA, [], fin: false, mask: key)).violations == [.fragmentedControlFrame])
    }

    @Test func fragmentationRules() {
        #expect(violations(wireFrame(0x0, [1], mask: key)).violations == [.continuationWithoutStart])
        let interrupted = wireFrame(0x1, [0x41], fin: false, mask: key) + wireFrame(0x2, [1], mask: key)
        #expect(violations(interrupted).violations == [.newMessageInsideFragmented])
    }

    @Test func textIsValidatedOverTheWholeMessage() {
        let check = Array("✓".utf8)
        let split = wireFrame(0x1, [check[0]], fin: false, mask: key) + wireFrame(0x9, [], mask: key)
            + wireFrame(0x0, Array(check[1...]), mask: key)
        let result = violations(split)
        #expect(result.violations.isEmpty)
        #expect(result.messages == [check])
        #expect(violations(wireFrame(0x1, [0xC0, 0x80], mask: key)).violations == [.invalidUTF8Text])
        #expect(violations(wireFrame(0x1, [0xED, 0xA0, 0x80], mask: key)).violations == [.invalidUTF8Text])
    }

    @Test func closeFrameRules() {
        #expect(violations(wireFrame(0x8, [0x03], mask: key)).violations == [.closePayloadTooShort])
        #expect(violations(wireFrame(0x8, [0x03, 0xED], mask: key)).violations == [.invalidCloseCode(1005)])
        #expect(violations(wireFrame(0x8, [0x03, 0xE8, 0xFF], mask: key)).violations == [.invalidUTF8CloseReason])
        #expect(violations(wireFrame(0x8, [0x0F, 0xA1], mask: key)).violations.isEmpty)  // 4001 is private use
        let afterClose = wireFrame(0x8, [0x03, 0xE8], mask: key) + wireFrame(0x1, [0x41], mask: key)
        #expect(violations(afterClose).violations == [.dataAfterClose(.text)])
    }

    @Test func closeBodyParsing() {
        let (body, problems) = [UInt8]([0x03, 0xE9] + Array("going".utf8)).withUnsafeBytes { CloseFrameBody.parse($0) }
        #expect(body.code == .goingAway && body.reason == Array("going".utf8) && problems.isEmpty)
        let (empty, none) = [UInt8]().withUnsafeBytes { CloseFrameBody.parse($0) }
        #expect(empty.code == nil && none.isEmpty)
    }

    /// Two connections share a budget of one zlib context: when the second takes it, the first's
    /// next message that refers to its earlier window is reported as the context lost, not as
    /// wrong text; a message that stands alone still inflates.
    @Test func aContextGivenToAnotherConnectionIsReportedLost() {
        let budget = InflaterBudget(maxContexts: 1)
        let first: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]  // "Hello"
        let second: [UInt8] = [0xF2, 0x00, 0x11, 0x00, 0x00]  // "Hello" again, from the window
        func decoder() -> WebSocketStreamDecoder {
            WebSocketStreamDecoder(
                direction: .serverToClient, role: .server, allowedReservedBits: 0b100,
                compression: .perMessageDeflate(PerMessageDeflateParameters()), inflaters: budget)
        }
        let (a, b) = (decoder(), decoder())
        var seen: [String] = []
        func feed(_ decoder: WebSocketStreamDecoder, _ name: String, _ payload: [UInt8]) {
            wireFrame(0x1, payload, rsv: 0b100).withUnsafeBytes { raw in
                decoder.receive(raw) { event in
                    switch event.event {
                    case .message(let message): seen.append("\(name) " + (message.isDecoded ? String(decoding: message.payload, as: UTF8.self) : "undecoded"))
                    case .violation(let violation): seen.append("\(name) \(violation)")
                    default: break
                    }
                }
            }
        }
        feed(a, "a", first)
        feed(b, "b", first)  // takes the only context: a's window is gone
        feed(a, "a", second)
        feed(a, "a", first)
        #expect(seen == ["a Hello", "b Hello", "a compressionContextLost", "a undecoded", "a Hello"])
        #expect(budget.contextsDropped == 2)
    }

    /// RFC 7692 §7.2.3.1-2: "Hello" compressed, then again with the shared window.
    @Test func permessageDeflateWithContextTakeover() {
        let first: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
        let second: [UInt8] = [0xF2, 0x00, 0x11, 0x00, 0x00]
        let stream = wireFrame(0x1, first, rsv: 0b100) + wireFrame(0x1, second, rsv: 0b100)
        let result = violations(stream, role: .server, allowedBits: 0b100,
                                compression: .perMessageDeflate(PerMessageDeflateParameters()))
        #expect(result.violations.isEmpty)
        #expect(result.messages == [Array("Hello".utf8), Array("Hello".utf8)])
        #expect(result.decoded == [true, true])
    }

    @Test func compressedFragmentsAreInflatedAsOneMessage() {
        let compressed: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
        let stream = wireFrame(0x1, Array(compressed[..<3]), fin: false, rsv: 0b100)
            + wireFrame(0x0, Array(compressed[3...]))
        let result = violations(stream, role: .server, allowedBits: 0b100,
                                compression: .perMessageDeflate(PerMessageDeflateParameters()))
        #expect(result.messages == [Array("Hello".utf8)])
    }

    @Test func corruptDeflateIsReportedNotShown() {
        let stream = wireFrame(0x1, [0xFF, 0xFF, 0xFF, 0xFF], rsv: 0b100)
        let result = violations(stream, role: .server, allowedBits: 0b100,
                                compression: .perMessageDeflate(PerMessageDeflateParameters()))
        #expect(result.violations.contains { if case .decompressionFailed = $0 { true } else { false } })
        #expect(result.decoded == [false])
    }

    @Test func decompressionBombIsCutAtTheLimit() {
        // 1 MiB of zeros deflates to about a kilobyte; the limit is 64 KiB.
        let decoder = WebSocketStreamDecoder(direction: .clientToServer, 
            role: .server, allowedReservedBits: 0b100,
            compression: .perMessageDeflate(PerMessageDeflateParameters()), maxPayloadBytes: 64 << 10)
        let compressed = bombStream(repeats: 4096)
        var sizes: [Int] = []
        var found: [FrameViolation] = []
        wireFrame(0x2, compressed, rsv: 0b100).withUnsafeBytes { raw in
            decoder.receive(raw) { streamEvent in
                if case .message(let message) = streamEvent.event { sizes.append(message.payload.count) }
                if case .violation(let violation) = streamEvent.event { found.append(violation) }
            }
        }
        #expect(sizes == [64 << 10])
        #expect(found.contains { if case .decompressedTooLarge(let produced, _) = $0 { produced > 1_000_000 } else { false } })
    }

    @Test func acceptHashMatchesRFC6455Example() {
        #expect(HandshakeValidator.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }
}

/// A raw DEFLATE stream (fixed Huffman) of one literal 0 followed by `repeats` copies of
/// (length 258, distance 1): about 258 × repeats bytes of zeros from a few hundred bytes.
func bombStream(repeats: Int) -> [UInt8] {
    var bits: [Bool] = []
    func put(_ value: Int, _ count: Int, reversed: Bool = false) {
        // Huffman codes go most significant bit first; other fields least significant first.
        for index in 0..<count {
            let bit = reversed ? (value >> (count - 1 - index)) & 1 : (value >> index) & 1
            bits.append(bit == 1)
        }
    }
    put(0, 1)                        // BFINAL = 0
    put(1, 2)                        // BTYPE = 01, fixed Huffman
    put(0x30, 8, reversed: true)     // literal 0
    for _ in 0..<repeats {
        put(0b1100_0101, 8, reversed: true)  // length code 285 = 258
        put(0, 5, reversed: true)            // distance code 0 = 1
    }
    put(0, 7, reversed: true)        // end of block (256)
    var bytes: [UInt8] = []
    var current: UInt8 = 0
    for (index, bit) in bits.enumerated() {
        if bit { current |= 1 << UInt8(index % 8) }
        if index % 8 == 7 { bytes.append(current); current = 0 }
    }
    if bits.count % 8 != 0 { bytes.append(current) }
    return bytes
}
