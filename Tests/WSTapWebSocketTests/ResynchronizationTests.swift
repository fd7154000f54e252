import Testing
import WSTapCore
@testable import WSTapWebSocket

/// Everything a decoder reports, as readable lines.
final class EventLog {
    var lines: [String] = []

    func record(_ streamEvent: WebSocketStreamEvent) {
        switch streamEvent.event {
        case .frame(let frame, _):
            let text = String(decoding: frame.payload, as: UTF8.self)
            lines.append("frame \(frame.header.opcode) \(text)" + (frame.bytesMissing > 0 ? " partial-\(frame.bytesMissing)" : ""))
        case .message(let message):
            let text = message.isDecoded ? String(decoding: message.payload, as: UTF8.self) : "?"
            lines.append("message \(text)" + (message.isComplete ? "" : " incomplete"))
        case .violation(let violation):
            lines.append("violation \(violation)")
        case .resynchronized(let skipped, let role):
            lines.append("resync \(skipped) \(role)")
        }
    }
}

struct ResynchronizationTests {
    let key: UInt32 = 0x5A5A_1234

    func clientFrames(_ texts: [String]) -> [UInt8] {
        texts.flatMap { wireFrame(0x1, Array($0.utf8), mask: key) }
    }

    @Test func aGapAcrossFrameBoundariesIsSkippedAndDecodingResumes() {
        let decoder = WebSocketStreamDecoder(direction: .clientToServer, role: .client, allowedReservedBits: 0)
        let log = EventLog()
        let first = clientFrames(["alpha"])
        let lost = clientFrames(["beta", "gamma"])
        let after = clientFrames(["delta", "epsilon", "zeta", "eta"])  // four frames ending at the segment end
        // The gap takes the end of "alpha"'s payload and the two frames after it.
        Array(first.prefix(8)).withUnsafeBytes { decoder.receive($0, emit: log.record) }
        decoder.missing(byteCount: UInt64(first.count - 8 + lost.count), emit: log.record)
        after.withUnsafeBytes { decoder.receive($0, emit: log.record) }
        #expect(log.lines == [
            "frame text al partial-3", "message al incomplete", "violation lostSynchronization(bytes: \(first.count - 8 + lost.count))",
            "resync \(lost.count) client",
            "frame text delta", "message delta", "frame text epsilon", "message epsilon",
            "frame text zeta", "message zeta", "frame text eta", "message eta",
        ])
    }

    @Test func garbageBeforeFramesIsSkippedAndTheRoleComesFromMasking() {
        let decoder = WebSocketStreamDecoder(direction: .clientToServer, role: nil, allowedReservedBits: 0b100, synchronized: false)
        let log = EventLog()
        // A capture that starts inside a frame: the tail of a payload, then whole frames.
        let bytes = Array("tail of an earlier frame".utf8) + clientFrames(["one", "two", "three", "four"])
        bytes.withUnsafeBytes { decoder.receive($0, emit: log.record) }
        #expect(log.lines.first == "resync 24 client")
        #expect(log.lines.filter { $0.hasPrefix("message") } == ["message one", "message two", "message three", "message four"])
        #expect(decoder.role == .client)
    }

    @Test func framesFoundBySearchKeepTheTimeTheirBytesArrived() {
        let decoder = WebSocketStreamDecoder(direction: .clientToServer, role: nil, allowedReservedBits: 0, synchronized: false)
        var stamps: [Int64] = []
        for (second, text) in ["one", "two", "three", "four"].enumerated() {
            wireFrame(0x1, Array(text.utf8), mask: key).withUnsafeBytes { bytes in
                decoder.receive(bytes, at: CaptureTimestamp(seconds: Int64(second + 1), nanoseconds: 0)) { event in
                    if case .frame = event.event { stamps.append(event.time.seconds) }
                }
            }
        }
        // Found only once the fourth frame arrived, each frame still has its own packet's time.
        #expect(stamps == [1, 2, 3, 4])
    }

    @Test func fewerFramesThanTheChainNeedAreDecodedWhenTheStreamEnds() {
        let decoder = WebSocketStreamDecoder(direction: .clientToServer, role: nil, allowedReservedBits: 0, synchronized: false)
        let log = EventLog()
        wireFrame(0x1, Array("only".utf8)).withUnsafeBytes { decoder.receive($0, emit: log.record) }
        #expect(log.lines.isEmpty)
        decoder.finish(emit: log.record)
        #expect(log.lines.isEmpty, "one frame is not believed on its own")
        let confirmed = WebSocketStreamDecoder(direction: .clientToServer, role: nil, allowedReservedBits: 0, synchronized: false)
        wireFrame(0x1, Array("only".utf8)).withUnsafeBytes { confirmed.receive($0, emit: log.record) }
        confirmed.assumeRole(.server)  // the other direction proved the connection is WebSocket
        confirmed.finish(emit: log.record)
        #expect(log.lines == ["resync 0 server", "frame text only", "message only"])
    }

    @Test func randomBytesYieldNoFrames() {
        var generator = SystemRandomNumberGenerator()
        var falseFinds = 0
        for _ in 0..<50 {
            let decoder = WebSocketStreamDecoder(direction: .clientToServer, role: nil, allowedReservedBits: 0b100, synchronized: false)
            let bytes = (0..<65536).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var found = false
            bytes.withUnsafeBytes { decoder.receive($0) { if case .resynchronized = $0.event { found = true } } }
            if found { falseFinds += 1 }
        }
        // A convincing chain should essentially never occur by chance in 64 KiB of noise.
        #expect(falseFinds == 0)
    }

    @Test func aCutOffFrameAtTheEndIsPartial() {
        let decoder = WebSocketStreamDecoder(direction: .clientToServer, role: .server, allowedReservedBits: 0)
        let log = EventLog()
        let frame = wireFrame(0x1, Array("complete text".utf8))
        Array(frame.prefix(7)).withUnsafeBytes { decoder.receive($0, emit: log.record) }
        decoder.finish(emit: log.record)
        #expect(log.lines == ["frame text compl partial-8", "message compl incomplete", "violation payloadMissing(bytes: 8)"])
    }

    /// RFC 7692 §7.2.3.2's second message refers back to the first: without the first it fails,
    /// is reported once, and a later self-contained message decodes again.
    @Test func compressionRecoversWhenMessagesStandAlone() {
        let decoder = WebSocketStreamDecoder(direction: .clientToServer, 
            role: .server, allowedReservedBits: 0b100,
            compression: .perMessageDeflate(PerMessageDeflateParameters()))
        let log = EventLog()
        let hello: [UInt8] = [0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00]
        let helloAgain: [UInt8] = [0xF2, 0x00, 0x11, 0x00, 0x00]
        let stream = wireFrame(0x1, hello, rsv: 0b100) + wireFrame(0x1, helloAgain, rsv: 0b100)
            + wireFrame(0x1, helloAgain, rsv: 0b100) + wireFrame(0x1, hello, rsv: 0b100)
        Array(stream.prefix(11)).withUnsafeBytes { decoder.receive($0, emit: log.record) }
        decoder.missing(byteCount: 5, emit: log.record)    // the second frame's payload is lost
        Array(stream[16...]).withUnsafeBytes { decoder.receive($0, emit: log.record) }
        let messages = log.lines.filter { $0.hasPrefix("message") }
        #expect(messages == ["message Hello", "message ? incomplete", "message ?", "message Hello"])
        #expect(log.lines.filter { $0 == "violation compressionContextLost" }.count == 1)
    }
}

