import Testing
import TestSupport
import WSTapCore
@testable import WSTapWebSocket

/// The WebSocket stage as a whole: both directions, every way of cutting the bytes.
struct ConnectionDecoderTests {
    static let key: UInt32 = 0x3713_2A4C
    /// RFC 7692 §7.2.3.1-2: "Hello" compressed, then again with the shared window.
    static let compressedHello: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
    static let compressedHelloAgain: [UInt8] = [0xF2, 0x00, 0x11, 0x00, 0x00]

    static func record(_ event: WebSocketStreamEvent) -> SplitFeeder.Record? {
        let prefix = "\(event.direction.label) t\(event.time.seconds)"
        switch event.event {
        case .frame(let frame, let close):
            return .line("\(prefix) frame \(frame.header.opcode) fin=\(frame.header.fin) \(Array(frame.payload)) close=\(close?.code.map { "\($0)" } ?? "-")")
        case .message(let message):
            return .line("\(prefix) message \(message.opcode) \(String(decoding: message.payload, as: UTF8.self)) frames=\(message.frameCount) complete=\(message.isComplete) decoded=\(message.isDecoded) utf8=\(message.isValidUTF8.map { "\($0)" } ?? "-")")
        case .violation(let violation):
            return .line("\(prefix) violation \(violation)")
        case .resynchronized(let skipped, let role):
            return .line("\(prefix) resynchronized \(skipped) \(role)")
        }
    }

    static func decoder(compression: MessageCompression = .none, allowedBits: UInt8 = 0) -> WebSocketConnectionDecoder {
        WebSocketConnectionDecoder(
            rolesKnown: true, allowedReservedBits: allowedBits, compression: compression, maxPayloadBytes: 1 << 20,
            synchronized: true)
    }

    /// A conversation with fragments, interleaved control frames, masking, a close each way, and
    /// a frame cut off by the end of the stream.
    static let steps: [(StreamDirection, [UInt8])] = [
        (.clientToServer, wireFrame(0x1, Array("hello".utf8), mask: key) + wireFrame(0x2, [0, 1, 2, 255], mask: key)),
        (.serverToClient, wireFrame(0x1, Array("frag".utf8), fin: false) + wireFrame(0x9, Array("p".utf8))
            + wireFrame(0x0, Array("mented".utf8))),
        (.clientToServer, wireFrame(0xA, Array("p".utf8), mask: key) + wireFrame(0x8, [0x03, 0xE8] + Array("bye".utf8), mask: key)),
        (.serverToClient, wireFrame(0x8, [0x03, 0xE8]) + Array(wireFrame(0x2, [UInt8](repeating: 7, count: 300)).prefix(40))),
    ]

