import WSTapCore
import WSTapCapture
import WSTapPackets
import WSTapTCP
import WSTapHTTP
import WSTapWebSocket
import WSTapTLS
import WSTapHTTP2

/// The one place that turns each stage's findings into issues with stable codes.
/// Every code here is listed in docs/issue-codes.md.
extension Issue {
    init(_ violation: HTTPViolation, time: CaptureTimestamp, direction: StreamDirection) {
        let (severity, code, detail): (Severity, String, String) = switch violation {
        case .malformedHead(let error):
            switch error {
            case .malformedRequestLine(let line): (.error, "http-malformed", "malformed request line: \(line)")
            case .malformedStatusLine(let line): (.error, "http-malformed", "malformed status line: \(line)")
            case .malformedHeaderLine(let line): (.error, "http-malformed", "malformed header line: \(line)")
            }
        case .headTooLarge(let limit):
            (.error, "http-head-too-large", "message head exceeds \(limit) bytes; stream no longer parsed")
        case .invalidContentLength(let value):
            (.error, "http-bad-content-length", "invalid Content-Length '\(value)'; stream no longer parsed")
        case .invalidChunkedBody:
            (.error, "http-bad-chunked", "invalid chunked body; stream no longer parsed")
        case .upgradeWithoutConnectionToken:
            (.warning, "upgrade-without-connection", "Upgrade header without 'upgrade' in Connection: not an upgrade offer (RFC 9110 §7.8)")
        case .responseWithoutRequest(let status):
            (.warning, "http-unmatched-response", "response \(status) without a captured request")
        case .unsolicitedSwitch:
            (.error, "unsolicited-101", "101 Switching Protocols answers a request that offered no upgrade")
        case .switchWithoutUpgradeHeader:
            (.error, "missing-upgrade-header", "101 response without an Upgrade header")
        case .switchToUnofferedProtocol(let name):
            (.error, "unoffered-protocol", "101 switched to \(name), which the request did not offer")
        case .headUnfinished(let bytes):
            (.warning, "http-head-unfinished", "connection ended inside a message head (\(bytes) bytes): not parsed")
        case .headCut(let bytes):
            (.warning, "http-head-cut", "message head cut by \(bytes) missing bytes; its complete lines were parsed")
        case .streamGap(let bytes):
            (.warning, "http-gap", "\(bytes) bytes missing in the HTTP stream; it is no longer parsed")
        case .heldBytesOverflow(let limit):
            (.warning, "http-early-data-overflow", "client sent over \(limit) bytes before the upgrade was answered")
        case .tooManyUnansweredRequests(let limit, let byteLimit):
            (.warning, "http-unanswered-requests",
             "over \(limit) requests or \(byteLimit >> 20) MiB of request heads wait for responses (is one direction missing?); the oldest are no longer matched")
        }
        self.init(time: time, direction: direction, severity: severity, code: code, detail: detail)
    }

    init(_ violation: TLSViolation, time: CaptureTimestamp, direction: StreamDirection?) {
        let (severity, code, detail): (Severity, String, String) = switch violation {
        case .noKey:
            (.warning, "tls-no-key", "the key log has no secrets for this connection's client random: not decrypted")
        case .unsupportedCipherSuite(let name):
            (.warning, "tls-unsupported-cipher", "cipher suite \(name) is not decrypted (AES-GCM, ChaCha20-Poly1305 and, in TLS 1.2, AES-CBC with HMAC are)")
        case .handshakeNotCaptured:
            (.warning, "tls-handshake-not-captured", "TLS records without a captured ClientHello and ServerHello: the connection cannot be decrypted")
        case .recordNotAuthentic(let sequence):
            (.error, "tls-record-not-authentic", "record \(sequence) did not authenticate with the key log's secrets (wrong key or damaged bytes): not shown, and this direction is no longer decrypted")
        case .alert(let level, let description):
            (level == 2 ? .error : .info, "tls-alert", "TLS alert: \(level == 2 ? "fatal" : level == 1 ? "warning" : "level \(level)") \(TLSAlert.name(description)) (\(description))")
        case .malformedRecord(let what):
            (.error, "tls-malformed", "not a TLS record: \(what); this direction is no longer decoded")
        case .streamGap(let bytes):
            (.warning, "tls-gap", "\(bytes) bytes of TLS records missing during the handshake: this direction is no longer decrypted")
        case .resumedAfterGap(let bytes, let records):
            (.warning, "tls-gap", "\(bytes) bytes of TLS records missing (\(records) records): decryption resumed at the next record that authenticated")
        case .notResumedAfterGap(let bytes):
            (.warning, "tls-gap", "\(bytes) bytes of TLS records missing and no later record authenticated: this direction is no longer decrypted")
        case .earlyDataNotDecrypted(let records):
            (.warning, "tls-early-data", "\(records) records of TLS 1.3 0-RTT early data were skipped: early data is not decrypted")
        }
        self.init(time: time, direction: direction, severity: severity, code: code, detail: detail)
    }

