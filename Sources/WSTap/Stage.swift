import WSTapCore
import WSTapTCP

/// A link of a connection's chain: the one shape every decoder in a chain has, TLS, HTTP/1.1,
/// WebSocket and opaque bytes alike. It takes the bytes of one direction (client and server as
/// the analyzer knows them) and bytes missing with their cause, puts what it understood on the
/// timeline through its `StreamContext`, and at the end reports what is unfinished.
///
/// A stage that finds the stream is something else hands over: `receive` and `missing` return the
/// stage that decodes the stream from then on, chosen from `StageRegistry`'s tables (HTTP returns
/// WebSocket after a 101, as Zeek replaces its HTTP analyzer on upgrade), having already passed it
/// the rest of the bytes it was given.
///
/// A class rather than a protocol so that the connection can call its current stage without
/// reference counting (`ManuallyRetained`, measured in docs/performance.md). This base class takes
/// bytes and ignores them; each stage overrides what it decodes.
class Stage {
    /// In-order bytes of `direction`, borrowed for the call. Returns a successor, if any.
    func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        nil
    }

    /// Bytes the capture lacks; the stream goes on after them. Returns a successor, if any.
    func missing(_ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp) -> Stage? {
        nil
    }

    /// The next bytes of `direction` may not start where a unit (head, frame) starts: the bytes
    /// before them were lost where their length could not be known (inside TLS records, or a cut head).
    func boundaryUnknown(direction: StreamDirection) {}

    /// The connection ended: report what is still held or unfinished.
    func finish(at time: CaptureTimestamp) {}

    /// Live capture, nothing has come for a while: decide on bytes held for a search (as `finish`
    /// would) without ending the stream.
    func settle(at time: CaptureTimestamp) {}

    /// What the stream is decoded as while this stage decodes it: the connection's phase is read
    /// from its current stage, never set from outside.
    var phase: ConnectionPhase { .opaque }

    /// Bytes are held that may later be decoded into events with earlier times (a frame search).
    var holdsBytesForEarlierEvents: Bool { false }

    /// How the stream ended, asked after `finish`: by default from the phase alone; the HTTP stage
    /// adds how its upgrade went, the WebSocket stage the closing it saw.
    func ending(reason: ConnectionEndReason) -> ConnectionEnding {
        ConnectionEnding.decide(phase: phase, upgrade: nil, handshakeFailed: false, closing: nil, reason: reason)
    }
}

/// What a connection is decoded as now: one value instead of a set of flags.
enum ConnectionPhase: Equatable {
    /// No bytes yet, or only bytes that did not yet show a protocol (an HTTP head in progress).
    case undecided
    /// HTTP/1.1 requests and responses.
    case http
    /// WebSocket frames are decoded; `detection` says how the connection is known to be WebSocket.
    case websocket(WebSocketDetection)
    /// The handshake was not captured, or the heads of the 101 were cut (`afterSwitch`): frames
    /// are being searched for.
    case searchingForWebSocket(WebSocketDetection, afterSwitch: Bool)
    /// A 101 switched to a protocol wstap does not decode: its bytes are counted.
    case otherUpgrade
    /// Nothing recognisable: the bytes are not decoded.
    case opaque
    /// TLS that is not (or not yet) decrypted, or whose plaintext wstap does not decode.
    case tls
    /// HTTP/2: its streams are the connection's streams.
    case http2

    /// What the connection turned out to carry, as the timeline names it.
    var protocolKind: ConnectionProtocol {
        switch self {
        case .undecided, .opaque: .unknown
        case .http: .http
        case .websocket: .websocket
        case .searchingForWebSocket(_, let afterSwitch): afterSwitch ? .otherUpgrade : .unknown
        case .otherUpgrade: .otherUpgrade
        case .tls: .tls
        case .http2: .http2
        }
    }

    var websocketDetection: WebSocketDetection? {
        if case .websocket(let detection) = self { return detection }
        return nil
    }
}
