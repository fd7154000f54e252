import WSTapCore

/// MQTT 3.1, 3.1.1 and 5 over WebSocket (`mqtt`, `mqttv3.1`): every control packet with its
/// packet id, topic, QoS, retain and dup flags, reason codes, properties (5) and payload. Packets
/// are read from each direction's bytes, so one may span messages and several may share one. The
/// version is the client's `CONNECT` says (3.1.1 until one is seen). Refusals and failure reason
/// codes are findings (`mqtt-refused`, `mqtt-error`).
public final class MQTTDecoder: MessageDecoder {
    private var streams = DirectionPair(MessageByteStream(limit: MQTTDecoder.maxPacketBytes + 5))
    /// Protocol level from the client's CONNECT: 3 (3.1), 4 (3.1.1) or 5.
    private var level: UInt8 = 4
    /// MQTT 5 topic aliases, per direction of the PUBLISH that set them: bounded by the peer's
    /// Topic Alias Maximum, at most 65,535 each.
    private var topicAliases = DirectionPair<[UInt16: String]>([:])
    /// A packet longer than this is reported and skipped, not held.
    static let maxPacketBytes = 16 << 20
    /// Per direction: bytes of an over-long packet still to skip.
    private var skipping = DirectionPair(0)

    public init() {}

    public func receive(_ input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        let side = input.direction
        guard input.isComplete else { return missing(direction: input.direction, emit: emit) }
        var payload = input.payload
        // Appended in pieces that fit: what is held is at most one unfinished packet.
        while !payload.isEmpty {
            if skipping[side] > 0 {
                let skipped = min(skipping[side], payload.count)
                skipping[side] -= skipped
                payload = UnsafeRawBufferPointer(rebasing: payload[skipped...])
                continue
            }
            let piece = min(payload.count, streams[side].limit - streams[side].count)
            _ = streams[side].append(UnsafeRawBufferPointer(rebasing: payload[..<piece]), index: input.index)
            payload = UnsafeRawBufferPointer(rebasing: payload[piece...])
            readPackets(side, input: input, emit: emit)
        }
    }

    /// Reads the whole packets at the front of a direction's bytes.
    private func readPackets(_ side: StreamDirection, input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        while !streams[side].isEmpty {
            switch streams[side].withBytes(Self.fixedHeader) {
            case .incomplete:
                return
            case .malformed(let what):
                emit(.finding(.malformed("mqtt", index: input.index, what), direction: input.direction))
                return streams[side].discard()
            case .header(let headerLength, let remaining):
                if remaining > Self.maxPacketBytes {
                    let first = streams[side].withBytes { $0[0] }
                    let held = streams[side].count - headerLength
                    _ = streams[side].consume(headerLength + remaining)
                    skipping[side] = remaining - held
                    emit(.finding(ApplicationFinding(
                        severity: .warning, code: "app-malformed",
                        detail: "mqtt message \(input.index): a \(Self.typeName(first >> 4, level: level)) packet of \(remaining) bytes, over the 16 MiB this tool keeps: skipped"),
                        direction: input.direction))
                    return
                }
                guard streams[side].count >= headerLength + remaining else { return }
                let packet = streams[side].withBytes { bytes in
                    read(
                        first: bytes[0], body: UnsafeRawBufferPointer(rebasing: bytes[headerLength..<headerLength + remaining]),
                        direction: input.direction)
                }
                let indices = streams[side].consume(headerLength + remaining)
                switch packet {
                case .failure(let error):
                    emit(.finding(.malformed("mqtt", index: input.index, error.what), direction: input.direction))
                case .success(let (type, fields, finding)):
                    if let finding { emit(.finding(finding, direction: input.direction)) }
                    emit(.message(ApplicationMessage(
                        protocolName: "mqtt", type: type, direction: input.direction, fields: fields, messages: indices,
                        detection: .negotiated)))
                }
            }
        }
    }

    public func missing(direction: StreamDirection, emit: (ApplicationOutput) -> Void) {
        if !streams[direction].isEmpty {
            emit(.finding(streams[direction].cutByMissingBytes("mqtt", "a packet"), direction: direction))
        }
        streams[direction].discard()
        skipping[direction] = 0
    }