    init(_ violation: HandshakeViolation, time: CaptureTimestamp) {
        let (severity, code, detail): (Severity, String, String) = switch violation {
        case .missingKey: (.error, "missing-key", "request has no Sec-WebSocket-Key")
        case .invalidKey(let key): (.error, "invalid-key", "Sec-WebSocket-Key '\(key)' is not base64 of 16 bytes")
        case .missingVersion: (.error, "missing-version", "request has no Sec-WebSocket-Version")
        case .unsupportedVersion(let version):
            (.warning, "unsupported-version", "Sec-WebSocket-Version \(version) is not 13")
        case .versionMismatch(let requested, let supported):
            (.error, "version-mismatch",
             "426 Upgrade Required: server supports version \(supported.isEmpty ? "?" : supported.joined(separator: ", ")), client asked for \(requested ?? "none")")
        case .requestNotGET(let method): (.error, "handshake-not-get", "opening handshake uses \(method), not GET")
        case .missingAccept: (.error, "missing-accept", "101 response has no Sec-WebSocket-Accept")
        case .badAccept(let received, let expected):
            (.error, "bad-accept", "Sec-WebSocket-Accept '\(received)' should be '\(expected)'")
        case .missingUpgradeHeader: (.error, "missing-upgrade-header", "101 response lacks 'Upgrade: websocket'")
        case .missingConnectionHeader: (.error, "missing-connection-header", "101 response lacks 'Connection: upgrade'")
        case .unofferedSubprotocol(let name):
            (.error, "unoffered-subprotocol", "server selected subprotocol '\(name)', which the client did not offer")
        case .multipleSubprotocols(let value):
            (.error, "multiple-subprotocols", "server selected several subprotocols: \(value)")
        case .unofferedExtension(let name):
            (.error, "unoffered-extension", "server accepted extension \(name), which the client did not offer")
        case .rejected(let status, let reason):
            (.info, "upgrade-rejected", "server answered the WebSocket upgrade with \(status)" + (reason.isEmpty ? "" : " \(reason)"))
        case .notExtendedConnect(let method, let upgrade):
            (.error, "not-extended-connect",
             "WebSocket over HTTP/2 needs :method CONNECT with :protocol websocket (RFC 8441 §4), not \(method ?? "no :method") with \(upgrade ?? "no :protocol")")
        case .missingPseudoHeader(let name):
            (.error, "missing-pseudo-header", "extended CONNECT without \(name) (RFC 8441 §4)")
        case .connectProtocolNotEnabled:
            (.error, "connect-protocol-not-enabled",
             "extended CONNECT before the server's SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441 §3)")
        }
        let direction: StreamDirection = switch violation {
        case .missingKey, .invalidKey, .missingVersion, .unsupportedVersion, .requestNotGET, .notExtendedConnect,
             .missingPseudoHeader, .connectProtocolNotEnabled: .clientToServer
        default: .serverToClient
        }
        self.init(time: time, direction: direction, severity: severity, code: code, detail: detail)
    }

