import WSTapWebSocket

/// Every connection's events pass here on their way to the sink, and the connections' part of the
/// capture summary is folded from them: upgrades, issues, connections by protocol, and the frame
/// and message counters each connection reports when it ends. Connections never write into the
/// analyzer; two analyzers over disjoint sets of connections give summaries that `merge` into the
/// summary of one analyzer over all of them.
final class TimelineFold {
    let sink: any TimelineSink
    /// Asked once: whether frame and message events are worth building for the sink.
    let emitsFramesAndMessages: Bool
    private var folded = CaptureSummary()
    private var counters = ConnectionCounters()
    /// Progress for stop conditions (`sniff -c`), counted as connections decode: the summary's
    /// counts only include connections that ended.
    private(set) var framesDecoded: UInt64 = 0
    private(set) var messagesDecoded: UInt64 = 0

    /// The id the next connection to be shown gets (`AnalyzerOptions.numbersConnectionsAsShown`).
    private var nextShownID: UInt64 = 1

    func takeShownID() -> UInt64 {
        defer { nextShownID += 1 }
        return nextShownID
    }

    func frameDecoded() { framesDecoded &+= 1 }
    func messageDecoded() { messagesDecoded &+= 1 }

    init(sink: any TimelineSink) {
        self.sink = sink
        emitsFramesAndMessages = sink.receivesFramesAndMessages
    }

    func receive(_ event: TimelineEvent) {
        // Matched without bindings first: with the rare cases' bindings in this switch, every
        // frame and message paid for an outlined copy and release of the event (1.7% of chat
        // JSON's instructions).
        switch event.kind {
        case .upgrade, .issue, .connectionClosed, .streamClosed: fold(event.kind)
        default: break
        }
        sink.receive(event)
    }

    /// An event with nothing to fold (a frame or a message), straight to the sink.
    func pass(_ event: TimelineEvent) {
        sink.receive(event)
    }

    private func fold(_ kind: TimelineEvent.Kind) {
        switch kind {
        case .upgrade(let exchange):
            folded.upgradesByOutcome[exchange.outcome.rawValue, default: 0] &+= 1
            if let selected = exchange.selectedProtocol {
                folded.upgradesByProtocol[selected.lowercased(), default: 0] &+= 1
            }
        case .issue(let issue):
            folded.issuesByCode[issue.code, default: 0] &+= 1
        case .streamClosed(let end):
            counters.add(end.counters)
            if let tls = end.tls { foldTLS(tls) }
        case .connectionClosed(let end):
            folded.connectionsByProtocol[end.protocolKind.rawValue, default: 0] &+= 1
            folded.connectionsByOutcome[end.ending.outcome.rawValue, default: 0] &+= 1
            counters.add(end.counters)
            if let tls = end.tls { foldTLS(tls) }
        default:
            break
        }
    }

    /// A TLS session, the connection's own or one inside a stream's tunnel.
    private func foldTLS(_ tls: TLSSession) {
        folded.tlsConnections[tls.decrypted ? "decrypted" : "not-decrypted", default: 0] &+= 1
        folded.tlsRecordBytes.addSaturating(tls.recordBytes.clientToServer)
        folded.tlsRecordBytes.addSaturating(tls.recordBytes.serverToClient)
    }

    /// The summary of the connections that ended so far.
    var summary: CaptureSummary {
        var summary = folded
        summary.add(counters)
        return summary
    }
}
