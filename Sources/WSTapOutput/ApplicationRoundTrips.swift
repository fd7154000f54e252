import WSTapCore
import WSTap

/// Application round trips as `wstap stats` counts them: a request and the answer that names it
/// (MQTT PUBLISH → PUBACK by packet id, JSON-RPC request → response by id, a STOMP receipt, an
/// Engine.IO ping → pong…), and the keep-alives that are not data.
enum ApplicationExchange {
    /// What an application message does in a round trip: opens one under `key`, closes the one
    /// the other side opened under `key`, both named `label` (`mqtt PUBLISH→PUBACK`).
    enum Role {
        case opens(key: String, label: String)
        case closes(key: String)
    }

    static func role(of message: ApplicationMessage) -> Role? {
        let id = { (name: String) -> String? in
            switch message[field: name] {
            case .integer(let number)?: String(number)
            case .string(let text)?: text
            case .json(let bytes)?: String(decoding: bytes, as: UTF8.self)
            default: nil
            }
        }
        let type = message.type
        switch message.protocolName {
        case "engine.io":
            if type == "ping" { return .opens(key: "eio", label: "engine.io ping→pong") }
            if type == "pong" { return .closes(key: "eio") }
        case "mqtt":
            switch type {
            case "PINGREQ": return .opens(key: "ping", label: "mqtt PINGREQ→PINGRESP")
            case "PINGRESP": return .closes(key: "ping")
            case "PUBLISH":
                guard let packet = id("packet_id"), case .integer(let qos)? = message[field: "qos"] else { return nil }
                return .opens(key: "pub\(qos) \(packet)", label: qos == 1 ? "mqtt PUBLISH→PUBACK" : "mqtt PUBLISH→PUBCOMP")
            case "PUBACK": return id("packet_id").map { .closes(key: "pub1 \($0)") }
            case "PUBCOMP": return id("packet_id").map { .closes(key: "pub2 \($0)") }
            case "SUBSCRIBE": return id("packet_id").map { .opens(key: "sub \($0)", label: "mqtt SUBSCRIBE→SUBACK") }
            case "SUBACK": return id("packet_id").map { .closes(key: "sub \($0)") }
            case "UNSUBSCRIBE": return id("packet_id").map { .opens(key: "unsub \($0)", label: "mqtt UNSUBSCRIBE→UNSUBACK") }
            case "UNSUBACK": return id("packet_id").map { .closes(key: "unsub \($0)") }
            default: return nil
            }
        case "jsonrpc":
            if type == "request" { return id("id").map { .opens(key: $0, label: "jsonrpc request→response") } }
            if type == "result" || type == "error" { return id("id").map { .closes(key: $0) } }
        case "graphql-transport-ws", "graphql-ws":
            if type == "ping" { return .opens(key: "ping", label: "graphql ping→pong") }
            if type == "pong" { return .closes(key: "ping") }
            if type == "subscribe" || type == "start" { return id("id").map { .opens(key: "op \($0)", label: "graphql subscribe→complete") } }
            if type == "complete" || type == "error" { return id("id").map { .closes(key: "op \($0)") } }
        case "stomp":
            guard case .object(let headers)? = message[field: "headers"] else { return nil }
            let header = { (name: String) -> String? in
                headers.first { $0.name == name }.flatMap { if case .string(let text) = $0.value { text } else { nil } }
            }
            if type == "RECEIPT" { return header("receipt-id").map { .closes(key: $0) } }
            if let receipt = header("receipt") { return .opens(key: receipt, label: "stomp receipt") }
        default:
            break
        }
        return nil
    }

    /// Keep-alives: application messages that only say the peer is there.
    static func isKeepAlive(_ message: ApplicationMessage) -> Bool {
        switch (message.protocolName, message.type) {
        case ("engine.io", "ping"), ("engine.io", "pong"), ("mqtt", "PINGREQ"), ("mqtt", "PINGRESP"), ("stomp", "heartbeat"),
            ("graphql-transport-ws", "ping"), ("graphql-transport-ws", "pong"), ("graphql-ws", "ka"):
            true
        default:
            false
        }
    }
}