    @Test func everyCutGivesTheSameEvents() {
        let (whole, differing) = SplitFeeder.disagreements(Self.steps, make: { Self.decoder() }, record: Self.record)
        #expect(differing.isEmpty, "\(differing.first.map { "\($0.cut): \($0.records)" } ?? "")")
        let lines = whole.compactMap { if case .line(let line) = $0 { line } else { nil } }
        #expect(lines.filter { $0.contains(" message ") }.count == 4)
        #expect(lines.contains("s2c t2 message text fragmented frames=2 complete=true decoded=true utf8=true"))
        #expect(lines.contains { $0.hasPrefix("s2c t5 message binary") && $0.hasSuffix(" frames=1 complete=false decoded=true utf8=-") })
        // A frame after the close, and the frame the end of the stream cut (reported at the end).
        #expect(lines.filter { $0.contains(" violation ") }
            == ["s2c t5 violation dataAfterClose(binary)", "s2c t5 violation payloadMissing(bytes: 264)"])
    }

    @Test func compressedMessagesInEveryCut() {
        let steps: [(StreamDirection, [UInt8])] = [
            (.serverToClient, wireFrame(0x1, Self.compressedHello, rsv: 0b100)
                + wireFrame(0x1, Array(Self.compressedHelloAgain[..<2]), fin: false, rsv: 0b100)
                + wireFrame(0x0, Array(Self.compressedHelloAgain[2...]))),
        ]
        let make = { Self.decoder(compression: .perMessageDeflate(PerMessageDeflateParameters()), allowedBits: 0b100) }
        let (whole, differing) = SplitFeeder.disagreements(steps, make: make, record: Self.record)
        #expect(differing.isEmpty)
        let messages = whole.filter { if case .line(let line) = $0 { line.contains(" message ") } else { false } }
        #expect(messages == [
            .line("s2c t1 message text Hello frames=1 complete=true decoded=true utf8=true"),
            .line("s2c t1 message text Hello frames=2 complete=true decoded=true utf8=true"),
        ])
    }

    /// Without a handshake, the masking of one direction's frames tells both directions' roles;
    /// after a swap, each decoder reports under the other direction.
    @Test func rolesFoundInOneDirectionServeTheOther() {
        let decoder = WebSocketConnectionDecoder(
            rolesKnown: false, allowedReservedBits: 0, compression: .none, maxPayloadBytes: 1 << 20, synchronized: false)
        var seen: [String] = []
        let clientBytes = (0..<6).flatMap { wireFrame(0x1, Array("m\($0)".utf8), mask: Self.key) }
        clientBytes.withUnsafeBytes {
            decoder.receive($0, direction: .serverToClient, at: .zero) { event in
                if case .resynchronized(_, let role) = event.event {
                    seen.append("\(event.direction.label) \(role)")
                    decoder.swapDirections()
                    decoder.roleFound(role, direction: event.direction.reversed)
                } else if case .message = event.event {
                    seen.append("\(event.direction.label) message")
                }
            }
        }
        #expect(seen.first == "s2c client")
        #expect(seen.dropFirst().allSatisfy { $0 == "c2s message" } && seen.count == 7)
        // The server's direction now knows its role: a masked frame there is no server frame.
        var violations: [FrameViolation] = []
        wireFrame(0x1, Array("x".utf8), mask: Self.key).withUnsafeBytes {
            decoder.receive($0, direction: .serverToClient, at: .zero) { _ in }
        }
        decoder.finish(direction: .serverToClient, at: .zero) {
            if case .violation(let violation) = $0.event { violations.append(violation) }
        }
        #expect(violations == [.undecodableBytes(7)])
    }

    /// A connection caught mid-way, one frame per segment each way: two frames in each direction,
    /// masked one way and not the other, decide together (four in one direction would be needed
    /// alone); the same frames with the same masking both ways do not.
    @Test(arguments: [true, false])
    func bothDirectionsDecideTogether(oppositeMasking: Bool) {
        let decoder = WebSocketConnectionDecoder(
            rolesKnown: false, allowedReservedBits: 0, compression: .none, maxPayloadBytes: 1 << 20, synchronized: false)
        var found: [String] = []
        let segments: [(StreamDirection, [UInt8])] = (0..<2).flatMap { index in
            [(StreamDirection.clientToServer, wireFrame(0x1, Array("question \(index)".utf8), mask: Self.key)),
             (.serverToClient, wireFrame(0x1, Array("answer \(index)".utf8), mask: oppositeMasking ? nil : Self.key))]
        }
        for (step, (direction, bytes)) in segments.enumerated() {
            bytes.withUnsafeBytes {
                decoder.receive($0, direction: direction, at: CaptureTimestamp(seconds: Int64(step), nanoseconds: 0)) { event in
                    switch event.event {
                    case .resynchronized(_, let role):
                        found.append("step \(step): \(event.direction.label) \(role)")
                        decoder.roleFound(role, direction: event.direction)
                        decoder.confirmWebSocket(direction: event.direction.reversed, at: event.time) { other in
                            if case .frame = other.event { found.append("\(other.direction.label) frame t\(other.time.seconds)") }
                        }
                    case .frame: found.append("\(event.direction.label) frame t\(event.time.seconds)")
                    default: break
                    }
                }
            }
        }
        if oppositeMasking {
            // Decided on the fourth segment (the other direction confirmed from within the
            // decision, as the stage does); every frame keeps its own segment's time.
            #expect(found == ["step 3: s2c server", "c2s frame t0", "c2s frame t2", "s2c frame t1", "s2c frame t3"])
        } else {
            #expect(found.isEmpty)
        }
    }
}
