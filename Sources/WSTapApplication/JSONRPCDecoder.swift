import WSTapCore
/// JSON-RPC 2.0 over WebSocket: requests, notifications, results and errors (with their code
/// and message), and batches (one application message of type `batch` holding its items).
/// Responses are paired with the requests they answer by id, so a result names its method;
/// error responses become findings.
public final class JSONRPCDecoder: MessageDecoder {
    /// Requests awaiting their response, per direction of the request: id (as written) and
    /// method; bounded, the oldest forgotten past `maxOutstanding`.
    private var outstanding = DirectionPair<[(id: String, method: String)]>([])
    static let maxOutstanding = 1024

    public init() {}

    public func receive(_ input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        guard input.isText, input.isComplete else { return }
        if let elements = JSONScanner.elements(input.payload) {
            var items: [ApplicationValue] = []
            for element in elements {
                let slice = UnsafeRawBufferPointer(rebasing: input.payload[element.range])
                guard element.kind == .object, case .success(let members?) = JSONScanner.members(slice) else {
                    emit(.finding(.malformed("jsonrpc", index: input.index, "a batch item that is not an object"), direction: input.direction))
                    continue
                }
                if let (type, fields) = read(JSONObjectMessage(bytes: slice, members: members), input: input, emit: emit) {
                    items.append(.object([ApplicationField("type", .string(type))] + fields))
                }
            }
            guard !items.isEmpty else {
                return emit(.finding(.malformed("jsonrpc", index: input.index, "an empty batch"), direction: input.direction))
            }
            emit(.message(ApplicationMessage(
                protocolName: "jsonrpc", type: "batch", direction: input.direction, fields: [ApplicationField("items", .list(items))],
                messages: input.only, detection: .negotiated)))
            return
        }
        switch JSONObjectMessage.read(input) {
        case .failure(let error):
            emit(.finding(.notJSON(error, protocolName: "jsonrpc", index: input.index), direction: input.direction))
        case .success(nil):
            emit(.finding(.malformed("jsonrpc", index: input.index, "neither an object nor a batch"), direction: input.direction))
        case .success(let message?):
            guard let (type, fields) = read(message, input: input, emit: emit) else { return }
            emit(.message(ApplicationMessage(
                protocolName: "jsonrpc", type: type, direction: input.direction, fields: fields, messages: input.only,
                detection: .negotiated)))
        }
    }

    /// One call or response: its type (`request`, `notification`, `result`, `error`) and fields.
    private func read(_ message: JSONObjectMessage, input: ApplicationInput, emit: (ApplicationOutput) -> Void)
        -> (String, [ApplicationField])?
    {
        var fields: [ApplicationField] = []
        if let version = message.string("jsonrpc") { fields.append(ApplicationField("jsonrpc", .string(version))) }
        let id = message.member("id")
        let idText = message.rawText("id")
        if let id { fields.append(ApplicationField("id", .json(Array(message.bytes[id.range])))) }
        if let method = message.string("method") {
            fields.insert(ApplicationField("method", .string(method)), at: 0)
            if let value = message.json("params") { fields.append(ApplicationField("params", value)) }
            // A call without an id is a notification: nobody answers it (JSON-RPC 2.0 §4.1).
            guard let idText else { return ("notification", fields) }
            var queue = outstanding[input.direction]
            if queue.count == Self.maxOutstanding { queue.removeFirst() }
            queue.append((idText, method))
            outstanding[input.direction] = queue
            return ("request", fields)
        }
        // A response answers a request the other side sent.
        let requests = input.direction.reversed.rawValue
        if let idText, let index = outstanding[requests].firstIndex(where: { $0.id == idText }) {
            fields.insert(ApplicationField("method", .string(outstanding[requests][index].method)), at: 0)
            outstanding[requests].remove(at: index)
        }
        if let value = message.json("result") {
            fields.append(ApplicationField("result", value))
            return ("result", fields)
        }
        if let error = message.object("error") {
            let code = error.rawText("code") ?? "?"
            let text = error.string("message") ?? ""
            fields.append(ApplicationField("code", .json(Array((error.rawText("code") ?? "null").utf8))))
            fields.append(ApplicationField("message", .string(text)))
            if let data = error.json("data") { fields.append(ApplicationField("data", data)) }
            let method = fields.first { $0.name == "method" }.flatMap { if case .string(let name) = $0.value { name } else { nil } }
            emit(.finding(ApplicationFinding(
                severity: .warning, code: "jsonrpc-error",
                detail: "error \(code) \(text.prefix(200))" + (method.map { " (method \($0), id \(idText ?? "null"))" } ?? " (id \(idText ?? "null"))")),
                direction: input.direction))
            return ("error", fields)
        }
        emit(.finding(.malformed("jsonrpc", index: input.index, "neither a call (method) nor a response (result or error)"), direction: input.direction))
        return nil
    }
}
