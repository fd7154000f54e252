/// What a stream's first data message looks like when its application protocol was neither
/// negotiated nor named by its URL: signatures that ordinary text does not have, used as a last
/// resort (the stream's application messages are marked `sniffed`).
public enum ApplicationSignatures {
    /// An MQTT CONNECT: type 1, a Remaining Length, then protocol name `MQTT` (3.1.1, 5) or
    /// `MQIsdp` (3.1).
    public static func mqttConnect(_ input: ApplicationInput) -> Bool {
        let bytes = input.payload
        guard !input.isText, bytes.count >= 8, bytes[0] == 0x10 else { return false }
        var position = 1
        while position < min(bytes.count, 5), bytes[position] & 0x80 != 0 { position += 1 }
        position += 1
        let rest = Array(bytes[min(position, bytes.count)...].prefix(8))
        return rest.starts(with: [0, 4] + Array("MQTT".utf8)) || rest.starts(with: [0, 6] + Array("MQIsdp".utf8))
    }

    /// A STOMP CONNECT or STOMP frame from the client, or a CONNECTED from the server.
    public static func stompConnect(_ input: ApplicationInput) -> Bool {
        guard input.isText else { return false }
        let commandLine = Array(input.payload.prefix(12))
        return ["CONNECT\n", "CONNECT\r\n", "STOMP\n", "STOMP\r\n", "CONNECTED\n", "CONNECTED\r\n"].contains {
            commandLine.starts(with: $0.utf8)
        }
    }

    /// An Engine.IO open packet: `0` then a JSON object with a session id.
    public static func engineIOOpen(_ input: ApplicationInput) -> Bool {
        guard input.isText, input.payload.first == UInt8(ascii: "0"), input.payload.count > 2 else { return false }
        let object = UnsafeRawBufferPointer(rebasing: input.payload[1...])
        guard case .success(let members?) = JSONScanner.members(object) else { return false }
        return members.contains { $0.key == "sid" }
    }

    /// A graphql-transport-ws `connection_init`.
    public static func graphQLTransportInit(_ input: ApplicationInput) -> Bool {
        guard input.isText, case .success(let message?) = JSONObjectMessage.read(input) else { return false }
        return message.string("type") == "connection_init"
    }

    /// A JSON-RPC 2.0 call or response, or a batch whose first item is one.
    public static func jsonRPC(_ input: ApplicationInput) -> Bool {
        guard input.isText else { return false }
        if let first = JSONScanner.elements(input.payload)?.first, first.kind == .object {
            let item = UnsafeRawBufferPointer(rebasing: input.payload[first.range])
            guard case .success(let members?) = JSONScanner.members(item) else { return false }
            return JSONObjectMessage(bytes: item, members: members).string("jsonrpc") == "2.0"
        }
        guard case .success(let message?) = JSONObjectMessage.read(input) else { return false }
        return message.string("jsonrpc") == "2.0"
    }
}
