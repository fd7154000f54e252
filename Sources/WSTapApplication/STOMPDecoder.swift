import WSTapCore

/// STOMP 1.0, 1.1 and 1.2 over WebSocket (`v10.stomp`, `v11.stomp`, `v12.stomp`): each frame
/// is a command, headers and a body ended by NUL (`content-length` respected); several frames may
/// share a message and one may span messages. A message of end-of-lines only is a heart-beat
/// (type `heartbeat`). Header escapes are decoded per version (none in 1.0, nor in `CONNECT`
/// and `CONNECTED`); the version the server's `CONNECTED` names applies from then on. An
/// `ERROR` frame is a finding (`stomp-error`).
public final class STOMPDecoder: MessageDecoder {
    /// A STOMP version: what header escaping means.
    public enum Version: Sendable {
        case v1_0, v1_1, v1_2
    }

    private var version: Version
    private var streams = DirectionPair(MessageByteStream(limit: STOMPDecoder.maxFrameBytes))
    /// Per direction: where to resume looking for the NUL of a body without `content-length`.
    private var bodySearchResume = DirectionPair(0)
    /// Receipts asked for (`receipt` header) and not yet answered, per direction of the request:
    /// bounded, the oldest forgotten past `maxOutstanding`.
    private var receiptsAsked = DirectionPair<[String]>([])
    static let maxOutstanding = 1024
    /// A frame held across messages may be at most this long (the rest of it is a finding).
    static let maxFrameBytes = 16 << 20
    /// A frame's command and headers may be at most this long.
    static let maxHeaderBytes = 64 << 10

    static let commands: Set<String> = [
        "CONNECT", "STOMP", "CONNECTED", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN", "COMMIT", "ABORT",
        "DISCONNECT", "MESSAGE", "RECEIPT", "ERROR",
    ]

    public init(version: Version) {
        self.version = version
    }

    public func receive(_ input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        let side = input.direction
        guard input.isComplete else {
            if !streams[side].isEmpty {
                emit(.finding(.malformed("stomp", index: input.index, "a frame cut by missing bytes"), direction: input.direction))
            }
            return resynchronise(side)
        }
        let wasEmpty = streams[side].isEmpty
        guard streams[side].append(input.payload, index: input.index) else {
            emit(.finding(.malformed("stomp", index: input.index, "a frame longer than \(Self.maxFrameBytes >> 20) MiB"), direction: input.direction))
            return resynchronise(side)
        }
        // End-of-lines that open a message are heart-beats; after a frame's NUL, padding.
        let heartBeat = wasEmpty ? streams[side].withBytes(Self.leadingEndOfLines) : 0
        if heartBeat > 0 {
            let indices = streams[side].consume(heartBeat)
            emit(.message(ApplicationMessage(
                protocolName: "stomp", type: "heartbeat", direction: input.direction, messages: indices, detection: .negotiated)))
        }
        while !streams[side].isEmpty {
            switch readFrame(side) {
            case .incomplete:
                return
            case .malformed(let what):
                emit(.finding(.malformed("stomp", index: input.index, what), direction: input.direction))
                return resynchronise(side)
            case .frame(let command, let fields, let length, let errorDetail):
                let indices = streams[side].consume(length)
                bodySearchResume[side] = 0
                let padding = streams[side].withBytes(Self.leadingEndOfLines)
                if padding > 0 { _ = streams[side].consume(padding) }
                var fields = fields
                pairReceipt(command, &fields, direction: input.direction)
                if let errorDetail {
                    emit(.finding(ApplicationFinding(severity: .warning, code: "stomp-error", detail: errorDetail), direction: input.direction))
                }
                emit(.message(ApplicationMessage(
                    protocolName: "stomp", type: command, direction: input.direction, fields: fields, messages: indices,
                    detection: .negotiated)))
            }
        }
    }

    public func missing(direction: StreamDirection, emit: (ApplicationOutput) -> Void) {
        if !streams[direction].isEmpty {
            emit(.finding(streams[direction].cutByMissingBytes("stomp", "a frame"), direction: direction))
        }
        resynchronise(direction)
    }

