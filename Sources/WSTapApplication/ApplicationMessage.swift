import WSTapCore

/// What an application protocol said inside WebSocket messages: a Socket.IO event, a STOMP frame,
/// an MQTT packet, a JSON-RPC call. It does not map one to one onto WebSocket messages (an MQTT
/// packet can span two, a STOMP message can hold three), so it lists the messages it came from.
///
/// Its fields are generic values, so that an exporter shows any protocol without knowing it.
public struct ApplicationMessage: Sendable {
    /// The protocol as the registration names it (`socket.io`, `stomp`, `mqtt`, `json`).
    public var protocolName: String
    /// The protocol's own name for the unit, as its specification spells it (`event`, `SEND`,
    /// `PUBLISH`, `next`, `request`).
    public var type: String
    public var direction: StreamDirection
    /// The unit's fields, in the protocol's order.
    public var fields: [ApplicationField]
    /// The WebSocket messages it came from: their indices in this direction of the stream, from 0
    /// (a unit spans consecutive messages).
    public var messages: Range<UInt64>
    /// How the protocol was chosen for the stream.
    public var detection: ApplicationDetection

    public init(
        protocolName: String, type: String, direction: StreamDirection, fields: [ApplicationField] = [],
        messages: Range<UInt64>, detection: ApplicationDetection
    ) {
        self.protocolName = protocolName
        self.type = type
        self.direction = direction
        self.fields = fields
        self.messages = messages
        self.detection = detection
    }

    /// What the message is about, for `--event`: its Socket.IO event, STOMP destination, MQTT
    /// topic (or the topic filters of a SUBSCRIBE), JSON-RPC method or GraphQL operation.
    public var subjects: [String] {
        var found: [String] = []
        func collect(_ fields: [ApplicationField], depth: Int) {
            for field in fields {
                switch (field.name, field.value) {
                case ("event", .string(let name)), ("method", .string(let name)), ("operation", .string(let name)),
                    ("topic", .string(let name)), ("destination", .string(let name)):
                    found.append(name)
                case ("headers", .object(let headers)), ("topics", .object(let headers)):
                    if depth == 0 { collect(headers, depth: 1) }
                case ("topics", .list(let entries)) where depth == 0:
                    for case .object(let entry) in entries { collect(entry, depth: 1) }
                default:
                    break
                }
            }
        }
        collect(fields, depth: 0)
        return found
    }

    /// The value of the first field named `name`.
    public subscript(field name: String) -> ApplicationValue? {
        fields.first { $0.name == name }?.value
    }
}

/// How a stream's application protocol was chosen.
public enum ApplicationDetection: String, Sendable {
    /// The `Sec-WebSocket-Protocol` both sides agreed on.
    case negotiated
    /// The request's URL (a protocol without a token, such as Socket.IO's `/socket.io/`).
    case url
    /// The messages' content, as a last resort.
    case sniffed
    /// The user's word (`--app`).
    case forced
}

/// One named field of an application message.
public struct ApplicationField: Sendable {
    public var name: String
    public var value: ApplicationValue

    public init(_ name: String, _ value: ApplicationValue) {
        self.name = name
        self.value = value
    }
}

/// A field's value, in the shapes JSON can carry, plus bytes and JSON text kept as it was sent.
public indirect enum ApplicationValue: Sendable {
    case null
    case bool(Bool)
    case integer(Int64)
    case string(String)
    /// Bytes that are not text (an attachment, a binary body): shown as base64 or a hex dump.
    case bytes([UInt8])
    /// JSON text exactly as the peer sent it (checked to be valid JSON): written as it is.
    case json([UInt8])
    case list([ApplicationValue])
    case object([ApplicationField])
}

/// A finding of a message decoder: malformed input, or an application-level error (a STOMP
/// `ERROR`, a JSON-RPC error response), with a stable code (docs/issue-codes.md).
public struct ApplicationFinding: Sendable {
    public var severity: Severity
    public var code: String
    public var detail: String

    public init(severity: Severity, code: String, detail: String) {
        self.severity = severity
        self.code = code
        self.detail = detail
    }
}
