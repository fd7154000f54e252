import WSTapCore

/// What an HTTP/1.1 conversation reports as its bytes arrive.
public enum HTTPEvent {
    /// A request head; `offeredProtocols` is the `Upgrade` list when it is a valid upgrade offer
    /// (empty when the head was cut before any `Upgrade` header: the offer is unknown).
    case request(HTTPRequestHead, offeredProtocols: [String]?)
    /// A response head and the request it answers (nil if none was seen).
    case response(HTTPResponseHead, request: HTTPRequestHead?, offeredProtocols: [String]?)
    /// The body of a final answer to an upgrade offer (what a refused upgrade says), once it ended
    /// or the connection did.
    case answerBody(HTTPBodyPreview)
    /// A request and its final answer, paired as HTTP/1.1 pairs them (in order, RFC 9112 §9.3):
    /// when a final response or 101 arrives, and with no response when the request is forgotten
    /// (past `maxOutstandingRequests`) or the conversation ends unanswered. Every request is paired
    /// exactly once, in request order.
    case exchange(HTTPExchange)
    /// A 101 switched the connection; every later byte belongs to `selectedProtocol`.
    case switched(selectedProtocol: String?)
    /// A 2xx answered a CONNECT (RFC 9110 §9.3.6): every later byte is the tunnel's, a new stream
    /// to `target`, delivered like the bytes after a switch.
    case tunnelOpened(target: String)
    /// Bytes after the switch, in order per direction.
    case upgradedBytes(UnsafeRawBufferPointer, StreamDirection)
    /// Bytes lost after the switch.
    case upgradedGap(UInt64, StreamDirection)
    /// After the switch, where the new protocol's first unit starts is not known (a cut head).
    case upgradedBoundaryUnknown(StreamDirection)
    case violation(HTTPViolation, StreamDirection)
    /// The direction does not start like HTTP/1.x; its bytes are not parsed.
    case notHTTP(StreamDirection)
}

/// The start of the body of a response: at most `HTTPConversation.maxBodyPreview` bytes, as the
/// body's framing delivers them (chunk framing removed).
public struct HTTPBodyPreview: Sendable, Equatable {
    public var bytes: [UInt8] = []
    /// Body bytes in all, captured or not (more than `bytes.count` when the preview is cut).
    public var length: UInt64 = 0
    /// Body bytes the capture lacks.
    public var missingBytes: UInt64 = 0
    /// The body ended where its framing says (false: the connection or the framing ended first).
    public var isComplete = false

    public init() {}
}

/// A request and the response that answered it, each with the time its head was complete.
public struct HTTPExchange: Sendable {
    public var request: HTTPRequestHead
    public var requestTime: CaptureTimestamp
    /// Nil when no final response was captured for this request.
    public var response: HTTPResponseHead?
    public var responseTime: CaptureTimestamp?
    /// The start of the request's body (`HTTPConversation.maxRequestBodyPreview` bytes), when it
    /// had one that ended before the answer came.
    public var requestBody: HTTPBodyPreview?

    /// A classic CONNECT (no `:protocol`) answered 2xx: the bytes that follow are a tunnel's
    /// (RFC 9110 §9.3.6, RFC 9113 §8.5).
    public var opensTunnel: Bool { request.isClassicConnect && (200..<300).contains(response?.status ?? 0) }

    public init(
        request: HTTPRequestHead, requestTime: CaptureTimestamp, response: HTTPResponseHead?, responseTime: CaptureTimestamp?,
        requestBody: HTTPBodyPreview? = nil
    ) {
        self.request = request
        self.requestTime = requestTime
        self.response = response
        self.responseTime = responseTime
        self.requestBody = requestBody
    }
}

