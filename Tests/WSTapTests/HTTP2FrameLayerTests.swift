import Testing
import WSTapCore
import WSTapHTTP2

/// The HTTP/2 frame layer alone: HPACK across header blocks (RFC 7541 Appendix C), bytes lost
/// inside a frame and across frames, flow-control windows.
struct HTTP2FrameLayerTests {
    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter(\.isHexDigit))
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// RFC 7541 C.3 (literals) and C.4 (Huffman): three requests on one connection, each block
    /// built on the dynamic table the ones before it filled.
    static let requestsWithoutHuffman = [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]
    static let requestsWithHuffman = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]
    static let decodedRequests = [
        ":method GET|:scheme http|:path /|:authority www.example.com",
        ":method GET|:scheme http|:path /|:authority www.example.com|cache-control no-cache",
        ":method GET|:scheme https|:path /index.html|:authority www.example.com|custom-key custom-value",
    ]

    /// What the layer reported, one line per event.
    static func run(_ steps: [(StreamDirection, [UInt8]?, UInt64)], layer: HTTP2FrameLayer = HTTP2FrameLayer(expectsPreface: false)) -> [String] {
        var layer = layer
        var lines: [String] = []
        let emit: ((HTTP2Event, StreamDirection)) -> Void = { item in
            switch item.0 {
            case .headers(let stream, let headers, _):
                lines.append("s\(stream) headers " + headers.lines.map { "\($0.name) \($0.value)" }.joined(separator: "|"))
            case .data(let stream, let bytes, let end): lines.append("s\(stream) data \(bytes.count)\(end ? " end" : "")")
            case .dataMissing(let stream, let count, let lost): lines.append("s\(stream) missing \(count)\(lost ? " boundary lost" : "")")
            case .boundariesLost: lines.append("boundaries lost")
            case .violation(let violation): lines.append("violation \(violation)")
            case .goAway(let last, let code, _): lines.append("goaway \(last) \(code)")
            case .resetStream(let stream, let code): lines.append("s\(stream) reset \(code)")
            case .preface, .settings: break
            }
        }
        for (direction, bytes, lost) in steps {
            if let bytes {
                bytes.withUnsafeBytes { layer.receive($0, direction: direction, at: .zero, emit: emit) }
            } else {
                layer.missing(MissingBytes(lost, cause: .notCaptured), direction: direction, at: .zero, emit: emit)
            }
        }
        return lines
    }

    static func headers(_ stream: UInt32, _ block: [UInt8]) -> [UInt8] { HTTP2StageTests.h2(1, flags: 0x5, stream: stream, block) }
    static func data(_ stream: UInt32, _ count: Int, end: Bool = false) -> [UInt8] {
        HTTP2StageTests.h2(0, flags: end ? 1 : 0, stream: stream, [UInt8](repeating: 0x61, count: count))
    }

    @Test(arguments: [requestsWithoutHuffman, requestsWithHuffman])
    func rfc7541RequestsDecodeOnOneTable(_ blocks: [String]) {
        let bytes = blocks.enumerated().flatMap { Self.headers(UInt32($0.offset * 2 + 1), Self.hex($0.element)) }
        #expect(Self.run([(.clientToServer, bytes, 0)]) == Self.decodedRequests.enumerated().map { "s\($0.offset * 2 + 1) headers \($0.element)" })
    }

    /// Bytes lost inside a DATA frame whose header was seen: the stream is told how many, and the
    /// frames after it are in step (no search).
    @Test func aGapInsideADataFrameKeepsTheFramesInStep() {
        let first = Self.data(1, 100)
        let lines = Self.run([
            (.clientToServer, Self.headers(1, Self.hex(Self.requestsWithoutHuffman[0])) + Array(first[..<39]), 0),
            (.clientToServer, nil, 20),
            (.clientToServer, Array(first[59...]) + Self.data(1, 10, end: true), 0),
        ])
        #expect(lines == ["s1 headers " + Self.decodedRequests[0], "s1 data 30", "s1 missing 20", "s1 data 50", "s1 data 10 end"])
    }

    /// A gap that ends a DATA frame's END_STREAM still ends the stream.
    @Test func aGapToTheEndOfAFrameEndsItsStream() {
        let frame = Self.data(1, 40, end: true)
        #expect(Self.run([(.clientToServer, Array(frame[..<19]), 0), (.clientToServer, nil, 30), (.clientToServer, Self.data(1, 5), 0)])
            == ["s1 data 10", "s1 missing 30", "s1 data 0 end", "s1 data 5"])
    }

    /// Bytes lost across frames: frames are searched for (two headers in a row that fit), the
    /// bytes skipped are counted, HPACK starts afresh: a block that refers only to the static
    /// table decodes, one that refers to an entry the lost bytes held does not, and neither stops
    /// the direction.
    @Test func aGapAcrossFramesIsFoundAgain() {
        let before = Self.headers(1, Self.hex(Self.requestsWithoutHuffman[0])) + Self.data(1, 30)
        let lost = Self.data(1, 30)
        let after = Self.data(1, 12) + Self.headers(3, Self.hex(Self.requestsWithoutHuffman[1]))
            + Self.headers(5, Self.hex(Self.requestsWithoutHuffman[0])) + Self.data(5, 3, end: true)
        let lines = Self.run([
            (.clientToServer, before + Array(lost[..<4]), 0),
            (.clientToServer, nil, 25),
            // The last 10 bytes of the lost frame's payload, then frames in step again.
            (.clientToServer, Array(lost[29...]) + after, 0),
        ])
        #expect(lines.prefix(4) == ["s1 headers " + Self.decodedRequests[0], "s1 data 30", "violation bytesLost(25)", "boundaries lost"])
        // 4 bytes held when the gap came and the 10 after it.
        #expect(lines.dropFirst(4).first == "violation framesFound(skipped: 14)")
        #expect(lines.count == 9)
        guard lines.count == 9 else { return }
        #expect(lines[5] == "s1 data 12")
        #expect(lines[6].hasPrefix("violation headerBlockUndecodable(stream: 3"), "it refers to the entry the first block added")
        #expect(Array(lines[7...]) == ["s5 headers " + Self.decodedRequests[0], "s5 data 3 end"])
    }

    /// A header block cut by a loss is reported, and the frames after it are in step.
    @Test func aGapInsideAHeaderBlockLosesOnlyThatBlock() {
        let cut = Self.headers(1, Self.hex(Self.requestsWithoutHuffman[0]))
        let lines = Self.run([
            (.clientToServer, Array(cut[..<14]), 0), (.clientToServer, nil, 10),
            (.clientToServer, Array(cut[24...]) + Self.headers(3, Self.hex(Self.requestsWithoutHuffman[0])), 0),
        ])
        #expect(lines == [
            "violation headerBlockUndecodable(stream: 1, \"part of it was not captured\")", "s3 headers " + Self.decodedRequests[0],
        ])
    }

    /// DATA beyond the window the receiver's SETTINGS and WINDOW_UPDATEs granted is noted once.
    @Test func flowControlViolationsAreNotedOnce() {
        let settings = HTTP2StageTests.h2(4, stream: 0, [0, 4, 0, 0, 0, 16])  // INITIAL_WINDOW_SIZE 16
        let update = HTTP2StageTests.h2(8, stream: 1, [0, 0, 0, 8])
        let lines = Self.run([
            (.serverToClient, settings, 0),
            (.clientToServer, Self.headers(1, Self.hex(Self.requestsWithoutHuffman[0])) + Self.data(1, 10) + Self.data(1, 6), 0),
            (.serverToClient, update, 0),
            (.clientToServer, Self.data(1, 8) + Self.data(1, 9) + Self.data(1, 50), 0),
        ])
        #expect(lines.filter { $0.hasPrefix("violation") } == ["violation flowControlExceeded(stream: 1, window: 0, length: 9)"])
    }

    @Test func upgradeSettingsAreBase64URL() throws {
        // h2's HTTP2-Settings for MAX_CONCURRENT_STREAMS=100, INITIAL_WINDOW_SIZE=1073741824, ENABLE_PUSH=0.
        let settings = try #require(HTTP2UpgradeSettings.decode("AAMAAABkAARAAAAAAAIAAAAA"))
        #expect(HTTP2UpgradeSettings.describe(settings) == "MAX_CONCURRENT_STREAMS=100 INITIAL_WINDOW_SIZE=1073741824 ENABLE_PUSH=0")
        #expect(HTTP2UpgradeSettings.decode("AAMAAAB") == nil)
        #expect(HTTP2UpgradeSettings.decode("not base64!") == nil)
    }
}