    init(_ violation: FrameViolation, time: CaptureTimestamp, direction: StreamDirection) {
        let (severity, code, detail): (Severity, String, String) = switch violation {
        case .unmaskedClientFrame: (.error, "unmasked-client-frame", "client frame is not masked (RFC 6455 §5.1)")
        case .maskedServerFrame: (.error, "masked-server-frame", "server frame is masked (RFC 6455 §5.1)")
        case .reservedOpcode(let opcode): (.error, "reserved-opcode", "frame uses reserved opcode 0x\(String(opcode, radix: 16))")
        case .reservedBitsWithoutExtension(let rsv):
            (.error, "rsv-without-extension", "RSV bits \(rsv) set without a negotiated extension that defines them")
        case .compressedBitMisplaced(let opcode):
            (.error, "rsv1-misplaced", "RSV1 set on a \(opcode) frame; only a message's first frame may carry it (RFC 7692 §6)")
        case .controlFrameTooLong(let length): (.error, "control-frame-too-long", "control frame payload of \(length) bytes exceeds 125")
        case .fragmentedControlFrame: (.error, "fragmented-control-frame", "control frame without FIN")
        case .nonMinimalLength(let length): (.warning, "non-minimal-length", "payload length \(length) not in its shortest encoding")
        case .lengthTopBitSet: (.error, "length-top-bit-set", "64-bit payload length has its most significant bit set")
        case .continuationWithoutStart: (.error, "continuation-without-start", "continuation frame without a message to continue")
        case .newMessageInsideFragmented:
            (.error, "message-inside-fragmented", "new data frame while a fragmented message was open; the open message is lost")
        case .invalidUTF8Text: (.error, "invalid-utf8", "text message is not valid UTF-8")
        case .invalidUTF8CloseReason: (.error, "invalid-utf8-close-reason", "close reason is not valid UTF-8")
        case .invalidCloseCode(let code): (.error, "invalid-close-code", "close code \(code) may not be sent on the wire")
        case .closePayloadTooShort: (.error, "close-payload-too-short", "close frame payload of 1 byte")
        case .dataAfterClose(let opcode): (.error, "data-after-close", "\(opcode) frame after this side's close frame")
        case .payloadNotKept(let length, let kept):
            (.warning, "payload-not-kept", "frame payload of \(length) bytes exceeds the limit; first \(kept) bytes kept")
        case .messageTooLarge(let limit): (.warning, "message-too-large", "message exceeds the \(limit)-byte limit; truncated")
        case .payloadMissing(let bytes): (.warning, "payload-missing", "\(bytes) bytes of a frame payload were not captured")
        case .lostSynchronization(let bytes):
            (.warning, "websocket-desync", "\(bytes) bytes missing across a frame boundary; searching for the next frame")
        case .decompressionFailed(let reason):
            (.error, "decompress-failed", "permessage-deflate message could not be inflated: \(reason)")
        case .decompressedTooLarge(let produced, let limit):
            (.warning, "decompressed-too-large", "message inflates to \(produced) bytes, over the \(limit)-byte limit; first \(limit) kept")
        case .compressionContextLost:
            (.error, "deflate-context-lost", "compressed message depends on an earlier part of the stream that is missing; not decoded")
        case .undecodableBytes(let bytes):
            (.warning, "websocket-undecoded-bytes", "\(bytes) bytes at the end of the stream hold no recognisable frame")
        case .compressedMessageIncomplete:
            (.error, "decompress-failed", "compressed message has missing bytes and cannot be inflated")
        }
        self.init(time: time, direction: direction, severity: severity, code: code, detail: detail)
    }

    init(_ violation: DeflateNegotiationViolation, time: CaptureTimestamp) {
        let (code, detail): (String, String) = switch violation {
        case .unknownParameter(let name): ("deflate-bad-parameter", "permessage-deflate accepted with unknown parameter '\(name)'")
        case .duplicateParameter(let name): ("deflate-bad-parameter", "permessage-deflate parameter '\(name)' appears twice")
        case .invalidValue(let name, let value): ("deflate-bad-parameter", "permessage-deflate parameter \(name)='\(value)' is invalid")
        case .unofferedParameter(let name): ("deflate-unoffered-parameter", "server sent '\(name)', which the client did not offer")
        }
        self.init(time: time, direction: .serverToClient, severity: .error, code: code, detail: detail)
    }

    static func tcpGap(_ range: MissingRange, time: CaptureTimestamp, direction: StreamDirection) -> Issue {
        let end = range.startSequence &+ UInt32(truncatingIfNeeded: range.byteCount)
        return Issue(time: time, direction: direction, severity: .warning, code: "tcp-gap",
                     detail: "\(range.byteCount) bytes not captured (sequence \(range.startSequence)-\(end))")
    }

    /// The JSON exporter could not move rendered lists to a temporary file: they stay in memory.
    public static func jsonSpoolUnavailable(_ reason: String) -> Issue {
        Issue(time: nil, direction: nil, severity: .warning, code: "json-spool-unavailable",
              detail: "no temporary file in $TMPDIR or /tmp (\(reason)): the JSON document was held in memory; set TMPDIR to a writable directory, or use --format ndjson")
    }

