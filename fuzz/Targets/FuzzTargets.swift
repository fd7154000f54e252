// libFuzzer entry points for every stage that reads capture bytes (issue 14).
//
// Built only by fuzz/run.py (WSTAP_FUZZ=1 adds this target to the package), with
// `-sanitize=fuzzer,address`; libFuzzer provides `main`. One binary holds every target; the
// environment variable WSTAP_FUZZ_TARGET chooses which one runs. Each target checks more than
// "no crash" where a property is known (the frame decoder's output does not depend on how its
// input is cut).

import Foundation
import WSTap
import WSTapOutput
import WSTapCore
import WSTapCapture
import WSTapPackets
import WSTapTCP
import WSTapHTTP
import WSTapTLS
import WSTapApplication
import WSTapHTTP2
@testable import WSTapWebSocket

/// A target: one blob in, a trap on any broken property.
typealias FuzzTarget = @Sendable (UnsafeRawBufferPointer) -> Void

let targets: [String: FuzzTarget] = [
    "capture-reader": fuzzCaptureReader,
    "packet-decoder": fuzzPacketDecoder,
    "tcp-reassembly": fuzzTCPReassembly,
    "http-head": fuzzHTTPHead,
    "frame-decoder": fuzzFrameDecoder,
    "inflate": fuzzInflate,
    "pipeline": fuzzPipeline,
    "tls": fuzzTLS,
    "app-json": fuzzApplicationJSON,
    "app-brokers": fuzzBrokerProtocols,
    "http2": fuzzHTTP2,
    "grep-pattern": fuzzGrepPattern,
    "key-log": fuzzKeyLog,
]

nonisolated(unsafe) var selectedTarget: FuzzTarget?

/// libFuzzer's driver (the runtime `-sanitize=fuzzer` links in).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The target WSTAP_FUZZ_TARGET names; exits with the list of targets when it names none.
func chosenTarget() -> FuzzTarget {
    let name = ProcessInfo.processInfo.environment["WSTAP_FUZZ_TARGET"] ?? ""
    guard let target = targets[name] else {
        FileHandle.standardError.write(Data("set WSTAP_FUZZ_TARGET to one of: \(targets.keys.sorted().joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return target
}

/// The executable's entry point in a release build (SwiftPM names it after the module): chooses
/// the target, then hands the command line to libFuzzer.
@_cdecl("wstap_fuzz_main")
public func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    selectedTarget = chosenTarget()
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments) { data, size in
        fuzzOneInput(data, size)
    }
}

/// libFuzzer's own entry point: a debug build links libFuzzer's `main`, which calls it directly.
/// The target is chosen once and never stored again: storing the closure read back from the
/// global wrapped it in one more reabstraction thunk per input, so each input went through all
/// the earlier ones (runs slowed down, and after about 32,000 the stack overflowed).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    if selectedTarget == nil { selectedTarget = chosenTarget() }
    selectedTarget!(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

// MARK: - Reading the blob

/// Takes values off the front of a blob: the fuzzer's choices (cuts, flags), then data.
struct BlobReader {
    var rest: UnsafeRawBufferPointer

    var isEmpty: Bool { rest.isEmpty }

    mutating func byte() -> UInt8 {
        guard let first = rest.first else { return 0 }
        rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst())
        return first
    }

    mutating func word() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }

    mutating func bytes(_ count: Int) -> UnsafeRawBufferPointer {
        let taken = UnsafeRawBufferPointer(rebasing: rest.prefix(count))
        rest = UnsafeRawBufferPointer(rebasing: rest.dropFirst(taken.count))
        return taken
    }
}

// MARK: - Capture files

/// Where blobs read as capture files are written (the readers take a path, as the CLI does).
let scratchPath = "/dev/shm/wstap-fuzz-\(getpid()).cap"