/// Follows one connection's HTTP/1.1 requests and responses, including keep-alive and pipelining,
/// until an Upgrade is answered with 101 (RFC 9110 §7.8, RFC 9112).
///
/// It returns events instead of acting: the caller decides what to decode after a switch.
public struct HTTPConversation: StreamParser {
    private enum Mode {
        case head(sawBytes: Bool)
        case body(remaining: UInt64)
        case chunked(ChunkedBodyDecoder)
        case untilClose
        /// Client bytes after an upgrade offer, kept until the answer says what they are.
        case holdingForUpgradeAnswer
        case switched
        case opaque
    }

    private enum HeldChunk {
        case bytes([UInt8])
        case gap(UInt64)
        case boundaryUnknown
    }

    private struct PendingRequest {
        var head: HTTPRequestHead
        var time: CaptureTimestamp
        var offeredProtocols: [String]?
        /// Bytes of the head on the wire and of the body kept (what holding it costs, within a
        /// small factor).
        var byteCount: Int
        var body: HTTPBodyPreview?
    }

    /// Longest message head accepted before the stream is given up as not HTTP.
    public static let maxHeadLength = 64 * 1024
    /// Client bytes held while an upgrade offer waits for its answer.
    public static let maxHeldBytes = Int.mebibytes(1)
    /// Requests kept while they wait for responses. Past this (a capture of one direction only, a
    /// request flood) the oldest are forgotten: their responses, in order, match no request.
    public static let maxOutstandingRequests = 1000
    /// Head bytes of the requests kept while they wait: past this the oldest are forgotten too
    /// (a thousand heads of 64 KiB would otherwise hold 64 MiB per connection).
    public static let maxOutstandingRequestBytes = Int.mebibytes(1)

    private var modes = DirectionPair(Mode.head(sawBytes: false))
    private var heads = DirectionPair<[UInt8]>([])
    /// Whether each direction's head has had a byte other than a carriage return since its last line feed.
    private var currentLineHasContent = DirectionPair(false)
    private var outstanding = FIFOQueue<PendingRequest>()
    private var outstandingBytes = 0
    /// Requests dropped from the front of `outstanding`: the next responses answer them.
    private var forgottenRequests = 0
    private var reportedForgottenRequests = false
    private var held: [HeldChunk] = []
    private var heldBytes = 0
    private var clientHoldsAfterBody = false
    /// The head being completed was cut: what follows it starts at an unknown boundary.
    private var headWasCut = false
    /// Capture time of the bytes being parsed: the time of the heads they complete.
    private var currentTime = CaptureTimestamp.zero
    /// The body of a final answer to an upgrade offer, while it arrives.
    private var answerBody: HTTPBodyPreview?
    /// Bytes of an answer's body kept to show.
    public static let maxBodyPreview = 1024
    /// The body of the newest request, while it arrives (it belongs to `outstanding.last`).
    private var requestBody: HTTPBodyPreview?
    /// Bytes of a request's body kept (what a HAR's `postData` shows); they count against
    /// `maxOutstandingRequestBytes` while the request waits.
    public static let maxRequestBodyPreview = 64 * 1024

    public init() {}

    /// True once a 101 has switched both directions.
    var hasSwitched: Bool {
        if case .switched = modes[1] { return true }
        return false
    }