    /// Decompressed payloads outgrew what JSON/NDJSON show by default (the capture's frame bytes
    /// times `multiple`, plus `headroom`): the messages past it were shown cut.
    public static func inflatedPayloadsCut(messages: Int, headroom: UInt64, multiple: UInt64) -> Issue {
        Issue(time: nil, direction: nil, severity: .warning, code: "inflated-payloads-cut",
              detail: "\(messages) decompressed messages shown cut (marked truncated): decompressed payloads past \(headroom >> 20) MiB plus \(multiple) times the capture's frame bytes are not shown unless --max-payload is given")
    }

    static func keyLogLineMalformed(_ line: KeyLog.MalformedLine, path: String) -> Issue {
        Issue(time: nil, direction: nil, severity: .warning, code: "tls-key-log-malformed",
              detail: "\(path) line \(line.number): \(line.reason); the line is skipped, the rest is used")
    }

    static func keyLogTooLarge(_ lines: Int, path: String) -> Issue {
        Issue(time: nil, direction: nil, severity: .warning, code: "tls-key-log-too-large",
              detail: "\(path) has secrets for more than \(KeyLog.maxConnections) connections: \(lines) lines past that were skipped")
    }

    static func keyLogLinesMalformed(_ count: Int, path: String) -> Issue {
        Issue(time: nil, direction: nil, severity: .warning, code: "tls-key-log-malformed",
              detail: "\(path): \(count) more malformed lines skipped")
    }

    /// A streaming timeline could not write every event in time order (its reorder window was
    /// too short or too small): one capture-level report at the end.
    public static func timelineOutOfOrder(events: Int, worstNanoseconds: Int64, window: String) -> Issue {
        let worst = Double(worstNanoseconds) / 1e9
        return Issue(time: nil, direction: nil, severity: .warning, code: "timeline-out-of-order",
                     detail: "\(events) events written after a later one (at most \(worst) s earlier): they arrived later than the reorder window (\(window)) allows")
    }

    static func snaplenTruncated(bytes: UInt64, time: CaptureTimestamp, direction: StreamDirection) -> Issue {
        Issue(time: time, direction: direction, severity: .warning, code: "snaplen-truncated",
              detail: "packets cut by the capture's snapshot length (\(bytes) bytes missing here); later cuts on this connection are counted in totals.missing_bytes, not reported again")
    }

    static func retransmissionConflict(sequence: UInt32, bytes: Int, time: CaptureTimestamp, direction: StreamDirection) -> Issue {
        Issue(time: time, direction: direction, severity: .warning, code: "retransmission-conflict",
              detail: "retransmission of \(bytes) bytes at sequence \(sequence) differs from the first transmission, which was kept")
    }

    static func framesAfterFailedHandshake(time: CaptureTimestamp, direction: StreamDirection) -> Issue {
        Issue(time: time, direction: direction, severity: .error, code: "frames-after-failed-handshake",
              detail: "WebSocket frames follow a handshake the client had to fail; decoded anyway")
    }

    static func unsupportedExtension(_ name: String, time: CaptureTimestamp) -> Issue {
        Issue(time: time, direction: .serverToClient, severity: .warning, code: "unsupported-extension",
              detail: "extension '\(name)' was negotiated; wstap does not decode it, so frames are shown but messages are not decoded")
    }

    static func resynchronized(skippedBytes: UInt64, afterLoss: Bool, time: CaptureTimestamp, direction: StreamDirection) -> Issue {
        Issue(time: time, direction: direction, severity: afterLoss ? .warning : .info, code: "websocket-resync",
              detail: afterLoss
                ? "frames found again after the gap; \(skippedBytes) bytes in between could not be decoded"
                : "frames recognised without the handshake; \(skippedBytes) bytes before the first frame skipped")
    }

    static func handshakeNotCaptured(detection: WebSocketDetection, time: CaptureTimestamp) -> Issue {
        Issue(time: time, direction: nil, severity: .info, code: "handshake-not-captured",
              detail: detection == .port
                ? "WebSocket by --websocket-port: the opening handshake is not in the capture"
                : "WebSocket recognised from frame structure: the opening handshake is not in the capture")
    }