func withBlobAsFile(_ blob: UnsafeRawBufferPointer, _ body: (String) -> Void) {
    let descriptor = open(scratchPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(descriptor >= 0, "cannot write \(scratchPath)")
    var written = 0
    while written < blob.count {
        let count = write(descriptor, blob.baseAddress! + written, blob.count - written)
        precondition(count > 0)
        written += count
    }
    close(descriptor)
    body(scratchPath)
}

/// The capture readers (libpcap for the file header, our pcap record and pcapng block readers):
/// every packet they yield lies inside the file and claims no more than its original length.
func fuzzCaptureReader(_ blob: UnsafeRawBufferPointer) {
    withBlobAsFile(blob) { path in
        guard let reader = try? CaptureFileReader(path: path) else { return }
        var packets = 0
        while packets <= blob.count {
            guard case .packet(let packet)? = try? reader.nextPacket() else { return }
            precondition(packet.bytes.count <= blob.count, "a packet larger than the file")
            packets += 1
        }
        preconditionFailure("more packets than bytes in the file")
    }
}

/// The whole pipeline on a blob read as a capture, with every output format rendered (text with
/// every option, JSON, NDJSON, HAR, HTML, stats, follow).
func fuzzPipeline(_ blob: UnsafeRawBufferPointer) {
    withBlobAsFile(blob) { path in
        for format in 0..<7 {
            guard let reader = try? CaptureFileReader(path: path) else { return }
            let output = OutputChannel(inMemory: ())
            let sink: any TimelineSink
            switch format {
            case 0: sink = JSONExporter(output: output, maxPayload: nil)
            case 1: sink = NDJSONExporter(output: output, maxPayload: 64)
            case 2: sink = HARExporter(output: output)
            case 3: sink = HTMLReportExporter(output: output)
            case 4: sink = StatisticsCollector { output.write(StatisticsReport.table($0) + StatisticsReport.json($0)) }
            case 5:
                output.timeOrder = .file
                sink = FollowExporter(output: output, selector: .connection(1), pretty: true)
            default:
                output.timeOrder = .file
                var style = TextStyle()
                style.verbose = true
                style.prettyJSON = true
                style.packetNumbers = true
                style.colors = true
                sink = TextExporter(output: output, style: style)
            }
            var options = AnalyzerOptions()
            if blob.first.map({ $0 & 1 == 1 }) ?? false { options.websocketPorts = [8080, 80, 18100] }
            options.maxPayloadBytes = 1 << 16
            _ = analyze(reader, with: Analyzer(options: options, sink: sink))
            output.flush()
        }
    }
}

// MARK: - Packets

/// The packet decoder on one record of each link type the first byte names, and the IP
/// fragment reassembler on the fragments it finds.
func fuzzPacketDecoder(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    let linkTypes: [LinkType] = [.ethernet, .null, .raw, .loop, .linuxSLL, .linuxSLL2, .ipv4, .ipv6, .linkTypeRaw, .rawOpenBSD]
    let linkType = linkTypes[Int(reader.byte()) % linkTypes.count]
    let reassembler = IPFragmentReassembler(maxDatagrams: 8, maxHeldBytes: 1 << 16, timeoutSeconds: 30)
    var index: Int64 = 0
    while !reader.isEmpty {
        let record = reader.bytes(Int(reader.word()))
        let packet = CapturedPacket(
            timestamp: CaptureTimestamp(seconds: index, nanoseconds: 0), linkType: linkType,
            bytes: record, originalLength: record.count + Int(reader.byte() & 3))
        index += 1
        switch PacketDecoder.decode(packet) {
        case .tcp(let segment):
            precondition(segment.payload.count <= record.count, "a payload larger than its packet")
        case .fragment(let fragment):
            reassembler.add(fragment, at: packet.timestamp) { datagram in
                _ = PacketDecoder.decodeReassembled(
                    protocolNumber: fragment.protocolNumber, payload: datagram,
                    source: fragment.source, destination: fragment.destination)
            }
        case .skipped:
            break
        }
    }
}

// MARK: - TCP

/// Counts what the reassembler delivers, and checks it against what went in.
final class StreamTally: TCPConnectionObserver, TCPStreamHandler {
    var delivered = 0
    var connections = 0
    func connectionOpened(_ connection: TCPConnectionInfo, at time: CaptureTimestamp) -> any TCPStreamHandler {
        connections += 1
        return self
    }
    func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) {
        delivered += bytes.count
    }
    func missing(_ range: MissingRange, direction: StreamDirection, at time: CaptureTimestamp) {}
    func conflictingRetransmission(startSequence: UInt32, byteCount: Int, direction: StreamDirection, at time: CaptureTimestamp) {}
    func finished(direction: StreamDirection, at time: CaptureTimestamp) {}
    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) {}
}