/// Bytes missing inside a payload are marked where they were, never spliced over.
struct PayloadGapTests {
    @Test func aGapInsideATextMessageIsListedAndLeavesItsValidityUnknown() {
        let decoder = WebSocketStreamDecoder(direction: .serverToClient, role: .server, allowedReservedBits: 0)
        let text = Array("the quick brown fox jumps over the lazy dog".utf8)
        let frame = wireFrame(0x1, text)
        var messages: [(gaps: [PayloadGap], isValidUTF8: Bool?)] = []
        var messageLengths: [Int] = []
        var frameGaps: [[PayloadGap]] = []
        var violations: [FrameViolation] = []
        let emit: (WebSocketStreamEvent) -> Void = { event in
            switch event.event {
            case .message(let message):
                // Payload and gaps are borrowed: copied during the call.
                messageLengths.append(message.payload.count)
                messages.append((Array(message.gaps), message.isValidUTF8))
            case .frame(let decoded, _):
                frameGaps.append(Array(decoded.gaps))
            case .violation(let violation): violations.append(violation)
            case .resynchronized: break
            }
        }
        // Header and "the quick brow", then 20 bytes lost, then the rest.
        Array(frame.prefix(2 + 14)).withUnsafeBytes { decoder.receive($0, emit: emit) }
        decoder.missing(byteCount: 20, emit: emit)
        Array(frame.dropFirst(2 + 14 + 20)).withUnsafeBytes { decoder.receive($0, emit: emit) }
        #expect(frameGaps == [[PayloadGap(offset: 14, length: 20)]])
        #expect(messages.map(\.gaps) == [[PayloadGap(offset: 14, length: 20)]])
        #expect(messages.first?.isValidUTF8 == nil, "what was not captured is neither valid nor invalid")
        #expect(messageLengths == [text.count - 20])
        #expect(violations == [.payloadMissing(bytes: 20)])
    }

    /// A character cut by a gap is not taken for invalid UTF-8; a captured part that is invalid is.
    @Test func capturedPartsAreCheckedOnTheirOwn() {
        let cut: [UInt8] = Array("ab".utf8) + [0xE2, 0x82] + [0xAC] + Array("cd".utf8)  // "€" cut by a gap after 0x82
        let gaps = [PayloadGap(offset: 4, length: 10)]
        #expect(cut.withUnsafeBytes { bytes in gaps.withUnsafeBufferPointer { WebSocketStreamDecoder.capturedPartsMayBeUTF8(bytes, gaps: $0) } })
        let invalid: [UInt8] = Array("ab".utf8) + [0xFF] + Array("cd".utf8)
        let gap = [PayloadGap(offset: 5, length: 3)]
        #expect(!invalid.withUnsafeBytes { bytes in gap.withUnsafeBufferPointer { WebSocketStreamDecoder.capturedPartsMayBeUTF8(bytes, gaps: $0) } })
    }
}