    /// A breach of HTTP/2 framing, or what could not be decoded (RFC 9113).
    static func http2(_ violation: HTTP2Violation, time: CaptureTimestamp, direction: StreamDirection) -> Issue {
        let (severity, code, detail): (Severity, String, String) = switch violation {
        case .frameTooLarge(let length, let limit):
            (.error, "http2-frame-too-large", "a frame of \(length) bytes, over the \(limit) SETTINGS_MAX_FRAME_SIZE allows: frames are searched for after it and HPACK starts afresh")
        case .malformedFrame(let type, let what): (.error, "http2-malformed-frame", "\(type) frame \(what)")
        case .headerBlockUndecodable(let stream, let why):
            (.error, "http2-hpack-failed", "the header block of stream \(stream) could not be decoded (\(why)): HPACK starts afresh, and later blocks that refer to entries lost with it are not decoded either")
        case .continuationExpected(let type): (.error, "http2-continuation-expected", "a \(type) frame inside a header block, where CONTINUATION must follow")
        case .bytesLost(let bytes):
            (.warning, "http2-gap", "\(bytes) bytes of HTTP/2 frames missing across frame boundaries: frames are searched for again and HPACK starts afresh")
        case .framesFound(let skipped):
            (.info, "http2-frames-found", "HTTP/2 frames found again after the gap; \(skipped) bytes in between could not be decoded")
        case .flowControlExceeded(let stream, let window, let length):
            (.warning, "http2-flow-control", "DATA of \(length) bytes on stream \(stream) exceeds the \(window)-byte flow-control window its receiver granted (RFC 9113 §6.9); later DATA in this direction is not checked")
        }
        return Issue(time: time, direction: direction, severity: severity, code: code, detail: detail)
    }

    /// What a connection's ending says is wrong, each once per connection: an abnormal closure
    /// (RFC 6455 §7.1.5), a reset, a Close nobody answered, a close code that reports an error,
    /// pings without pongs.
    /// `carrier` names what was reset: TCP for a connection, the HTTP/2 stream for one of its streams.
    static func endingFindings(_ ending: ConnectionEnding, time: CaptureTimestamp, carrier: String) -> [Issue] {
        guard let closing = ending.websocket else { return [] }
        var issues: [Issue] = []
        func closer(_ direction: StreamDirection) -> String { direction == .clientToServer ? "client" : "server" }
        switch ending.outcome {
        case .abnormalClosure:
            issues.append(Issue(time: time, direction: nil, severity: .error, code: "abnormal-closure",
                                detail: "TCP ended without a Close frame from either side: close code 1006, abnormal closure (RFC 6455 §7.1.5)"))
        case .reset:
            issues.append(Issue(time: time, direction: nil, severity: .error, code: "connection-reset",
                                detail: closing.closedFirst == .none
                                    ? "\(carrier) was reset with no Close frame from either side (close code 1006)"
                                    : "\(carrier) was reset after the \(closing.closedFirst.rawValue)'s Close, before the close handshake completed"))
        case .closeUnanswered:
            let first: StreamDirection = closing.closedFirst == .client ? .clientToServer : .serverToClient
            let code = closing.closes[first]?.code.map { String($0.rawValue) } ?? "no status code"
            issues.append(Issue(time: time, direction: first, severity: .warning, code: "close-unanswered",
                                detail: "the \(closer(first)) sent Close (\(code)) and the \(closer(first.reversed)) never answered before TCP ended"))
        default:
            break
        }
        for direction in StreamDirection.allCases {
            if let code = closing.closes[direction]?.code, code.reportsError {
                issues.append(Issue(time: closing.closeTimes[direction] ?? time, direction: direction, severity: .warning,
                                    code: "close-error-code",
                                    detail: "the \(closer(direction)) closed with \(code.description): the endpoint reports a failure"))
            }
            let unanswered = closing.unansweredPings[direction]
            if unanswered > 0 {
                issues.append(Issue(time: time, direction: direction, severity: .warning, code: "pings-unanswered",
                                    detail: "\(unanswered) ping\(unanswered == 1 ? "" : "s") from the \(closer(direction)) got no pong"))
            }
        }
        return issues
    }

    static func truncatedCapture(_ message: String) -> Issue {
        Issue(time: nil, direction: nil, severity: .error, code: "truncated-capture", detail: message)
    }
}