/// TCP reassembly fed arbitrary segment sequences between two pairs of endpoints: each record
/// is flags, direction, a sequence offset, a time step and a payload. The reassembler never
/// delivers more bytes than the segments carried.
func fuzzTCPReassembly(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    var limits = ReassemblyLimits()
    limits.maxPendingBytesPerDirection = 1 << 12
    limits.maxPendingBytesTotal = 1 << 14
    limits.maxConnections = 3
    limits.idleTimeoutSeconds = 60
    let tally = StreamTally()
    let table = ConnectionTable(limits: limits, observer: tally)
    let hosts = [Endpoint(address: .v4(0x7F00_0001), port: 40000), Endpoint(address: .v4(0x7F00_0001), port: 8080),
                 Endpoint(address: .v6(high: 0, low: 1), port: 40001), Endpoint(address: .v6(high: 0, low: 1), port: 80)]
    let initial: [UInt32] = [0xFFFF_FF00, 1000, 0x7FFF_FFF0, 0]
    var seconds: Int64 = 0
    var fed = 0
    while !reader.isEmpty {
        let flags = TCPFlags(rawValue: reader.byte() & 0x3F)
        let choice = Int(reader.byte())
        let pair = (choice >> 1) & 1
        let fromClient = choice & 1 == 0
        let source = hosts[pair * 2 + (fromClient ? 0 : 1)]
        let destination = hosts[pair * 2 + (fromClient ? 1 : 0)]
        let offset = UInt32(reader.word()) &* UInt32(1 + (choice >> 2 & 7))
        seconds += Int64(reader.byte() >> 4) * (choice & 0x80 != 0 ? 30 : 1)
        let payload = reader.bytes(Int(reader.byte()))
        fed += payload.count
        let segment = TCPSegment(
            source: source, destination: destination,
            sequenceNumber: initial[pair * 2 + (fromClient ? 0 : 1)] &+ offset, acknowledgmentNumber: 0,
            flags: flags, window: 1024, payload: payload, missingPayloadLength: choice & 0x40 != 0 ? 7 : 0)
        table.process(segment, at: CaptureTimestamp(seconds: seconds, nanoseconds: 0))
    }
    table.finish(at: CaptureTimestamp(seconds: seconds + 1, nanoseconds: 0))
    precondition(tally.delivered <= fed, "delivered \(tally.delivered) bytes of \(fed) fed")
}

// MARK: - HTTP

/// The head parser on the blob as one request and one response head, then the conversation
/// state machine on the blob cut into alternating directions at the places its bytes say.
func fuzzHTTPHead(_ blob: UnsafeRawBufferPointer) {
    // A request head up to the first NUL byte, a response head after it, and the handshake checks.
    let bytes = Array(blob)
    let split = bytes.firstIndex(of: 0) ?? bytes.count
    if let request = try? HTTPHeadParser.parseRequest(Array(bytes[..<split])) {
        let response = split < bytes.count ? try? HTTPHeadParser.parseResponse(Array(bytes[(split + 1)...])) : nil
        _ = HandshakeValidator.validate(request: request, response: response)
    }
    var reader = BlobReader(rest: blob)
    var conversation = HTTPConversation()
    var direction = StreamDirection.clientToServer
    var events = 0
    let count: (HTTPEvent) -> Void = { _ in events += 1 }
    while !reader.isEmpty {
        let step = reader.byte()
        if step == 0xFF {
            conversation.missing(MissingBytes(UInt64(reader.word()), cause: .notCaptured), direction: direction, at: .zero, emit: count)
        } else {
            conversation.receive(reader.bytes(Int(step) * 4 + 1), direction: direction, at: .zero, emit: count)
        }
        if step & 1 == 1 { direction = direction.reversed }
    }
    conversation.finish(direction: .clientToServer, at: .zero, emit: count)
    conversation.finish(direction: .serverToClient, at: .zero, emit: count)
}

