import Testing
import TestSupport
import WSTapCore
@testable import WSTapHTTP

/// What a test keeps of an HTTP event; pairs of request and response only when `pairs` is set.
func httpRecord(_ event: HTTPEvent, pairs: Bool = false) -> SplitFeeder.Record? {
    switch event {
    case .request(let head, let offered):
        return .line("request \(head.method) \(head.target) offer=\(offered?.joined(separator: ",") ?? "-")")
    case .response(let head, _, _):
        return .line("response \(head.status)")
    case .answerBody(let body):
        return .line("body \(String(decoding: body.bytes, as: UTF8.self)) length=\(body.length) complete=\(body.isComplete)")
    case .exchange(let exchange):
        guard pairs else { return nil }
        return .line("pair \(exchange.request.target) \(exchange.response.map { String($0.status) } ?? "unanswered")")
    case .switched(let selected):
        return .line("switched \(selected ?? "-")")
    case .tunnelOpened(let target):
        return .line("tunnel \(target)")
    case .upgradedBytes(let bytes, let direction):
        return .bytes(label: "data \(direction.label)", Array(bytes))
    case .upgradedGap(let count, let direction):
        return .line("gap \(direction.label) \(count)")
    case .violation(let violation, let direction):
        return .line("violation \(direction.label) \(violation)")
    case .notHTTP(let direction):
        return .line("not-http \(direction.label)")
    case .upgradedBoundaryUnknown(let direction):
        return .line("boundary-unknown \(direction.label)")
    }
}

/// A readable record of what a conversation reported, the same however the bytes are cut.
func conversationEvents(_ steps: [(StreamDirection, String)], pairs: Bool = false) -> [String] {
    let (whole, differing) = SplitFeeder.disagreements(
        steps.map { ($0.0, Array($0.1.utf8)) }, make: HTTPConversation.init) { httpRecord($0, pairs: pairs) }
    for (cut, records) in differing.prefix(3) { Issue.record("\(cut) differs: \(records)") }
    return whole.map { record in
        switch record {
        case .line(let line): line
        case .bytes(let label, let bytes): "\(label) \(String(decoding: bytes, as: UTF8.self))"
        }
    }
}

struct HTTPHeadersTests {
    @Test func tokenListsSplitOutsideQuotes() {
        #expect(TokenList.split(" a, b ,,c ") == ["a", "b", "c"])
        #expect(TokenList.split("x; q=\"1,2\", y") == ["x; q=\"1,2\"", "y"])
        #expect(TokenList.split("permessage-deflate; client_max_window_bits", separator: ";")
            == ["permessage-deflate", "client_max_window_bits"])
    }

    @Test func repeatedLinesMergeAndLookupIgnoresCase() {
        var headers = HTTPHeaders()
        headers.append(name: "Connection", value: "keep-alive")
        headers.append(name: "connection", value: "Upgrade")
        headers.append(name: "Sec-WebSocket-Protocol", value: "chat")
        headers.append(name: "SEC-WEBSOCKET-PROTOCOL", value: "superchat")
        #expect(headers.hasToken("upgrade", in: "CONNECTION"))
        #expect(headers.tokens("sec-websocket-protocol") == ["chat", "superchat"])
        #expect(headers.combinedValue("Sec-WebSocket-Protocol") == "chat, superchat")
        #expect(headers.lines.map(\.name) == ["Connection", "connection", "Sec-WebSocket-Protocol", "SEC-WEBSOCKET-PROTOCOL"])
    }

    @Test func headParserAcceptsFoldingAndBareLineFeeds() throws {
        let request = try HTTPHeadParser.parseRequest(Array("GET /a?b HTTP/1.1\nHost: x\nX-Long: one\n two\n\n".utf8))
        #expect(request.method == "GET" && request.target == "/a?b")
        #expect(request.headers.combinedValue("x-long") == "one two")
        let response = try HTTPHeadParser.parseResponse(Array("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".utf8))
        #expect(response.status == 101 && response.reason == "Switching Protocols")
        #expect(throws: HTTPHeadError.self) { try HTTPHeadParser.parseResponse(Array("HTTP/1.1 abc\r\n\r\n".utf8)) }
        #expect(throws: HTTPHeadError.self) { try HTTPHeadParser.parseRequest(Array("GET /\r\nBad Line\r\n\r\n".utf8)) }
    }

    /// Fields that are not UTF-8 keep their bytes (the strings show U+FFFD); UTF-8 fields keep none.
    @Test func fieldsThatAreNotUTF8KeepTheirBytes() throws {
        let request = try HTTPHeadParser.parseRequest(
            Array("GET /caf".utf8) + [0xE9] + Array(" HTTP/1.1\r\nX-A: ok\r\nX-B: a".utf8) + [0xFF] + Array("\r\n \u{00e9}\r\n\r\n".utf8))
        #expect(request.targetBytes == Array("/caf".utf8) + [0xE9])
        #expect(request.target == "/caf\u{FFFD}")
        #expect(request.versionBytes == nil)
        #expect(request.headers.lines[0].valueBytes == nil)
        #expect(request.headers.lines[1].valueBytes == [0x61, 0xFF, 0x20, 0xC3, 0xA9])
        let response = try HTTPHeadParser.parseResponse(Array("HTTP/1.1 400 B".utf8) + [0xC0] + Array("d\r\n\r\n".utf8))
        #expect(response.reasonBytes == [0x42, 0xC0, 0x64])
    }
}