    public func finish(at time: CaptureTimestamp, emit: (ApplicationOutput) -> Void) {
        for direction in [StreamDirection.clientToServer, .serverToClient] where !streams[direction].isEmpty {
            emit(.finding(streams[direction].endedInside("mqtt", "a packet"), direction: direction))
        }
    }

    private enum FixedHeader {
        case incomplete
        case malformed(String)
        case header(length: Int, remaining: Int)
    }

    /// The fixed header at the front: type and flags byte, then the Remaining Length (1-4 bytes).
    private static func fixedHeader(_ bytes: UnsafeRawBufferPointer) -> FixedHeader {
        guard bytes.count >= 2 else { return .incomplete }
        if bytes[0] >> 4 == 0 { return .malformed("packet type 0 is reserved") }
        var remaining = 0
        for position in 1...4 {
            guard position < bytes.count else { return .incomplete }
            remaining |= Int(bytes[position] & 0x7F) << (7 * (position - 1))
            if bytes[position] & 0x80 == 0 { return .header(length: position + 1, remaining: remaining) }
        }
        return .malformed("a Remaining Length longer than 4 bytes")
    }

    static func typeName(_ type: UInt8, level: UInt8) -> String {
        switch type {
        case 1: "CONNECT"
        case 2: "CONNACK"
        case 3: "PUBLISH"
        case 4: "PUBACK"
        case 5: "PUBREC"
        case 6: "PUBREL"
        case 7: "PUBCOMP"
        case 8: "SUBSCRIBE"
        case 9: "SUBACK"
        case 10: "UNSUBSCRIBE"
        case 11: "UNSUBACK"
        case 12: "PINGREQ"
        case 13: "PINGRESP"
        case 14: "DISCONNECT"
        case 15 where level == 5: "AUTH"
        default: "reserved \(type)"
        }
    }

    private typealias Packet = (type: String, fields: [ApplicationField], finding: ApplicationFinding?)

    /// One whole packet: its type, fields and what it means as a finding.
    private func read(first: UInt8, body: UnsafeRawBufferPointer, direction: StreamDirection) -> Result<Packet, MQTTReadError> {
        let type = first >> 4
        let flags = first & 0x0F
        let name = Self.typeName(type, level: level)
        var reader = MQTTReader(body)
        var fields: [ApplicationField] = []
        var finding: ApplicationFinding?
        do {
            switch type {
            case 1:
                try readConnect(&reader, &fields)
            case 2:
                let acknowledge = try reader.byte()
                fields.append(ApplicationField("session_present", .bool(acknowledge & 1 == 1)))
                let code = try reader.byte()
                if level == 5 {
                    fields.append(contentsOf: Self.reasonFields(code))
                    try readProperties(&reader, &fields, direction: direction)
                } else {
                    fields.append(ApplicationField("return_code", .integer(Int64(code))))
                    fields.append(ApplicationField("return_name", .string(Self.connectReturnNames[Int(code)] ?? "reserved")))
                }
                if code != 0 {
                    finding = ApplicationFinding(
                        severity: .warning, code: "mqtt-refused",
                        detail: "CONNACK refused the connection: \(code) \(level == 5 ? Self.reasonName(code) : Self.connectReturnNames[Int(code)] ?? "reserved")")
                }
            case 3:
                let qos = (flags >> 1) & 3
                guard qos != 3 else { return .failure(MQTTReadError("a PUBLISH with QoS 3")) }
                var topic = try reader.string()
                fields.append(ApplicationField("qos", .integer(Int64(qos))))
                fields.append(ApplicationField("retain", .bool(flags & 1 == 1)))
                fields.append(ApplicationField("dup", .bool(flags & 8 == 8)))
                if qos > 0 { fields.append(ApplicationField("packet_id", .integer(Int64(try reader.u16())))) }
                if level == 5 {
                    let alias = try readProperties(&reader, &fields, direction: direction)
                    if let alias {
                        if topic.isEmpty {
                            guard let known = topicAliases[direction][alias] else {
                                return .failure(MQTTReadError("a PUBLISH with topic alias \(alias) never set"))
                            }
                            topic = known
                        } else {
                            topicAliases[direction][alias] = topic
                        }
                    }
                }
                fields.insert(ApplicationField("topic", .string(topic)), at: 0)
                fields.append(ApplicationField("payload", Self.payloadValue(reader.rest())))
            case 4, 5, 6, 7:
                fields.append(ApplicationField("packet_id", .integer(Int64(try reader.u16()))))
                finding = try readReason(&reader, &fields, packet: name, direction: direction)
            case 8, 10:
                fields.append(ApplicationField("packet_id", .integer(Int64(try reader.u16()))))
                if level == 5 { try readProperties(&reader, &fields, direction: direction) }
                var topics: [ApplicationValue] = []
                while !reader.isAtEnd {
                    var entry = [ApplicationField("topic", .string(try reader.string()))]
                    if type == 8 {
                        let options = try reader.byte()
                        entry.append(ApplicationField("qos", .integer(Int64(options & 3))))
                        if level == 5 {
                            entry.append(ApplicationField("no_local", .bool(options & 4 != 0)))
                            entry.append(ApplicationField("retain_as_published", .bool(options & 8 != 0)))
                            entry.append(ApplicationField("retain_handling", .integer(Int64((options >> 4) & 3))))
                        }
                    }
                    topics.append(.object(entry))
                }
                guard !topics.isEmpty else { return .failure(MQTTReadError("a \(name) without a topic filter")) }
                fields.append(ApplicationField("topics", .list(topics)))
            case 9, 11:
                fields.append(ApplicationField("packet_id", .integer(Int64(try reader.u16()))))
                if level == 5 { try readProperties(&reader, &fields, direction: direction) }
                var codes: [ApplicationValue] = []
                var failures: [String] = []
                for code in reader.rest() {
                    codes.append(.integer(Int64(code)))
                    if code >= 0x80 { failures.append("\(code) \(level == 5 ? Self.reasonName(code) : "failure")") }
                }
                // An MQTT 3.1.1 UNSUBACK is its packet id alone.
                if type == 9 || level == 5 { fields.append(ApplicationField("reason_codes", .list(codes))) }
                if !failures.isEmpty {
                    finding = ApplicationFinding(severity: .warning, code: "mqtt-error", detail: "\(name) refused: \(failures.prefix(5).joined(separator: ", "))")
                }
            case 12, 13:
                break
            case 14, 15:
                finding = try readReason(&reader, &fields, packet: name, direction: direction)
            default:
                return .failure(MQTTReadError("reserved packet type \(type)"))
            }
        } catch {
            return .failure(MQTTReadError("a \(name) packet \(error.what)"))
        }
        return .success((name, fields, finding))
    }