// MARK: - WebSocket

/// A payload's length and FNV-1a hash: enough to tell two payloads apart, cheap on large ones.
func fingerprint(_ bytes: UnsafeRawBufferPointer) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return "\(bytes.count)/\(hash)"
}

/// What a decoder emitted, in a form that can be compared: headers, payloads, verdicts.
func describe(_ event: WebSocketStreamEvent) -> String {
    switch event.event {
    case .frame(let frame, let close):
        return "frame \(frame.header) \(fingerprint(frame.payload)) not-kept \(frame.bytesNotKept) missing \(frame.bytesMissing) \(String(describing: close))"
    case .message(let message):
        return "message \(message.opcode) \(fingerprint(message.payload)) \(message.frameCount) \(message.isComplete) \(message.isDecoded) \(String(describing: message.isValidUTF8))"
    case .violation(let violation):
        return "violation \(violation)"
    case .resynchronized(let skipped, let role):
        return "resynchronized \(skipped) \(role)"
    }
}

/// The frame decoder (with message assembly and permessage-deflate) on a stream cut at
/// arbitrary places. In step with the stream, its events must not depend on the cuts: the same
/// bytes decoded whole and cut give the same events. Searching (a mid-stream start) may decide
/// differently with fewer bytes in hand, so there only "no crash" is checked.
func fuzzFrameDecoder(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    let settings = reader.byte()
    let cuts = reader.bytes(8)
    let stream = reader.rest
    let role: WebSocketRole? = settings & 3 == 0 ? nil : settings & 1 == 1 ? .client : .server
    let compressed = settings & 4 != 0
    let synchronized = settings & 8 == 0
    var parameters = PerMessageDeflateParameters()
    parameters.clientNoContextTakeover = settings & 16 != 0
    parameters.serverNoContextTakeover = settings & 16 != 0
    func decoder() -> WebSocketStreamDecoder {
        WebSocketStreamDecoder(
            direction: .clientToServer, role: role ?? (synchronized ? .client : nil),
            allowedReservedBits: compressed ? 4 : 0,
            compression: compressed ? .perMessageDeflate(parameters) : .none,
            maxPayloadBytes: settings & 32 != 0 ? 300 : 1 << 16, synchronized: synchronized)
    }
    var whole: [String] = []
    let wholeDecoder = decoder()
    wholeDecoder.receive(stream) { whole.append(describe($0)) }
    wholeDecoder.finish { whole.append(describe($0)) }

    var pieces: [String] = []
    let cutDecoder = decoder()
    var start = 0
    var cutIndex = 0
    while start < stream.count {
        let length = cuts.isEmpty ? stream.count : Int(cuts[cutIndex % cuts.count]) + 1
        cutIndex += 1
        let end = min(stream.count, start + length)
        cutDecoder.receive(UnsafeRawBufferPointer(rebasing: stream[start..<end])) { pieces.append(describe($0)) }
        start = end
    }
    cutDecoder.finish { pieces.append(describe($0)) }
    if synchronized {
        precondition(whole == pieces, "events depend on the cuts:\n\(whole)\n---\n\(pieces)")
    }
}