struct HTTPConversationTests {
    static let upgradeRequest = "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
    static let switchResponse = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"

    @Test func keepAliveRequestsThenUpgrade() {
        let steps: [(StreamDirection, String)] = [
            (.clientToServer, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
            (.serverToClient, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            (.clientToServer, "POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            (.serverToClient, "HTTP/1.1 204 No Content\r\n\r\n"),
            (.clientToServer, Self.upgradeRequest + "early"),
            (.serverToClient, Self.switchResponse + "frames"),
            (.clientToServer, "more"),
        ]
        #expect(conversationEvents(steps) == [
            "request GET /a offer=-", "response 200", "request POST /b offer=-", "response 204",
            "request GET /ws offer=websocket", "response 101", "switched websocket",
            "data c2s early", "data s2c frames", "data c2s more",
        ])
    }

    /// Each request is paired once, in order, with the final response that answers it: interim
    /// responses do not answer, a 101 does, and what is still waiting at a switch or at the end
    /// is paired with nothing.
    @Test func requestsArePairedWithTheirFinalResponses() {
        let pairs = conversationEvents([
            (.clientToServer, "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"),
            (.serverToClient, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            (.clientToServer, Self.upgradeRequest),
            (.serverToClient, "HTTP/1.1 204 No Content\r\n\r\n" + Self.switchResponse),
        ], pairs: true).filter { $0.hasPrefix("pair") }
        #expect(pairs == ["pair /a 200", "pair /b 204", "pair /ws 101"])
        let unanswered = conversationEvents([
            (.clientToServer, "GET /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n"),
            (.serverToClient, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        ], pairs: true).filter { $0.hasPrefix("pair") }
        #expect(unanswered == ["pair /x 404", "pair /y unanswered"])
    }

    @Test func refusedUpgradeStaysHTTP() {
        let log = conversationEvents([
            (.clientToServer, Self.upgradeRequest),
            (.serverToClient, "HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!"),
            (.clientToServer, "GET /next HTTP/1.1\r\n\r\n"),
        ])
        #expect(log == ["request GET /ws offer=websocket", "response 403", "body no! length=3 complete=true", "request GET /next offer=-"])
    }

    @Test func requestsWithoutResponsesAreBounded() {
        var conversation = HTTPConversation()
        var log: [String] = []
        func feed(_ text: String, _ direction: StreamDirection) {
            Array(text.utf8).withUnsafeBytes { bytes in
                conversation.receive(bytes, direction: direction, at: .zero) { event in
                    switch event {
                    case .response(let head, let request, _): log.append("response \(head.status) to \(request?.target ?? "-")")
                    case .exchange(let exchange) where exchange.response == nil: log.append("unanswered \(exchange.request.target)")
                    case .violation(let violation, _): log.append("violation \(violation)")
                    default: break
                    }
                }
            }
        }
        let limit = HTTPConversation.maxOutstandingRequests
        for index in 0..<(limit + 2) { feed("GET /\(index) HTTP/1.1\r\n\r\n", .clientToServer) }
        // Past the limit the oldest are paired with no response, and reported once.
        let byteLimit = HTTPConversation.maxOutstandingRequestBytes
        #expect(log == ["unanswered /0", "violation tooManyUnansweredRequests(limit: \(limit), byteLimit: \(byteLimit))", "unanswered /1"])
        for _ in 0..<3 { feed("HTTP/1.1 204 No Content\r\n\r\n", .serverToClient) }
        // The two forgotten requests are answered first, without a claim that nothing asked.
        #expect(log.dropFirst(3) == ["response 204 to -", "response 204 to -", "response 204 to /2"])

        // Large heads are forgotten by their bytes: 1 MiB of waiting heads is at most 17 of 60 KiB.
        log = []
        conversation = HTTPConversation()
        let padding = String(repeating: "a", count: 60 * 1024)
        for index in 0..<40 { feed("GET /big\(index) HTTP/1.1\r\nX-Pad: \(padding)\r\n\r\n", .clientToServer) }
        let forgotten = log.filter { $0.hasPrefix("unanswered") }
        #expect(forgotten.count == 40 - (byteLimit / (60 * 1024 + 40)))
        #expect(forgotten.first == "unanswered /big0" && log.filter { $0.hasPrefix("violation") }.count == 1)
    }

    @Test func interimResponsesDoNotAnswerTheRequest() {
        let log = conversationEvents([
            (.clientToServer, Self.upgradeRequest),
            (.serverToClient, "HTTP/1.1 100 Continue\r\n\r\n" + Self.switchResponse),
        ])
        #expect(log == ["request GET /ws offer=websocket", "response 100", "response 101", "switched websocket"])
    }

    @Test func upgradeWithoutConnectionTokenIsNoOffer() {
        let log = conversationEvents([(.clientToServer, "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")])
        #expect(log == ["violation c2s upgradeWithoutConnectionToken", "request GET / offer=-"])
    }

    /// A head the connection ended inside is reported, in either direction, not dropped.
    @Test func aHeadUnfinishedAtTheEndIsReported() {
        let log = conversationEvents([
            (.clientToServer, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost:"),
            (.serverToClient, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 20"),
        ])
        #expect(log.contains("violation c2s headUnfinished(bytes: 22)"))
        #expect(log.contains("violation s2c headUnfinished(bytes: 11)"))
    }

    @Test func switchToAnUnofferedProtocolIsReported() {
        let log = conversationEvents([
            (.clientToServer, "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: example/1, foo/2\r\n\r\n"),
            (.serverToClient, "HTTP/1.1 101 OK\r\nUpgrade: bar/3\r\n\r\n"),
        ])
        #expect(log.filter { $0.hasPrefix("violation s2c switchToUnofferedProtocol(") }.count == 1)
        #expect(log.contains { $0.hasPrefix("violation s2c switchToUnofferedProtocol(") && $0.contains("bar/3") })
        #expect(log.last == "switched bar/3")
    }

    /// 10,000 answered tokens (5,000 names twice), none of them offered: one report naming the
    /// first eight and counting the other distinct ones (fed whole: cutting a 60 KB head every
    /// way is the split feeder's own quadratic).
    @Test func manyUnofferedTokensMakeOneReport() {
        let offered = (0..<5_000).map { "o\($0)" }.joined(separator: ",")
        let answered = (0..<10_000).map { "a\($0 % 5_000)" }.joined(separator: ",")
        var conversation = HTTPConversation()
        var reports: [String] = []
        for (direction, text) in [
            (StreamDirection.clientToServer, "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: \(offered)\r\n\r\n"),
            (.serverToClient, "HTTP/1.1 101 OK\r\nUpgrade: \(answered)\r\n\r\n"),
        ] {
            Array(text.utf8).withUnsafeBytes { bytes in
                conversation.receive(bytes, direction: direction, at: .zero) { event in
                    if case .violation(.switchToUnofferedProtocol(let names), _) = event { reports.append(names) }
                }
            }
        }
        #expect(reports == ["'a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7' and 4992 more"])
    }

    @Test func nonHTTPStreamsAreRecognised() {
        #expect(conversationEvents([(.clientToServer, "\u{16}\u{03}\u{01}binary")]) == ["not-http c2s"])
        #expect(conversationEvents([(.serverToClient, "SSH-2.0-x\r\n")]) == ["not-http s2c"])
    }

    @Test func gapsInsideBodiesAreSkippedButGapsInHeadsStopParsing() {
        var conversation = HTTPConversation()
        var log: [String] = []
        let emit: (HTTPEvent) -> Void = { event in
            if case .request(let head, _) = event { log.append(head.target) }
            if case .violation(let violation, _) = event { log.append("\(violation)") }
        }
        Array("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc".utf8).withUnsafeBytes {
            conversation.receive($0, direction: .clientToServer, at: .zero, emit: emit)
        }
        conversation.missing(MissingBytes(7, cause: .notCaptured), direction: .clientToServer, at: .zero, emit: emit)
        Array("GET /b HTTP/1.1\r\n\r\nGET /c".utf8).withUnsafeBytes {
            conversation.receive($0, direction: .clientToServer, at: .zero, emit: emit)
        }
        conversation.missing(MissingBytes(3, cause: .notCaptured), direction: .clientToServer, at: .zero, emit: emit)
        #expect(log == ["/a", "/b", "streamGap(bytes: 3)"])
    }
}