    /// An MQTT 5 reason code and properties, when the packet goes on past what it must hold; a
    /// failure code (0x80 and above) as a finding.
    private func readReason(
        _ reader: inout MQTTReader, _ fields: inout [ApplicationField], packet name: String, direction: StreamDirection
    ) throws(MQTTReadError) -> ApplicationFinding? {
        guard level == 5, !reader.isAtEnd else { return nil }
        let code = try reader.byte()
        fields.append(contentsOf: Self.reasonFields(code))
        if !reader.isAtEnd { try readProperties(&reader, &fields, direction: direction) }
        guard code >= 0x80 else { return nil }
        return ApplicationFinding(severity: .warning, code: "mqtt-error", detail: "\(name) reason \(code) \(Self.reasonName(code))")
    }

    private func readConnect(_ reader: inout MQTTReader, _ fields: inout [ApplicationField]) throws(MQTTReadError) {
        let protocolName = try reader.string()
        let protocolLevel = try reader.byte()
        guard (protocolName == "MQTT" && (protocolLevel == 4 || protocolLevel == 5)) || (protocolName == "MQIsdp" && protocolLevel == 3) else {
            throw MQTTReadError("names protocol \"\(protocolName.prefix(20))\" level \(protocolLevel)")
        }
        level = protocolLevel
        let flags = try reader.byte()
        fields.append(ApplicationField("protocol_name", .string(protocolName)))
        fields.append(ApplicationField("protocol_level", .integer(Int64(protocolLevel))))
        fields.append(ApplicationField(level == 5 ? "clean_start" : "clean_session", .bool(flags & 2 != 0)))
        fields.append(ApplicationField("keep_alive", .integer(Int64(try reader.u16()))))
        if level == 5 { try readProperties(&reader, &fields, direction: .clientToServer) }
        fields.append(ApplicationField("client_id", .string(try reader.string())))
        if flags & 4 != 0 {
            var will: [ApplicationField] = []
            if level == 5 { try readProperties(&reader, &will, direction: .clientToServer) }
            will.append(ApplicationField("topic", .string(try reader.string())))
            will.append(ApplicationField("payload", Self.payloadValue(try reader.binary())))
            will.append(ApplicationField("qos", .integer(Int64((flags >> 3) & 3))))
            will.append(ApplicationField("retain", .bool(flags & 0x20 != 0)))
            fields.append(ApplicationField("will", .object(will)))
        }
        if flags & 0x80 != 0 { fields.append(ApplicationField("username", .string(try reader.string()))) }
        if flags & 0x40 != 0 { fields.append(ApplicationField("password", Self.payloadValue(try reader.binary()))) }
    }