/// Inflate (permessage-deflate's raw DEFLATE with the kept window) on messages cut from the
/// blob: output never passes the limit, and a failed or capped message leaves the next usable.
func fuzzInflate(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    let inflater = RawInflater(budget: InflaterBudget(maxContexts: 1))
    while !reader.isEmpty {
        let control = reader.byte()
        if control & 0x80 != 0 { inflater.reset() }
        let limit = Int(control & 0x7F) * 512 + 1
        let message = reader.bytes(Int(reader.word()))
        _ = inflater.inflateMessage(message, limit: limit)
        precondition(inflater.output.count <= limit, "inflate passed its limit")
        if control & 0x40 != 0 { inflater.releaseLargeOutput(above: 256) }
    }
}

// MARK: - TLS

/// A key log whose secrets match the fuzzer's client random (all zero bytes but the first), so
/// that records get as far as the AEAD and CBC checks.
let fuzzKeyLog = KeyLog(text: """
    CLIENT_RANDOM \(String(repeating: "00", count: 32)) \(String(repeating: "11", count: 48))
    CLIENT_HANDSHAKE_TRAFFIC_SECRET \(String(repeating: "00", count: 32)) \(String(repeating: "22", count: 32))
    SERVER_HANDSHAKE_TRAFFIC_SECRET \(String(repeating: "00", count: 32)) \(String(repeating: "33", count: 32))
    CLIENT_TRAFFIC_SECRET_0 \(String(repeating: "00", count: 32)) \(String(repeating: "44", count: 32))
    SERVER_TRAFFIC_SECRET_0 \(String(repeating: "00", count: 32)) \(String(repeating: "55", count: 32))
    """)

/// The TLS decoder on two directions cut from the blob (a direction byte and a length before
/// each piece), with a key log whose client random a fuzzed ClientHello can carry: records,
/// hellos, key schedules, record protection, the hold for a live key log.
func fuzzTLS(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    let live = reader.byte() & 1 == 1
    var decoder = TLSConnectionDecoder(keyLog: fuzzKeyLog, waitsForKeys: live)
    var plaintextBytes = 0
    let count: (TimedTLSEvent) -> Void = { timed in
        if case .plaintext(let bytes, _) = timed.event { plaintextBytes += bytes.count }
    }
    let fed = feed(&decoder, from: &reader, emit: count)
    precondition(plaintextBytes <= fed, "more plaintext than record bytes")
}

// MARK: - Application messages and HTTP/2 (issues 28, 29)

/// The JSON scanner and the JSON-based message decoders (GraphQL both flavours, JSON-RPC, plain
/// JSON) on messages cut from the blob (a direction byte and a length before each): the scanner
/// either accepts or names a byte inside the text, and the scanner's members lie inside it.
func fuzzApplicationJSON(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    let decoders: [any MessageDecoder] = [
        GraphQLDecoder(.transportWS), GraphQLDecoder(.subscriptionsTransportWS), JSONRPCDecoder(), PlainJSONDecoder(),
        SocketIODecoder(),
    ]
    var index: [UInt64] = [0, 0]
    while !reader.isEmpty {
        let direction: StreamDirection = reader.byte() & 1 == 0 ? .clientToServer : .serverToClient
        let message = reader.bytes(Int(reader.word()))
        if let error = JSONScanner.validate(message) { precondition(error.offset <= message.count, "an error past the text") }
        if case .success(let members?) = JSONScanner.members(message) {
            for member in members { precondition(member.range.upperBound <= message.count, "a member past the text") }
        }
        let input = ApplicationInput(
            direction: direction, index: index[direction.rawValue], isText: true, payload: message, isComplete: true, time: .zero)
        index[direction.rawValue] += 1
        for decoder in decoders { decoder.receive(input) { _ in } }
    }
}

