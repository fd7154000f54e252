import WSTapCore
import WSTapApplication
import WSTapWebSocket

/// The message-level stage of a WebSocket stream: hands each decoded data message to the stream's
/// application decoder (`MessageDecoder`, chosen from the registry by `Sec-WebSocket-Protocol` or
/// URL, or sniffed from its first data message) and puts what it says on the timeline as
/// application events and issues.
final class MessageStage {
    private enum Choice {
        case decoding(any MessageDecoder, protocolName: String, detection: ApplicationDetection)
        /// The first data message will say, through the sniffing table.
        case sniffing([ApplicationSniffer])
        /// Sniffing recognised nothing: the stream's messages are not decoded further.
        case none
    }

    private var choice: Choice

    init(entry: MessageStageEntry, detection: ApplicationDetection) {
        choice = .decoding(entry.make(), protocolName: entry.protocolName, detection: detection)
    }

    init(sniffing sniffers: [ApplicationSniffer]) {
        choice = .sniffing(sniffers)
    }

    /// A data message of the stream, its `index` counted in its direction from 0. Messages that
    /// could not be decoded (compressed beyond repair) are not the application's words: the
    /// decoder is told bytes are missing instead.
    func receive(
        _ message: WebSocketMessage, index: UInt64, direction: StreamDirection, at time: CaptureTimestamp,
        stream: StreamContext
    ) {
        guard message.isDecoded, message.opcode == .text || message.opcode == .binary else {
            return missing(direction: direction, stream: stream)
        }
        let input = ApplicationInput(
            direction: direction, index: index, isText: message.opcode == .text, payload: message.payload,
            isComplete: message.isComplete && message.gaps.isEmpty, time: time)
        if case .sniffing(let sniffers) = choice {
            if let found = sniffers.first(where: { $0.recognises(input) }) {
                choice = .decoding(found.entry.make(), protocolName: found.entry.protocolName, detection: .sniffed)
            } else {
                choice = .none
            }
        }
        guard case .decoding(let decoder, let protocolName, let detection) = choice else { return }
        decoder.receive(input) { deliver($0, protocolName: protocolName, detection: detection, at: time, stream: stream) }
    }

    func missing(direction: StreamDirection, stream: StreamContext) {
        guard case .decoding(let decoder, let protocolName, let detection) = choice else { return }
        decoder.missing(direction: direction) { deliver($0, protocolName: protocolName, detection: detection, at: nil, stream: stream) }
    }

    func finish(at time: CaptureTimestamp, stream: StreamContext) {
        guard case .decoding(let decoder, let protocolName, let detection) = choice else { return }
        decoder.finish(at: time) { deliver($0, protocolName: protocolName, detection: detection, at: time, stream: stream) }
    }

    private func deliver(
        _ output: ApplicationOutput, protocolName: String, detection: ApplicationDetection, at time: CaptureTimestamp?,
        stream: StreamContext
    ) {
        switch output {
        case .message(var message):
            if message.protocolName.isEmpty { message.protocolName = protocolName }
            message.detection = detection
            stream.emit(.application(message), at: time)
        case .finding(let finding, let direction):
            stream.report(Issue(
                time: time, direction: direction, severity: finding.severity, code: finding.code, detail: finding.detail))
        }
    }
}
