import Testing
import WSTapCore
import WSTapPackets
@testable import WSTapTCP

/// The census counts what a table holds and evicts what it evicts, segment by segment, when
/// every FIN is delivered as it is seen (no holes): opens by SYN, SYN-ACK and mid-stream data,
/// FIN each way, RST, a port reused with another initial sequence number, idle sweeps and
/// evictions past the limit. (A connection swept or evicted is not sent to again: its next
/// segment would open one mid-stream, whose bytes a later SYN would leave behind a hole.)
@Suite struct ConnectionCensusTests {
    /// One connection of the simulation: its client port and next sequence numbers.
    struct Peer {
        var port: UInt16
        var clientSequence: UInt32
        var serverSequence: UInt32
        var finished = (client: false, server: false)
        /// Opened by a SYN (a connection seen mid-stream has no initial sequence number to differ
        /// from: a SYN there restarts nothing, and the bytes before it would be a hole).
        var handshake = true
    }

    @Test func countsAndEvictsAsTheTableDoes() {
        var limits = ReassemblyLimits()
        limits.maxConnections = 40
        limits.idleTimeoutSeconds = 30
        let table = ConnectionTable(limits: limits)
        // Which id the table gave each 4-tuple, and which ids it removed while taking a segment.
        var ids: [ConnectionKey: UInt64] = [:]
        var opening: ConnectionKey?
        var removed: Set<UInt64> = []
        table.connectionNumbered = { id, _ in ids[opening!] = id }
        table.connectionRemoved = { removed.insert($0) }
        let census = ConnectionCensus(limits: limits)
        var random = SplitMix(seed: 7)
        var peers: [Peer] = []
        var seconds: Int64 = 1
        var lastSweep: CaptureTimestamp?
        var evictionsSeen = 0
        var sweepsSeen = 0
        /// Connections evicted by the last segment.
        var gone: Set<ConnectionKey> = []
        func key(_ peer: Peer) -> ConnectionKey {
            ConnectionKey(Endpoint(address: .v4(0x0A00_0001), port: peer.port), Endpoint(address: .v4(0x0A00_0002), port: 80))
        }

        func segment(_ peer: Peer, fromClient: Bool, _ flags: TCPFlags, payload: String = "") {
            let clientEnd = Endpoint(address: .v4(0x0A00_0001), port: peer.port)
            let serverEnd = Endpoint(address: .v4(0x0A00_0002), port: 80)
            let time = CaptureTimestamp(seconds: seconds, nanoseconds: 0)
            Array(payload.utf8).withUnsafeBytes { raw in
                let built = TCPSegment(
                    source: fromClient ? clientEnd : serverEnd, destination: fromClient ? serverEnd : clientEnd,
                    sequenceNumber: fromClient ? peer.clientSequence : peer.serverSequence,
                    acknowledgmentNumber: fromClient ? peer.serverSequence : peer.clientSequence,
                    flags: flags, window: 1000, payload: raw, missingPayloadLength: 0)
                if ConnectionTable.sweepIsDue(at: time, lastSweep: &lastSweep) {
                    let before = census.count
                    census.sweep(at: time)
                    if census.count < before { sweepsSeen += 1 }
                }
                let victimKeys = census.process(built, hashes: Self.hashes(of: built), at: time) ?? []
                let victims = Set(victimKeys.map { ids[$0]! })
                gone.formUnion(victimKeys)
                opening = ConnectionKey(built.source, built.destination)
                removed = []
                table.process(built, at: time)
                #expect(victims.isSubset(of: removed), "the census evicted \(victims.sorted()), the table closed \(removed.sorted())")
                if !victims.isEmpty { evictionsSeen += 1 }
            }
            #expect(census.count == table.openConnectionCount, "at \(seconds) s: \(census.count) counted, \(table.openConnectionCount) open")
        }

        for step in 0..<4_000 {
            if step % 400 == 399 {
                seconds += 45  // past the idle timeout: every connection is swept at the next segment
                peers.removeAll()
            } else if step % 10 == 0 {
                seconds += 1
            }
            if !gone.isEmpty {
                peers.removeAll { gone.contains(key($0)) }
                gone = []
            }
            let choice = random.next(below: 100)
            if peers.isEmpty || choice < 30 {
                // A new connection: a handshake, or data seen mid-stream.
                // On a port no open peer uses (another peer's segments on it would leave holes).
                let port = UInt16(1024 + random.next(below: 300))
                guard !peers.contains(where: { $0.port == port }) else { continue }
                var peer = Peer(port: port, clientSequence: UInt32(random.next(below: 1 << 30)), serverSequence: 9000)
                if random.next(below: 4) == 0 {
                    segment(peer, fromClient: true, .ack, payload: "mid-stream")
                    peer.clientSequence &+= 10
                    peer.handshake = false
                } else {
                    segment(peer, fromClient: true, .syn)
                    peer.clientSequence &+= 1
                    segment(peer, fromClient: false, [.syn, .ack])
                    peer.serverSequence &+= 1
                }
                peers.append(peer)
                continue
            }
            let index = random.next(below: peers.count)
            var peer = peers[index]
            switch choice {
            case 30..<75:
                let fromClient = random.next(below: 2) == 0
                guard !(fromClient ? peer.finished.client : peer.finished.server) else { continue }
                segment(peer, fromClient: fromClient, .ack, payload: "data")
                if fromClient { peer.clientSequence &+= 4 } else { peer.serverSequence &+= 4 }
            case 75..<85:
                let fromClient = random.next(below: 2) == 0
                guard !(fromClient ? peer.finished.client : peer.finished.server) else { continue }
                segment(peer, fromClient: fromClient, [.fin, .ack])
                if fromClient {
                    peer.clientSequence &+= 1
                    peer.finished.client = true
                } else {
                    peer.serverSequence &+= 1
                    peer.finished.server = true
                }
            case 85..<89:
                segment(peer, fromClient: random.next(below: 2) == 0, [.rst])
                peers.remove(at: index)
                continue
            default:
                // The port used again with another initial sequence number.
                guard peer.handshake else { continue }
                peer.clientSequence = UInt32(random.next(below: 1 << 30))
                peer.finished = (false, false)
                segment(peer, fromClient: true, .syn)
                peer.clientSequence &+= 1
            }
            if peer.finished.client, peer.finished.server { peers.remove(at: index) } else { peers[index] = peer }
        }
        #expect(evictionsSeen > 5, "the simulation must reach the limit")
        #expect(sweepsSeen > 2, "the simulation must sweep idle connections")
    }

    /// Endpoint hashes as a parallel analysis makes them (any well-mixed hash will do).
    static func hashes(of segment: TCPSegment) -> EndpointHashes {
        func hash(_ endpoint: Endpoint) -> UInt64 {
            guard case .v4(let address) = endpoint.address else { return 0 }
            return (UInt64(address) << 16 | UInt64(endpoint.port)).mixed(seed: 0x1234_5678)
        }
        return EndpointHashes(source: hash(segment.source), destination: hash(segment.destination))
    }
}

/// A small deterministic generator (splitmix64).
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next(below bound: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int((mixed ^ (mixed >> 31)) % UInt64(bound))
    }
}
