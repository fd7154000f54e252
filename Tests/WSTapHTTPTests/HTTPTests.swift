import Testing
import WSTapTCP
@testable import WSTapHTTP

/// A readable record of what a conversation reported.
func conversationEvents(_ steps: [(StreamDirection, String)], splitEveryByte: Bool = false) -> [String] {
    var conversation = HTTPConversation()
    var log: [String] = []
    func note(_ event: HTTPEvent) {
        switch event {
        case .request(let head, let offered):
            log.append("request \(head.method) \(head.target) offer=\(offered?.joined(separator: ",") ?? "-")")
        case .response(let head, _, _):
            log.append("response \(head.status)")
        case .switched(let selected):
            log.append("switched \(selected ?? "-")")
        case .upgradedBytes(let bytes, let direction):
            let text = String(decoding: bytes, as: UTF8.self)
            if let last = log.last, last.hasPrefix("data \(direction.label) ") {
                log[log.count - 1] = last + text
            } else {
                log.append("data \(direction.label) \(text)")
            }
        case .upgradedGap(let count, let direction):
            log.append("gap \(direction.label) \(count)")
        case .violation(let violation, let direction):
            log.append("violation \(direction.label) \(violation)")
        case .notHTTP(let direction):
            log.append("not-http \(direction.label)")
        case .upgradedBoundaryUnknown(let direction):
            log.append("boundary-unknown \(direction.label)")
        }
    }
    for (direction, text) in steps {
        let bytes = Array(text.utf8)
        let chunks = splitEveryByte ? bytes.map { [$0] } : [bytes]
        for chunk in chunks {
            chunk.withUnsafeBytes { conversation.receive($0, direction: direction, emit: note) }
        }
    }
    return log
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
        let expected = [
            "request GET /a offer=-", "response 200", "request POST /b offer=-", "response 204",
            "request GET /ws offer=websocket", "response 101", "switched websocket",
            "data c2s earlymore", "data s2c frames",
        ]
        let log = conversationEvents(steps)
        #expect(log.filter { !$0.hasPrefix("data") } == expected.filter { !$0.hasPrefix("data") })
        #expect(log.contains("data s2c frames"))
        #expect(log.filter { $0.hasPrefix("data c2s ") }.map { $0.dropFirst(9) }.joined() == "earlymore")
        // Byte-at-a-time delivery reports the same heads.
        let split = conversationEvents(steps, splitEveryByte: true)
        #expect(split.filter { !$0.hasPrefix("data") } == expected.filter { !$0.hasPrefix("data") })
    }

    @Test func refusedUpgradeStaysHTTP() {
        let log = conversationEvents([
            (.clientToServer, Self.upgradeRequest),
            (.serverToClient, "HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!"),
            (.clientToServer, "GET /next HTTP/1.1\r\n\r\n"),
        ])
        #expect(log == ["request GET /ws offer=websocket", "response 403", "request GET /next offer=-"])
    }

    @Test func requestsWithoutResponsesAreBounded() {
        var conversation = HTTPConversation()
        var log: [String] = []
        func feed(_ text: String, _ direction: StreamDirection) {
            Array(text.utf8).withUnsafeBytes { bytes in
                conversation.receive(bytes, direction: direction) { event in
                    switch event {
                    case .response(let head, let request, _): log.append("response \(head.status) to \(request?.target ?? "-")")
                    case .violation(let violation, _): log.append("violation \(violation)")
                    default: break
                    }
                }
            }
        }
        let limit = HTTPConversation.maxOutstandingRequests
        for index in 0..<(limit + 2) { feed("GET /\(index) HTTP/1.1\r\n\r\n", .clientToServer) }
        #expect(log == ["violation tooManyUnansweredRequests(limit: \(limit))"])
        for _ in 0..<3 { feed("HTTP/1.1 204 No Content\r\n\r\n", .serverToClient) }
        // The two forgotten requests are answered first, without a claim that nothing asked.
        #expect(log.dropFirst() == ["response 204 to -", "response 204 to -", "response 204 to /2"])
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

    @Test func switchToAnUnofferedProtocolIsReported() {
        let log = conversationEvents([
            (.clientToServer, "GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: example/1, foo/2\r\n\r\n"),
            (.serverToClient, "HTTP/1.1 101 OK\r\nUpgrade: bar/3\r\n\r\n"),
        ])
        #expect(log.contains("violation s2c switchToUnofferedProtocol(\"bar/3\")"))
        #expect(log.last == "switched bar/3")
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
            conversation.receive($0, direction: .clientToServer, emit: emit)
        }
        conversation.missing(byteCount: 7, direction: .clientToServer, emit: emit)
        Array("GET /b HTTP/1.1\r\n\r\nGET /c".utf8).withUnsafeBytes {
            conversation.receive($0, direction: .clientToServer, emit: emit)
        }
        conversation.missing(byteCount: 3, direction: .clientToServer, emit: emit)
        #expect(log == ["/a", "/b", "streamGap(bytes: 3)"])
    }
}