    public func finish(at time: CaptureTimestamp, emit: (ApplicationOutput) -> Void) {
        for direction in [StreamDirection.clientToServer, .serverToClient] where !streams[direction].isEmpty {
            emit(.finding(streams[direction].endedInside("stomp", "a frame without its NUL"), direction: direction))
        }
    }

    private func resynchronise(_ side: StreamDirection) {
        streams[side].discard()
        bodySearchResume[side] = 0
    }

    /// A receipt request remembered; a `RECEIPT` names the command it answers.
    private func pairReceipt(_ command: String, _ fields: inout [ApplicationField], direction: StreamDirection) {
        guard case .object(let headers)? = fields.first(where: { $0.name == "headers" })?.value else { return }
        let header = { (name: String) -> String? in
            headers.first { $0.name == name }.flatMap { if case .string(let text) = $0.value { text } else { nil } }
        }
        if command != "RECEIPT", command != "CONNECT", command != "STOMP", let receipt = header("receipt") {
            var asked = receiptsAsked[direction]
            if asked.count == Self.maxOutstanding { asked.removeFirst() }
            asked.append(receipt)
            receiptsAsked[direction] = asked
        } else if command == "RECEIPT" || command == "ERROR", let answered = header("receipt-id") {
            let requests = direction.reversed.rawValue
            if let position = receiptsAsked[requests].firstIndex(of: answered) {
                receiptsAsked[requests].remove(at: position)
                fields.append(ApplicationField("answers_receipt", .string(answered)))
            }
        }
    }

    private enum FrameRead {
        case incomplete
        case malformed(String)
        /// A whole frame of `length` bytes (its NUL included); an `ERROR` frame's finding text.
        case frame(command: String, fields: [ApplicationField], length: Int, errorDetail: String?)
    }

    /// Reads the frame at the front of a direction's bytes.
    private func readFrame(_ side: StreamDirection) -> FrameRead {
        let resume = bodySearchResume[side]
        let (read, searchedTo) = streams[side].withBytes { bytes in readFrame(bytes, bodySearchFrom: resume) }
        bodySearchResume[side] = searchedTo
        return read
    }

