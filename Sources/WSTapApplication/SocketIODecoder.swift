import WSTapCore

/// Engine.IO v4 and Socket.IO v5 over WebSocket (found by the URL `/socket.io/?EIO=4&transport=websocket`,
/// which has no subprotocol token). Each text message is one Engine.IO packet (`0` open, `1`
/// close, `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop; protocol `engine.io`); a
/// message packet carries one Socket.IO packet (protocol `socket.io`): connect, disconnect, event,
/// ack, connect_error, binary_event, binary_ack, with its namespace, ack id and JSON data. A
/// binary event or ack completes with its attachments (the binary messages that follow it), shown
/// by size.
public final class SocketIODecoder: MessageDecoder {
    private static let engineTypes = ["open", "close", "ping", "pong", "message", "upgrade", "noop"]
    private static let socketTypes = ["connect", "disconnect", "event", "ack", "connect_error", "binary_event", "binary_ack"]
    /// A binary event or ack waiting for its attachments, per direction.
    private var waiting = DirectionPair<Pending?>(nil)
    /// Attachments a packet may announce at most (more is malformed).
    static let maxAttachments = 1024

    private struct Pending {
        var message: ApplicationMessage
        var remaining: Int
        var sizes: [ApplicationValue] = []
    }

    public init() {}

    public func receive(_ input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        let index = input.direction
        if !input.isText {
            guard var pending = waiting[index] else {
                return emit(.finding(.malformed("socket.io", index: input.index, "a binary message no packet announced"), direction: input.direction))
            }
            pending.sizes.append(.integer(Int64(input.payload.count)))
            pending.message.messages = pending.message.messages.lowerBound..<input.index + 1
            pending.remaining -= 1
            if pending.remaining > 0 { return waiting[index] = pending }
            waiting[index] = nil
            pending.message.fields.append(ApplicationField("attachments", .list(pending.sizes)))
            return emit(.message(pending.message))
        }
        if let pending = waiting[index] {
            waiting[index] = nil
            emit(.finding(.malformed("socket.io", index: input.index, "a text packet while \(pending.remaining) attachments were awaited"), direction: input.direction))
            emit(.message(pending.message))
        }
        let bytes = input.payload
        guard let first = bytes.first, first >= 0x30, Int(first - 0x30) < Self.engineTypes.count else {
            return emit(.finding(.malformed("engine.io", index: input.index, "not an Engine.IO packet"), direction: input.direction))
        }
        let engineType = Self.engineTypes[Int(first - 0x30)]
        let rest = UnsafeRawBufferPointer(rebasing: bytes.dropFirst())
        var engineFields: [ApplicationField] = []
        if !rest.isEmpty, engineType != "message" { engineFields.append(ApplicationField("data", .string(String(decoding: rest, as: UTF8.self)))) }
        emit(.message(ApplicationMessage(
            protocolName: "engine.io", type: engineType, direction: input.direction, fields: engineFields, messages: input.only,
            detection: .url)))
        guard engineType == "message" else { return }
        socketPacket(rest, input: input, emit: emit)
    }

    /// `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]` (the Socket.IO v5 encoding).
    private func socketPacket(_ bytes: UnsafeRawBufferPointer, input: ApplicationInput, emit: (ApplicationOutput) -> Void) {
        guard let first = bytes.first, first >= 0x30, Int(first - 0x30) < Self.socketTypes.count else {
            return emit(.finding(.malformed("socket.io", index: input.index, "not a Socket.IO packet"), direction: input.direction))
        }
        let type = Self.socketTypes[Int(first - 0x30)]
        var at = 1
        func digits() -> Int? {
            var value = 0, count = 0
            while at < bytes.count, bytes[at] >= 0x30, bytes[at] <= 0x39, count < 9 {
                value = value * 10 + Int(bytes[at] - 0x30)
                at += 1
                count += 1
            }
            return count > 0 ? value : nil
        }
        var attachments = 0
        if type == "binary_event" || type == "binary_ack" {
            guard let count = digits(), at < bytes.count, bytes[at] == UInt8(ascii: "-"), count <= Self.maxAttachments else {
                return emit(.finding(.malformed("socket.io", index: input.index, "a binary packet without its attachment count"), direction: input.direction))
            }
            attachments = count
            at += 1
        }
        var namespace = "/"
        if at < bytes.count, bytes[at] == UInt8(ascii: "/") {
            let start = at
            while at < bytes.count, bytes[at] != UInt8(ascii: ",") { at += 1 }
            namespace = String(decoding: bytes[start..<at], as: UTF8.self)
            if at < bytes.count { at += 1 }
        }
        var fields = [ApplicationField("namespace", .string(namespace))]
        if let id = digits() { fields.append(ApplicationField("id", .integer(Int64(id)))) }
        let data = UnsafeRawBufferPointer(rebasing: bytes[at...])
        if !data.isEmpty {
            if let error = JSONScanner.validate(data) {
                return emit(.finding(.notJSON(error, protocolName: "socket.io", index: input.index), direction: input.direction))
            }
            if type == "event" || type == "binary_event", let elements = JSONScanner.elements(data), let name = elements.first,
               name.kind == .string, let event = JSONScanner.string(data, name.range) {
                fields.append(ApplicationField("event", .string(event)))
            }
            fields.append(ApplicationField("data", .json(Array(data))))
        }
        let message = ApplicationMessage(
            protocolName: "socket.io", type: type, direction: input.direction, fields: fields, messages: input.only, detection: .url)
        if type == "connect_error" {
            let reason = JSONObjectMessage.read(ApplicationInput(
                direction: input.direction, index: input.index, isText: true, payload: data, isComplete: true, time: input.time))
            let text = (try? reason.get())??.string("message") ?? String(decoding: data.prefix(200), as: UTF8.self)
            emit(.finding(ApplicationFinding(severity: .warning, code: "socketio-connect-error",
                                             detail: "connection to namespace \(namespace) refused: \(text.prefix(200))"), direction: input.direction))
        }
        guard attachments > 0 else { return emit(.message(message)) }
        waiting[input.direction] = Pending(message: message, remaining: attachments)
    }

    public func finish(at time: CaptureTimestamp, emit: (ApplicationOutput) -> Void) {
        for index in 0..<2 {
            guard let pending = waiting[index] else { continue }
            waiting[index] = nil
            emit(.finding(.malformed("socket.io", index: pending.message.messages.lowerBound, "\(pending.remaining) attachments never came"),
                          direction: pending.message.direction))
            emit(.message(pending.message))
        }
    }
}
