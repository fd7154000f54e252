/// GraphQL over WebSocket: the graphql-transport-ws protocol (`graphql-transport-ws`, the
/// GraphQL over WebSocket spec of the graphql-ws library) and the older subscriptions-transport-ws
/// protocol (whose token is `graphql-ws`). Each text message is one JSON object with a `type`, an
/// `id` for operations, and a `payload`; errors become findings.
public final class GraphQLDecoder: MessageDecoder {
    public enum Flavor: Sendable {
        /// graphql-transport-ws: connection_init/ack, ping/pong, subscribe, next, error, complete.
        case transportWS
        /// subscriptions-transport-ws (token `graphql-ws`): connection_init/ack/error, ka, start,
        /// data, error, complete, stop, connection_terminate.
        case subscriptionsTransportWS
    }

    private let flavor: Flavor
    private let protocolName: String
    /// Operation ids subscribed and not yet completed, with their operation name when the query
    /// named one: bounded (the oldest forgotten past `maxOpenOperations`).
    private var operations: [(id: String, name: String?)] = []
    static let maxOpenOperations = 1024

    public init(_ flavor: Flavor) {
        self.flavor = flavor
        protocolName = flavor == .transportWS ? "graphql-transport-ws" : "graphql-ws"
    }

    private static let knownTypes: [Flavor: Set<String>] = [
        .transportWS: ["connection_init", "connection_ack", "ping", "pong", "subscribe", "next", "error", "complete"],
        .subscriptionsTransportWS: [
            "connection_init", "connection_ack", "connection_error", "ka", "start", "data", "error", "complete", "stop",
            "connection_terminate",
        ],
    ]

    public func receive(_ input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        guard input.isText, input.isComplete else { return }
        let message: JSONObjectMessage
        switch JSONObjectMessage.read(input) {
        case .failure(let error):
            return emit(.finding(.notJSON(error, protocolName: protocolName, index: input.index), direction: input.direction))
        case .success(nil):
            return emit(.finding(.malformed(protocolName, index: input.index, "not a JSON object"), direction: input.direction))
        case .success(let object?):
            message = object
        }
        guard let type = message.string("type") else {
            return emit(.finding(.malformed(protocolName, index: input.index, "no \"type\""), direction: input.direction))
        }
        if !(Self.knownTypes[flavor]?.contains(type) ?? false) {
            emit(.finding(.malformed(protocolName, index: input.index, "unknown type \"\(type)\""), direction: input.direction))
        }
        var fields: [ApplicationField] = []
        let id = message.string("id") ?? message.rawText("id")
        if let id { fields.append(ApplicationField("id", .string(id))) }
        let payload = message.object("payload")
        var operation: String?
        if type == "subscribe" || type == "start" {
            operation = payload?.string("operationName") ?? payload?.string("query").flatMap(Self.operationName)
            if let id {
                if operations.count == Self.maxOpenOperations { operations.removeFirst() }
                operations.append((id, operation))
            }
        } else if let id {
            operation = operations.first { $0.id == id }?.name
            if type == "complete" || type == "stop" || type == "error" { operations.removeAll { $0.id == id } }
        }
        if let operation { fields.append(ApplicationField("operation", .string(operation))) }
        if let value = message.json("payload") { fields.append(ApplicationField("payload", value)) }
        emit(.message(ApplicationMessage(
            protocolName: protocolName, type: type, direction: input.direction, fields: fields, messages: input.only,
            detection: .negotiated)))
        // What the server says went wrong.
        let failure: String? = switch type {
        case "error", "connection_error": message.firstErrorMessage("payload") ?? "(no message)"
        case "next", "data": payload?.firstErrorMessage("errors")
        default: nil
        }
        if let failure {
            let which = id.map { "operation \($0)" + (operation.map { " (\($0))" } ?? "") } ?? "the connection"
            emit(.finding(ApplicationFinding(
                severity: .warning, code: "graphql-error", detail: "\(type) for \(which): \(failure.prefix(300))"),
                direction: input.direction))
        }
    }

    /// The name of a query's operation (`query Hello(…)`, `subscription Tick`), if it has one.
    static func operationName(_ query: String) -> String? {
        var rest = Substring(query).drop { $0.isWhitespace }
        guard let keyword = ["query", "mutation", "subscription"].first(where: { rest.hasPrefix($0) }) else { return nil }
        rest = rest.dropFirst(keyword.count)
        guard rest.first?.isWhitespace ?? false else { return nil }
        let name = rest.drop { $0.isWhitespace }.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        return name.isEmpty ? nil : String(name)
    }
}