    /// MQTT 5 properties (`properties`, an object; user properties as a list of pairs); the topic
    /// alias when there is one.
    @discardableResult
    private func readProperties(_ reader: inout MQTTReader, _ fields: inout [ApplicationField], direction: StreamDirection)
        throws(MQTTReadError) -> UInt16?
    {
        let length = try reader.variableInteger()
        var properties = MQTTReader(try reader.bytes(length))
        var named: [ApplicationField] = []
        var userProperties: [ApplicationValue] = []
        var subscriptionIdentifiers: [ApplicationValue] = []
        var alias: UInt16?
        while !properties.isAtEnd {
            let identifier = try properties.variableInteger()
            guard let (name, kind) = Self.propertyKinds[identifier] else {
                throw MQTTReadError("has unknown property \(identifier)")
            }
            let value: ApplicationValue
            switch kind {
            case .byte: value = .integer(Int64(try properties.byte()))
            case .u16: value = .integer(Int64(try properties.u16()))
            case .u32: value = .integer(Int64(try properties.u32()))
            case .variable: value = .integer(Int64(try properties.variableInteger()))
            case .string: value = .string(try properties.string())
            case .binary: value = Self.payloadValue(try properties.binary())
            case .pair: value = .list([.string(try properties.string()), .string(try properties.string())])
            }
            switch name {
            case "user_property": userProperties.append(value)
            case "subscription_identifier": subscriptionIdentifiers.append(value)
            default:
                if name == "topic_alias", case .integer(let number) = value { alias = UInt16(number) }
                named.append(ApplicationField(name, value))
            }
        }
        if !subscriptionIdentifiers.isEmpty { named.append(ApplicationField("subscription_identifiers", .list(subscriptionIdentifiers))) }
        if !userProperties.isEmpty { named.append(ApplicationField("user_properties", .list(userProperties))) }
        if !named.isEmpty { fields.append(ApplicationField("properties", .object(named))) }
        return alias
    }

    /// Text when the bytes are UTF-8, otherwise bytes.
    private static func payloadValue(_ bytes: UnsafeRawBufferPointer) -> ApplicationValue {
        UTF8Validation.isValid(bytes) ? .string(String(decoding: bytes, as: UTF8.self)) : .bytes(Array(bytes))
    }

    private static func reasonFields(_ code: UInt8) -> [ApplicationField] {
        [ApplicationField("reason_code", .integer(Int64(code))), ApplicationField("reason", .string(reasonName(code)))]
    }

    static let connectReturnNames = [
        0: "accepted", 1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
        4: "bad user name or password", 5: "not authorized",
    ]

    /// MQTT 5 reason code names (§2.4); 0 reads "success".
    static func reasonName(_ code: UInt8) -> String {
        switch code {
        case 0x00: "success"
        case 0x01: "granted QoS 1"
        case 0x02: "granted QoS 2"
        case 0x04: "disconnect with will message"
        case 0x10: "no matching subscribers"
        case 0x11: "no subscription existed"
        case 0x18: "continue authentication"
        case 0x19: "re-authenticate"
        case 0x80: "unspecified error"
        case 0x81: "malformed packet"
        case 0x82: "protocol error"
        case 0x83: "implementation specific error"
        case 0x84: "unsupported protocol version"
        case 0x85: "client identifier not valid"
        case 0x86: "bad user name or password"
        case 0x87: "not authorized"
        case 0x88: "server unavailable"
        case 0x89: "server busy"
        case 0x8A: "banned"
        case 0x8B: "server shutting down"
        case 0x8C: "bad authentication method"
        case 0x8D: "keep alive timeout"
        case 0x8E: "session taken over"
        case 0x8F: "topic filter invalid"
        case 0x90: "topic name invalid"
        case 0x91: "packet identifier in use"
        case 0x92: "packet identifier not found"
        case 0x93: "receive maximum exceeded"
        case 0x94: "topic alias invalid"
        case 0x95: "packet too large"
        case 0x96: "message rate too high"
        case 0x97: "quota exceeded"
        case 0x98: "administrative action"
        case 0x99: "payload format invalid"
        case 0x9A: "retain not supported"
        case 0x9B: "QoS not supported"
        case 0x9C: "use another server"
        case 0x9D: "server moved"
        case 0x9E: "shared subscriptions not supported"
        case 0x9F: "connection rate exceeded"
        case 0xA0: "maximum connect time"
        case 0xA1: "subscription identifiers not supported"
        case 0xA2: "wildcard subscriptions not supported"
        default: "reserved"
        }
    }