/// The STOMP (each version) and MQTT decoders on messages cut from the blob (a control byte and a
/// length before each: bit 0 the direction, bit 1 text, bit 2 bytes lost before it): frames and
/// packets that span messages, share them, claim lengths past them, or never end.
func fuzzBrokerProtocols(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    let decoders: [any MessageDecoder] = [STOMPDecoder(version: .v1_0), STOMPDecoder(version: .v1_2), MQTTDecoder()]
    var index: [UInt64] = [0, 0]
    var units = 0
    let count: (ApplicationOutput) -> Void = { output in
        if case .message(let message) = output {
            precondition(!message.messages.isEmpty, "an application message from no WebSocket message")
            units += 1
        }
    }
    while !reader.isEmpty {
        let control = reader.byte()
        let direction: StreamDirection = control & 1 == 0 ? .clientToServer : .serverToClient
        let message = reader.bytes(Int(reader.word()))
        if control & 4 != 0 { for decoder in decoders { decoder.missing(direction: direction, emit: count) } }
        let input = ApplicationInput(
            direction: direction, index: index[direction.rawValue], isText: control & 2 != 0, payload: message, isComplete: true,
            time: .zero)
        index[direction.rawValue] += 1
        for decoder in decoders { decoder.receive(input, emit: count) }
    }
    for decoder in decoders { decoder.finish(at: .zero, emit: count) }
}

/// The HTTP/2 frame layer and HPACK on both directions cut from the blob (a direction byte and a
/// length before each piece; 0xFF: bytes lost): frames, padding, header blocks and their
/// CONTINUATIONs, SETTINGS that change the limits, a HPACK table fed anything.
func fuzzHTTP2(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    var layer = HTTP2FrameLayer(expectsPreface: reader.byte() & 1 == 1)
    var dataBytes = 0
    let count: ((HTTP2Event, StreamDirection)) -> Void = { event in
        if case .data(_, let bytes, _) = event.0 { dataBytes += bytes.count }
    }
    let fed = feed(&layer, from: &reader, emit: count)
    precondition(dataBytes <= fed, "more DATA bytes than were fed")
}

/// Feeds `parser` both directions cut from the blob (before each piece a direction byte, 0xFF for
/// bytes lost with their count, and a length), then ends both; returns the bytes fed.
func feed<Parser: StreamParser>(_ parser: inout Parser, from reader: inout BlobReader, emit: (Parser.Event) -> Void) -> Int {
    var fed = 0
    while !reader.isEmpty {
        let control = reader.byte()
        let direction: StreamDirection = control & 1 == 0 ? .clientToServer : .serverToClient
        if control == 0xFF {
            parser.missing(MissingBytes(UInt64(reader.word()), cause: .notCaptured), direction: direction, at: .zero, emit: emit)
            continue
        }
        let piece = reader.bytes(Int(reader.word()))
        fed += piece.count
        parser.receive(piece, direction: direction, at: .zero, emit: emit)
    }
    for direction in StreamDirection.allCases { parser.finish(direction: direction, at: .zero, emit: emit) }
    return fed
}

/// `--grep`'s matcher: a pattern (its length in the first byte) compiled, then matched against the
/// rest of the blob as text: it compiles or refuses, never traps, and keeps its program bounded.
func fuzzGrepPattern(_ blob: UnsafeRawBufferPointer) {
    var reader = BlobReader(rest: blob)
    let pattern = String(decoding: reader.bytes(Int(reader.byte())), as: UTF8.self)
    let text = String(decoding: reader.rest, as: UTF8.self)
    guard let compiled = try? TextPattern(pattern) else { return }
    _ = compiled.matches(text)
    _ = compiled.matches("")
}

/// The key-log parser on the blob as a key log: every line a secret, a skipped label or a counted
/// malformed line, with the kept examples bounded.
func fuzzKeyLog(_ blob: UnsafeRawBufferPointer) {
    let keyLog = KeyLog(text: String(decoding: blob, as: UTF8.self))
    let lines = blob.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    precondition(keyLog.malformedLineCount <= lines, "more malformed lines than lines")
    precondition(keyLog.malformedLines.count <= keyLog.malformedLineCount)
    precondition(keyLog.count <= lines, "more secrets than lines")
}
