/// A JSON object message as the JSON-based decoders read it: its members, and its bytes.
struct JSONObjectMessage {
    let bytes: UnsafeRawBufferPointer
    let members: [JSONMember]

    /// Reads `input` as one JSON value; the error, or nil members when it is JSON but not an object.
    static func read(_ input: ApplicationInput) -> Result<JSONObjectMessage?, JSONSyntaxError> {
        JSONScanner.members(input.payload).map { members in members.map { JSONObjectMessage(bytes: input.payload, members: $0) } }
    }

    init(bytes: UnsafeRawBufferPointer, members: [JSONMember]) {
        self.bytes = bytes
        self.members = members
    }

    func member(_ key: String) -> JSONMember? { members.first { $0.key == key } }

    /// A string member's text; nil when absent or not a string.
    func string(_ key: String) -> String? {
        guard let member = member(key), member.kind == .string else { return nil }
        return JSONScanner.string(bytes, member.range)
    }

    /// A member's JSON text exactly as sent.
    func json(_ key: String) -> ApplicationValue? {
        member(key).map { .json(Array(bytes[$0.range])) }
    }

    /// A member's raw text (an id may be a number or a string: compared as written).
    func rawText(_ key: String) -> String? {
        member(key).map { String(decoding: bytes[$0.range], as: UTF8.self) }
    }

    /// The members of an object member (nil when absent, not an object, or not JSON).
    func object(_ key: String) -> JSONObjectMessage? {
        guard let member = member(key), member.kind == .object else { return nil }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[member.range])
        guard case .success(let members?) = JSONScanner.members(slice) else { return nil }
        return JSONObjectMessage(bytes: slice, members: members)
    }

    /// The first `"message"` string among a member holding an error object or a list of them
    /// (GraphQL `errors`, JSON-RPC `error`).
    func firstErrorMessage(_ key: String) -> String? {
        guard let member = member(key) else { return nil }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[member.range])
        switch member.kind {
        case .object:
            guard case .success(let members?) = JSONScanner.members(slice) else { return nil }
            return JSONObjectMessage(bytes: slice, members: members).string("message")
        case .array:
            guard let first = JSONScanner.elements(slice)?.first, first.kind == .object else { return nil }
            let element = UnsafeRawBufferPointer(rebasing: slice[first.range])
            guard case .success(let members?) = JSONScanner.members(element) else { return nil }
            return JSONObjectMessage(bytes: element, members: members).string("message")
        default:
            return nil
        }
    }
}

extension ApplicationFinding {
    /// A message that should be JSON and is not: where and why.
    static func notJSON(_ error: JSONSyntaxError, protocolName: String, index: UInt64) -> ApplicationFinding {
        ApplicationFinding(
            severity: .warning, code: "app-invalid-json",
            detail: "\(protocolName) message \(index) is not JSON: invalid at byte \(error.offset) (\(error.reason))")
    }

    /// A message of the protocol that lacks what the protocol requires.
    static func malformed(_ protocolName: String, index: UInt64, _ what: String) -> ApplicationFinding {
        ApplicationFinding(severity: .warning, code: "app-malformed", detail: "\(protocolName) message \(index): \(what)")
    }
}

/// Plain JSON inside text messages (`--app json`, or a subprotocol that is only JSON): every
/// text message is checked, and a valid one is an application message of type `object`, `array`
/// or `value` (the text itself is the WebSocket message's, not repeated); an invalid one is a
/// finding with the byte where it stops being JSON.
public final class PlainJSONDecoder: MessageDecoder {
    public init() {}

    public func receive(_ input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        guard input.isText, input.isComplete else { return }
        if let error = JSONScanner.validate(input.payload) {
            return emit(.finding(.notJSON(error, protocolName: "json", index: input.index), direction: input.direction))
        }
        let first = input.payload.first { $0 != 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
        let type = first == UInt8(ascii: "{") ? "object" : first == UInt8(ascii: "[") ? "array" : "value"
        emit(.message(ApplicationMessage(
            protocolName: "json", type: type, direction: input.direction, messages: input.only, detection: .negotiated)))
    }
}