    private func readFrame(_ bytes: UnsafeRawBufferPointer, bodySearchFrom resume: Int) -> (FrameRead, Int) {
        var position = 0
        guard let commandLine = Self.line(bytes, from: &position) else {
            return (bytes.count > 1024 ? .malformed("a command line longer than 1 KiB") : .incomplete, 0)
        }
        let command = String(decoding: commandLine, as: UTF8.self)
        guard Self.commands.contains(command) else {
            return (.malformed("\(command.isEmpty ? "an empty command" : "an unknown command \"\(command.prefix(40))\"")"), 0)
        }
        let escaped = version != .v1_0 && command != "CONNECT" && command != "CONNECTED"
        var headers: [ApplicationField] = []
        var repeated: [ApplicationValue] = []
        var contentLength: Int?
        while true {
            guard let line = Self.line(bytes, from: &position) else {
                return (bytes.count > Self.maxHeaderBytes ? .malformed("a \(command) header section longer than 64 KiB") : .incomplete, 0)
            }
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                return (.malformed("a header line without a colon in a \(command) frame"), 0)
            }
            guard let name = decodeHeader(line[..<colon], escaped: escaped),
                let value = decodeHeader(line[(colon + 1)...], escaped: escaped)
            else { return (.malformed("an undefined escape sequence in a \(command) header"), 0) }
            // The first of repeated headers is the one that counts (STOMP 1.2, "Repeated Header Entries").
            if headers.contains(where: { $0.name == name }) {
                repeated.append(.list([.string(name), .string(value)]))
                continue
            }
            headers.append(ApplicationField(name, .string(value)))
            if name == "content-length" {
                guard let length = Int(value), length >= 0 else {
                    return (.malformed("content-length \"\(value.prefix(20))\" is not a number"), 0)
                }
                contentLength = length
            }
        }
        let bodyStart = position
        let bodyEnd: Int
        if let contentLength {
            guard contentLength <= bytes.count - bodyStart else {
                return (contentLength > Self.maxFrameBytes ? .malformed("content-length \(contentLength) past the frame bound") : .incomplete, 0)
            }
            bodyEnd = bodyStart + contentLength
            guard bodyEnd < bytes.count else { return (.incomplete, 0) }
            guard bytes[bodyEnd] == 0 else {
                return (.malformed("a \(command) body of content-length \(contentLength) not followed by NUL"), 0)
            }
        } else {
            let from = max(bodyStart, resume)
            guard let nul = bytes[from...].firstIndex(of: 0) else { return (.incomplete, bytes.count) }
            bodyEnd = nul
        }
        var fields = [ApplicationField("headers", .object(headers))]
        if !repeated.isEmpty { fields.append(ApplicationField("repeated_headers", .list(repeated))) }
        if bodyEnd > bodyStart {
            let body = UnsafeRawBufferPointer(rebasing: bytes[bodyStart..<bodyEnd])
            fields.append(ApplicationField(
                "body", UTF8Validation.isValid(body) ? .string(String(decoding: body, as: UTF8.self)) : .bytes(Array(body))))
        }
        if command == "CONNECTED", let value = headers.first(where: { $0.name == "version" })?.value, case .string(let text) = value {
            switch text {
            case "1.0": version = .v1_0
            case "1.1": version = .v1_1
            case "1.2": version = .v1_2
            default: break
            }
        }
        var errorDetail: String?
        if command == "ERROR" {
            let message = headers.first { $0.name == "message" }.flatMap { if case .string(let text) = $0.value { text } else { nil } }
            errorDetail = "STOMP ERROR" + (message.map { ": \($0.prefix(200))" } ?? "")
        }
        return (.frame(command: command, fields: fields, length: bodyEnd + 1, errorDetail: errorDetail), 0)
    }

    /// A header name or value with its escapes decoded (`\\`, `\n`, `\c`, and `\r` in 1.2); nil
    /// for an undefined escape, which STOMP 1.1+ treats as fatal.
    private func decodeHeader(_ raw: UnsafeRawBufferPointer.SubSequence, escaped: Bool) -> String? {
        guard escaped, raw.contains(UInt8(ascii: "\\")) else { return String(decoding: raw, as: UTF8.self) }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(raw.count)
        var iterator = raw.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "\\") else {
                decoded.append(byte)
                continue
            }
            switch iterator.next() {
            case UInt8(ascii: "\\"): decoded.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "n"): decoded.append(UInt8(ascii: "\n"))
            case UInt8(ascii: "c"): decoded.append(UInt8(ascii: ":"))
            case UInt8(ascii: "r") where version == .v1_2: decoded.append(UInt8(ascii: "\r"))
            default: return nil
            }
        }
        return String(decoding: decoded, as: UTF8.self)
    }

    /// The line at `position` without its EOL (`\n` or `\r\n`), moving past it; nil when no
    /// EOL has arrived yet.
    private static func line(_ bytes: UnsafeRawBufferPointer, from position: inout Int) -> UnsafeRawBufferPointer.SubSequence? {
        guard let newline = bytes[position...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        var end = newline
        if end > position, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        defer { position = newline + 1 }
        return bytes[position..<end]
    }

    /// How many bytes of end-of-lines (`\n`, `\r\n`) begin `bytes`.
    private static func leadingEndOfLines(_ bytes: UnsafeRawBufferPointer) -> Int {
        var position = 0
        while position < bytes.count {
            if bytes[position] == UInt8(ascii: "\n") {
                position += 1
            } else if bytes[position] == UInt8(ascii: "\r"), position + 1 < bytes.count, bytes[position + 1] == UInt8(ascii: "\n") {
                position += 2
            } else {
                break
            }
        }
        return position
    }
}
