import WSTapWebSocket

/// An event kept beyond its delivery: its borrowed bytes (a frame's or a message's payload and
/// gaps) copied into an `EventArena`, where `payload` and `gaps` say they are.
package struct KeptEvent {
    /// The event, its borrowed pointers emptied.
    var event: TimelineEvent
    var payload: Range<Int>
    var gaps: Range<Int>
}

/// Where kept events' bytes live: the one owned copy of events, used both by a connection holding
/// its events until both directions are decided and by a `--jobs` job recording events for the
/// merge. One arena holds the bytes of many events, so keeping one costs no allocation of its own.
package struct EventArena {
    private(set) var payloads: [UInt8] = []
    private(set) var gaps: [PayloadGap] = []
    /// The last frame kept: its payload's length and where its bytes are. A message that is that
    /// frame's payload (`isFramePayload`) shares them.
    private var lastFrame: (count: Int, kept: Range<Int>)?

    package init() {}

    /// Room for about as much as `other` held (a recorder's next batch).
    package init(sizedLike other: EventArena) {
        payloads.reserveCapacity(min(other.payloads.count, .mebibytes(8)))
    }

    /// Copies what `event` borrows, and returns it without the borrowed pointers.
    package mutating func keep(_ event: TimelineEvent) -> KeptEvent {
        var kept = event
        switch event.kind {
        case .frame(var frame):
            let (payload, gaps) = (keep(frame.payload), keep(frame.gaps))
            lastFrame = (frame.payload.count, payload)
            frame.payload = UnsafeRawBufferPointer(start: nil, count: 0)
            frame.gaps = UnsafeBufferPointer(start: nil, count: 0)
            kept.kind = .frame(frame)
            return KeptEvent(event: kept, payload: payload, gaps: gaps)
        case .message(var message):
            let bytes = message.message.payload
            let payload: Range<Int>
            if message.message.isFramePayload, let lastFrame, lastFrame.count == bytes.count {
                payload = lastFrame.kept
            } else {
                payload = keep(bytes)
            }
            let gaps = keep(message.message.gaps)
            message.message.payload = UnsafeRawBufferPointer(start: nil, count: 0)
            message.message.gaps = UnsafeBufferPointer(start: nil, count: 0)
            kept.kind = .message(message)
            return KeptEvent(event: kept, payload: payload, gaps: gaps)
        default:
            return KeptEvent(event: event, payload: 0..<0, gaps: 0..<0)
        }
    }

    /// Lends `kept` to `body` with its bytes pointing into the arena again.
    package func lend(_ kept: KeptEvent, _ body: (TimelineEvent) -> Void) {
        payloads.withUnsafeBytes { payloadBytes in
            gaps.withUnsafeBufferPointer { gapList in
                var event = kept.event
                switch event.kind {
                case .frame(var frame):
                    frame.payload = UnsafeRawBufferPointer(rebasing: payloadBytes[kept.payload])
                    frame.gaps = UnsafeBufferPointer(rebasing: gapList[kept.gaps])
                    event.kind = .frame(frame)
                case .message(var message):
                    message.message.payload = UnsafeRawBufferPointer(rebasing: payloadBytes[kept.payload])
                    message.message.gaps = UnsafeBufferPointer(rebasing: gapList[kept.gaps])
                    event.kind = .message(message)
                default:
                    break
                }
                body(event)
            }
        }
    }

    private mutating func keep(_ bytes: UnsafeRawBufferPointer) -> Range<Int> {
        let start = payloads.count
        payloads.appendBytes(bytes)
        return start..<payloads.count
    }

    private mutating func keep(_ list: UnsafeBufferPointer<PayloadGap>) -> Range<Int> {
        let start = gaps.count
        gaps.append(contentsOf: list)
        return start..<gaps.count
    }
}