    private enum PropertyKind {
        case byte, u16, u32, variable, string, binary, pair
    }

    /// MQTT 5 properties by identifier (§2.2.2.2).
    private static let propertyKinds: [Int: (String, PropertyKind)] = [
        0x01: ("payload_format_indicator", .byte), 0x02: ("message_expiry_interval", .u32), 0x03: ("content_type", .string),
        0x08: ("response_topic", .string), 0x09: ("correlation_data", .binary), 0x0B: ("subscription_identifier", .variable),
        0x11: ("session_expiry_interval", .u32), 0x12: ("assigned_client_identifier", .string),
        0x13: ("server_keep_alive", .u16), 0x15: ("authentication_method", .string), 0x16: ("authentication_data", .binary),
        0x17: ("request_problem_information", .byte), 0x18: ("will_delay_interval", .u32),
        0x19: ("request_response_information", .byte), 0x1A: ("response_information", .string),
        0x1C: ("server_reference", .string), 0x1F: ("reason_string", .string), 0x21: ("receive_maximum", .u16),
        0x22: ("topic_alias_maximum", .u16), 0x23: ("topic_alias", .u16), 0x24: ("maximum_qos", .byte),
        0x25: ("retain_available", .byte), 0x26: ("user_property", .pair), 0x27: ("maximum_packet_size", .u32),
        0x28: ("wildcard_subscription_available", .byte), 0x29: ("subscription_identifier_available", .byte),
        0x2A: ("shared_subscription_available", .byte),
    ]
}

/// Why a packet could not be read: what it lacks, in words.
struct MQTTReadError: Error {
    let what: String
    init(_ what: String) { self.what = what }
}

/// Reads MQTT's encodings from one packet's bytes, never past them.
private struct MQTTReader {
    private let bytes: UnsafeRawBufferPointer
    private var position = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { position >= bytes.count }

    mutating func byte() throws(MQTTReadError) -> UInt8 {
        guard position < bytes.count else { throw MQTTReadError("ends early") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func u16() throws(MQTTReadError) -> UInt16 {
        UInt16(try byte()) << 8 | UInt16(try byte())
    }

    mutating func u32() throws(MQTTReadError) -> UInt32 {
        UInt32(try u16()) << 16 | UInt32(try u16())
    }

    mutating func variableInteger() throws(MQTTReadError) -> Int {
        var value = 0
        for shift in stride(from: 0, through: 21, by: 7) {
            let next = try byte()
            value |= Int(next & 0x7F) << shift
            if next & 0x80 == 0 { return value }
        }
        throw MQTTReadError("has a variable byte integer longer than 4 bytes")
    }

    mutating func bytes(_ count: Int) throws(MQTTReadError) -> UnsafeRawBufferPointer {
        guard count <= bytes.count - position else { throw MQTTReadError("claims \(count) bytes past its end") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<position + count])
    }

    /// Two-byte length, then that many bytes.
    mutating func binary() throws(MQTTReadError) -> UnsafeRawBufferPointer {
        try bytes(Int(try u16()))
    }

    mutating func string() throws(MQTTReadError) -> String {
        String(decoding: try binary(), as: UTF8.self)
    }

    mutating func rest() -> UnsafeRawBufferPointer {
        defer { position = bytes.count }
        return UnsafeRawBufferPointer(rebasing: bytes[position...])
    }
}