    public mutating func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp,
        emit: (HTTPEvent) -> Void
    ) {
        currentTime = time
        var rest = bytes
        while !rest.isEmpty {
            let consumed = step(rest, direction: direction, emit: emit)
            rest = UnsafeRawBufferPointer(rebasing: rest[(rest.startIndex + consumed)...])
        }
    }

    public mutating func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: (HTTPEvent) -> Void) {
        let byteCount = gap.count
        currentTime = time
        let index = direction
        switch modes[index] {
        case .body(let remaining) where byteCount <= remaining:
            bodyBytesMissing(byteCount, direction: direction)
            modes[index] = remaining == byteCount ? afterBody(direction) : .body(remaining: remaining - byteCount)
            if remaining == byteCount { endBody(direction: direction, complete: true, emit: emit) }
        case .chunked(var decoder) where decoder.skip(byteCount):
            bodyBytesMissing(byteCount, direction: direction)
            modes[index] = .chunked(decoder)
        case .untilClose:
            bodyBytesMissing(byteCount, direction: direction)
        case .opaque:
            break
        case .switched:
            emit(.upgradedGap(byteCount, direction))
        case .holdingForUpgradeAnswer:
            held.append(.gap(byteCount))
        case .head where heads[index].contains(0x0A):
            cutHead(byteCount, direction: direction, emit: emit)
        default:
            emit(.violation(.streamGap(bytes: byteCount), direction))
            modes[index] = .opaque
            endBody(direction: direction, complete: false, emit: emit)
        }
    }

    /// Once the server's direction ends, requests still waiting will not be answered: each is
    /// paired with no response.
    public mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (HTTPEvent) -> Void) {
        currentTime = time
        let index = direction
        if case .head = modes[index], !heads[index].isEmpty {
            emit(.violation(.headUnfinished(bytes: heads[index].count), direction))
            heads[index] = []
        }
        guard direction == .serverToClient else { return endBody(direction: direction, complete: false, emit: emit) }
        if case .untilClose = modes[1] {
            endBody(direction: direction, complete: true, emit: emit)
        } else {
            endBody(direction: direction, complete: false, emit: emit)
        }
        pairUnansweredRequests(emit: emit)
    }

    /// Keeps the start of a request's body, or of an answer's to an upgrade offer.
    private mutating func keepBody(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection) {
        if direction == .clientToServer, var body = requestBody {
            let room = max(0, Self.maxRequestBodyPreview - body.bytes.count)
            body.bytes.appendBytes(UnsafeRawBufferPointer(rebasing: bytes.prefix(room)))
            body.length &+= UInt64(bytes.count)
            requestBody = body
            return
        }
        guard direction == .serverToClient, var body = answerBody else { return }
        let room = max(0, Self.maxBodyPreview - body.bytes.count)
        body.bytes.appendBytes(UnsafeRawBufferPointer(rebasing: bytes.prefix(room)))
        body.length &+= UInt64(bytes.count)
        answerBody = body
    }

    private mutating func bodyBytesMissing(_ count: UInt64, direction: StreamDirection) {
        if direction == .clientToServer, requestBody != nil {
            requestBody?.length &+= count
            requestBody?.missingBytes &+= count
            return
        }
        guard direction == .serverToClient, answerBody != nil else { return }
        answerBody?.length &+= count
        answerBody?.missingBytes &+= count
    }

    /// A body ended (or can no longer be followed): a request's goes with its request (when the
    /// request still waits: it is the newest one), an answer's is handed on.
    private mutating func endBody(direction: StreamDirection, complete: Bool, emit: (HTTPEvent) -> Void) {
        if direction == .clientToServer, var body = requestBody {
            requestBody = nil
            body.isComplete = complete && body.missingBytes == 0
            if !outstanding.isEmpty {
                outstanding.updateLast { $0.body = body; $0.byteCount += body.bytes.count }
                outstandingBytes += body.bytes.count
            }
            return
        }
        guard direction == .serverToClient, var body = answerBody else { return }
        answerBody = nil
        body.isComplete = complete && body.missingBytes == 0
        emit(.answerBody(body))
    }

    /// Pairs every waiting request with no response, oldest first.
    private mutating func pairUnansweredRequests(emit: (HTTPEvent) -> Void) {
        forgottenRequests = 0
        while !outstanding.isEmpty { emitUnanswered(removeOldestRequest(), emit: emit) }
    }

    private mutating func removeOldestRequest() -> PendingRequest {
        let request = outstanding.removeFirst()
        outstandingBytes -= request.byteCount
        return request
    }

    private func emitUnanswered(_ request: PendingRequest, emit: (HTTPEvent) -> Void) {
        emit(.exchange(HTTPExchange(
            request: request.head, requestTime: request.time, response: nil, responseTime: nil, requestBody: request.body)))
    }

    /// A head cut by missing bytes (typically a snapshot length): its complete lines are parsed,
    /// and whatever follows the gap is treated as starting at an unknown boundary.
    private mutating func cutHead(_ byteCount: UInt64, direction: StreamDirection, emit: (HTTPEvent) -> Void) {
        let index = direction
        var partial = heads[index]
        heads[index] = []
        currentLineHasContent[index] = false
        if let lastLineFeed = partial.lastIndex(of: 0x0A) { partial.removeSubrange((lastLineFeed + 1)...) }
        partial.append(0x0A)
        emit(.violation(.headCut(bytes: byteCount), direction))
        headWasCut = true
        completeHead(partial, direction: direction, emit: emit)
        headWasCut = false
        // The cut may have taken a body too: a refused or plain exchange can't be followed further.
        if case .head = modes[index] {
            modes[index] = direction == .serverToClient && hasSwitched ? .switched : .opaque
        } else if case .body = modes[index] {
            modes[index] = .opaque
        } else if case .chunked = modes[index] {
            modes[index] = .opaque
        }
    }

    /// Consumes a prefix of `bytes` in the current mode; returns how many bytes it used (> 0).
    private mutating func step(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, emit: (HTTPEvent) -> Void
    ) -> Int {
        let index = direction
        switch modes[index] {
        case .head(let sawBytes):
            return consumeHead(bytes, direction: direction, sawBytes: sawBytes, emit: emit)
        case .body(let remaining):
            let take = Int(min(remaining, UInt64(bytes.count)))
            keepBody(UnsafeRawBufferPointer(rebasing: bytes[..<take]), direction: direction)
            modes[index] = remaining == UInt64(take) ? afterBody(direction) : .body(remaining: remaining - UInt64(take))
            if remaining == UInt64(take) { endBody(direction: direction, complete: true, emit: emit) }
            return take
        case .chunked(var decoder):
            let step = decoder.consume(bytes) { keepBody($0, direction: direction) }
            switch step {
            case .needMoreData:
                modes[index] = .chunked(decoder)
                return bytes.count
            case .finished(let consumed):
                modes[index] = afterBody(direction)
                endBody(direction: direction, complete: true, emit: emit)
                return consumed
            case .invalid:
                emit(.violation(.invalidChunkedBody, direction))
                modes[index] = .opaque
                endBody(direction: direction, complete: false, emit: emit)
                return bytes.count
            }
        case .untilClose:
            keepBody(bytes, direction: direction)
            return bytes.count
        case .opaque:
            return bytes.count
        case .holdingForUpgradeAnswer:
            if heldBytes + bytes.count > Self.maxHeldBytes {
                emit(.violation(.heldBytesOverflow(limit: Self.maxHeldBytes), direction))
                held.removeAll()
                modes[index] = .opaque
            } else {
                held.append(.bytes([UInt8](copying: bytes)))
                heldBytes += bytes.count
            }
            return bytes.count
        case .switched:
            emit(.upgradedBytes(bytes, direction))
            return bytes.count
        }
    }

    private func afterBody(_ direction: StreamDirection) -> Mode {
        direction == .clientToServer && clientHoldsAfterBody ? .holdingForUpgradeAnswer : .head(sawBytes: false)
    }

    private mutating func consumeHead(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, sawBytes: Bool, emit: (HTTPEvent) -> Void
    ) -> Int {
        let index = direction
        var start = 0
        if heads[index].isEmpty {
            // RFC 9112 §2.2: ignore empty lines before a request or response.
            while start < bytes.count, bytes[start] == 0x0D || bytes[start] == 0x0A { start += 1 }
            if start == bytes.count { return bytes.count }
        }
        // Where this head ends in `bytes`: at a line feed that ends an empty line (nothing but
        // carriage returns since the previous line feed). Linear: whether the current line has
        // content is carried across calls, so each byte is scanned once, however the head is cut.
        var lineHasContent = currentLineHasContent[index]
        var end = start
        var complete = false
        while end < bytes.count {
            guard let lineFeed = SystemCalls.firstIndex(of: 0x0A, in: bytes, from: end) else {
                lineHasContent = lineHasContent || Self.hasContent(bytes, end..<bytes.count)
                end = bytes.count
                break
            }
            lineHasContent = lineHasContent || Self.hasContent(bytes, end..<lineFeed)
            end = lineFeed + 1
            if !lineHasContent {
                complete = true
                break
            }
            lineHasContent = false
        }
        let heldBefore = heads[index].count
        heads[index].appendBytes(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        if heldBefore < 8 {
            let prefixIsHTTP = heads[index].withUnsafeBytes {
                Self.startsLikeHTTP(UnsafeRawBufferPointer(rebasing: $0.prefix(8)), direction: direction)
            }
            if !prefixIsHTTP {
                heads[index] = []
                modes[index] = .opaque
                emit(sawBytes ? .violation(.malformedHead(.malformedRequestLine("")), direction) : .notHTTP(direction))
                return bytes.count
            }
        }
        // The line feed that completes a head may be the one byte past the limit.
        if heads[index].count - (complete ? 1 : 0) > Self.maxHeadLength {
            heads[index] = []
            emit(.violation(.headTooLarge(limit: Self.maxHeadLength), direction))
            modes[index] = .opaque
            return bytes.count
        }
        guard complete else {
            currentLineHasContent[index] = lineHasContent
            modes[index] = .head(sawBytes: true)
            return bytes.count
        }
        currentLineHasContent[index] = false
        let head = heads[index]
        heads[index] = []
        completeHead(head, direction: direction, emit: emit)
        return end
    }

    /// Whether `range` holds a byte other than a carriage return.
    private static func hasContent(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        range.contains { bytes[$0] != 0x0D }
    }

    /// Whether the first bytes of a head can still become a request line (client) or status line.
    public static func startsLikeHTTP(_ prefix: [UInt8], direction: StreamDirection) -> Bool {
        prefix.withUnsafeBytes { startsLikeHTTP($0, direction: direction) }
    }

    static func startsLikeHTTP(_ prefix: UnsafeRawBufferPointer, direction: StreamDirection) -> Bool {
        if direction == .serverToClient {
            let expected: StaticString = "HTTP/"
            for index in 0..<min(5, prefix.count) where prefix[index] != expected.utf8Start[index] { return false }
            return true
        }
        for (position, byte) in prefix.enumerated() {
            if byte == 0x20 { return position > 0 }
            let isMethodCharacter = (byte >= 0x41 && byte <= 0x5A) || byte == 0x2D || byte == 0x5F
            if !isMethodCharacter { return false }
        }
        return true
    }

    private mutating func completeHead(_ head: [UInt8], direction: StreamDirection, emit: (HTTPEvent) -> Void) {
        if direction == .clientToServer {
            completeRequest(head, emit: emit)
        } else {
            completeResponse(head, emit: emit)
        }
    }

    private mutating func completeRequest(_ bytes: [UInt8], emit: (HTTPEvent) -> Void) {
        let head: HTTPRequestHead
        do {
            head = try HTTPHeadParser.parseRequest(bytes)
        } catch {
            emit(.violation(.malformedHead(error), .clientToServer))
            modes[0] = .opaque
            return
        }
        var offered: [String]?
        if head.headers.contains("Upgrade") {
            if head.headers.hasToken("upgrade", in: "Connection") || headWasCut {
                offered = head.headers.tokens("Upgrade")
            } else {
                emit(.violation(.upgradeWithoutConnectionToken, .clientToServer))
            }
        } else if headWasCut {
            offered = []  // The cut may have taken the Upgrade header: the offer is unknown, not absent.
        }
        emit(.request(head, offeredProtocols: offered))
        outstanding.append(PendingRequest(head: head, time: currentTime, offeredProtocols: offered, byteCount: bytes.count))
        outstandingBytes += bytes.count
        // The newest request always stays: a response may still answer it.
        while outstanding.count > 1,
              outstanding.count > Self.maxOutstandingRequests || outstandingBytes > Self.maxOutstandingRequestBytes {
            emitUnanswered(removeOldestRequest(), emit: emit)
            forgottenRequests += 1
            if !reportedForgottenRequests {
                reportedForgottenRequests = true
                emit(.violation(.tooManyUnansweredRequests(
                    limit: Self.maxOutstandingRequests, byteLimit: Self.maxOutstandingRequestBytes), .clientToServer))
            }
        }
        // After an upgrade offer or a CONNECT the client's next bytes wait for the answer: they may
        // be the new protocol's (or the tunnel's) rather than HTTP.
        clientHoldsAfterBody = offered != nil || head.method == "CONNECT"
        if headWasCut, offered != nil {
            modes[0] = .holdingForUpgradeAnswer
            held.append(.boundaryUnknown)
            return
        }
        requestBody = nil
        switch Self.requestBodyMode(head.headers) {
        case .success(let mode):
            modes[0] = mode
            switch mode {
            case .body, .chunked: requestBody = HTTPBodyPreview()
            default: break
            }
            if case .head = mode, clientHoldsAfterBody { modes[0] = .holdingForUpgradeAnswer }
        case .failure(let violation):
            emit(.violation(violation, .clientToServer))
            modes[0] = .opaque
        }
    }

    private mutating func completeResponse(_ bytes: [UInt8], emit: (HTTPEvent) -> Void) {
        let head: HTTPResponseHead
        do {
            head = try HTTPHeadParser.parseResponse(bytes)
        } catch {
            emit(.violation(.malformedHead(error), .serverToClient))
            modes[1] = .opaque
            return
        }
        let request = forgottenRequests > 0 ? nil : outstanding.first
        if request == nil, forgottenRequests == 0 {
            emit(.violation(.responseWithoutRequest(status: head.status), .serverToClient))
        }
        emit(.response(head, request: request?.head, offeredProtocols: request?.offeredProtocols))
        if head.status == 101 {
            switchProtocols(head, request: request, emit: emit)
            return
        }
        if head.status < 200 { return }  // An interim response; the final one follows.
        consumeRequest(answeredBy: head, emit: emit)
        if let request, request.head.method == "CONNECT" {
            guard head.status >= 300 else { return openTunnel(to: request.head.target, emit: emit) }
            releaseHeldBytes(switched: false, emit: emit)
        }
        switch Self.responseBodyMode(head, requestMethod: request?.head.method) {
        case .success(let mode): modes[1] = mode
        case .failure(let violation):
            emit(.violation(violation, .serverToClient))
            modes[1] = .opaque
        }
        if request?.offeredProtocols != nil {
            switch modes[1] {
            case .body, .chunked, .untilClose: answerBody = HTTPBodyPreview()
            default: break
            }
            releaseHeldBytes(switched: false, emit: emit)
        }
    }

    /// A final response (or 101) answered the oldest request waiting: the two are paired. One that
    /// answers a forgotten request was already paired with nothing.
    private mutating func consumeRequest(answeredBy response: HTTPResponseHead, emit: (HTTPEvent) -> Void) {
        if forgottenRequests > 0 {
            forgottenRequests -= 1
        } else if !outstanding.isEmpty {
            let request = removeOldestRequest()
            emit(.exchange(HTTPExchange(
                request: request.head, requestTime: request.time, response: response, responseTime: currentTime,
                requestBody: request.body)))
        }
    }

    private mutating func switchProtocols(_ head: HTTPResponseHead, request: PendingRequest?, emit: (HTTPEvent) -> Void) {
        consumeRequest(answeredBy: head, emit: emit)
        let answered = head.headers.tokens("Upgrade")
        if request?.offeredProtocols == nil {
            emit(.violation(.unsolicitedSwitch, .serverToClient))
        } else if answered.isEmpty, !headWasCut {
            emit(.violation(.switchWithoutUpgradeHeader, .serverToClient))
        } else if let offered = request?.offeredProtocols, !offered.isEmpty {
            let unoffered = TokenList.notOffered(answered, offered: offered)
            if !unoffered.isEmpty { emit(.violation(.switchToUnofferedProtocol(TokenList.listing(unoffered)), .serverToClient)) }
        }
        modes[1] = .switched
        // Both directions now carry the new protocol: requests still waiting are never answered.
        pairUnansweredRequests(emit: emit)
        emit(.switched(selectedProtocol: answered.last))
        if headWasCut { emit(.upgradedBoundaryUnknown(.serverToClient)) }
        releaseHeldBytes(switched: true, emit: emit)
    }

    /// A CONNECT was accepted: both directions now carry the tunnel's bytes.
    private mutating func openTunnel(to target: String, emit: (HTTPEvent) -> Void) {
        modes[1] = .switched
        pairUnansweredRequests(emit: emit)
        emit(.tunnelOpened(target: target))
        releaseHeldBytes(switched: true, emit: emit)
    }

    /// Replays client bytes held during an upgrade offer, as upgraded bytes or as more HTTP.
    private mutating func releaseHeldBytes(switched: Bool, emit: (HTTPEvent) -> Void) {
        clientHoldsAfterBody = false
        let chunks = held
        held = []
        heldBytes = 0
        if switched {
            modes[0] = .switched
        } else if case .holdingForUpgradeAnswer = modes[0] {
            modes[0] = .head(sawBytes: false)
        }
        for chunk in chunks {
            switch chunk {
            case .bytes(let bytes):
                bytes.withUnsafeBytes { receive($0, direction: .clientToServer, at: currentTime, emit: emit) }
            case .gap(let count):
                missing(MissingBytes(count, cause: .notCaptured), direction: .clientToServer, at: currentTime, emit: emit)
            case .boundaryUnknown:
                if switched { emit(.upgradedBoundaryUnknown(.clientToServer)) }
            }
        }
    }

    private static func requestBodyMode(_ headers: HTTPHeaders) -> Result<Mode, HTTPViolation> {
        if headers.hasToken("chunked", in: "Transfer-Encoding") { return .success(.chunked(ChunkedBodyDecoder())) }
        guard let lengthText = headers.combinedValue("Content-Length") else { return .success(.head(sawBytes: false)) }
        guard let length = contentLength(lengthText) else { return .failure(.invalidContentLength(lengthText)) }
        return .success(length == 0 ? .head(sawBytes: false) : .body(remaining: length))
    }

    private static func responseBodyMode(_ head: HTTPResponseHead, requestMethod: String?) -> Result<Mode, HTTPViolation> {
        if requestMethod == "HEAD" || head.status == 204 || head.status == 304 || requestMethod == "CONNECT" && head.status < 300 {
            return .success(.head(sawBytes: false))
        }
        if head.headers.hasToken("chunked", in: "Transfer-Encoding") { return .success(.chunked(ChunkedBodyDecoder())) }
        guard let lengthText = head.headers.combinedValue("Content-Length") else { return .success(.untilClose) }
        guard let length = contentLength(lengthText) else { return .failure(.invalidContentLength(lengthText)) }
        return .success(length == 0 ? .head(sawBytes: false) : .body(remaining: length))
    }

    /// A Content-Length value; repeated identical values are accepted (RFC 9110 §8.6).
    private static func contentLength(_ text: String) -> UInt64? {
        let values = TokenList.split(text)
        guard let first = values.first, values.allSatisfy({ $0 == first }),
              first.utf8.count <= 19, first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 })
        else { return nil }
        return UInt64(first)
    }
}
