import Testing
import WSTapCore
import WSTapCapture
import WSTapPackets
@testable import WSTapTCP

final class RecordingHandler: TCPStreamHandler {
    var log: [String] = []
    var bytes: [[UInt8]] = [[], []]

    func receive(_ data: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) {
        bytes[direction.rawValue] += data
    }
    func missing(_ range: MissingRange, direction: StreamDirection, at time: CaptureTimestamp) {
        log.append("gap \(direction.label) \(range.byteCount)" + (range.cause == .cutBySnaplen ? " snaplen" : " @\(range.startSequence)"))
    }
    func conflictingRetransmission(startSequence: UInt32, byteCount: Int, direction: StreamDirection, at time: CaptureTimestamp) {
        log.append("conflict \(direction.label) \(startSequence) \(byteCount)")
    }
    func finished(direction: StreamDirection, at time: CaptureTimestamp) { log.append("fin \(direction.label)") }
    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) { log.append("closed \(reason.rawValue)") }
}

final class RecordingObserver: TCPConnectionObserver {
    var handlers: [RecordingHandler] = []
    var infos: [TCPConnectionInfo] = []
    func connectionOpened(_ connection: TCPConnectionInfo, at time: CaptureTimestamp) -> any TCPStreamHandler {
        let handler = RecordingHandler()
        handlers.append(handler)
        infos.append(connection)
        return handler
    }
}

let client = Endpoint(address: .v4(0x7F00_0001), port: 50000)
let server = Endpoint(address: .v4(0x7F00_0001), port: 80)

func send(_ table: ConnectionTable, from source: Endpoint, seq: UInt32, _ flags: TCPFlags = .ack, _ payload: String = "",
          missing: Int = 0, to destination: Endpoint? = nil, at seconds: Int64 = 1, ack: UInt32 = 0) {
    let bytes = Array(payload.utf8)
    bytes.withUnsafeBytes { raw in
        let to = destination ?? (source == client ? server : client)
        table.process(TCPSegment(source: source, destination: to, sequenceNumber: seq, acknowledgmentNumber: ack,
                                 flags: flags, window: 1000, payload: raw, missingPayloadLength: missing),
                      at: CaptureTimestamp(seconds: seconds, nanoseconds: 0))
    }
}

/// Keeps when each byte and gap arrived.
final class TimedHandler: TCPStreamHandler {
    var log: [String] = []
    func receive(_ data: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp) {
        log.append("\(String(decoding: data, as: UTF8.self)) @\(time.seconds)")
    }
    func missing(_ range: MissingRange, direction: StreamDirection, at time: CaptureTimestamp) {
        log.append("gap \(range.byteCount) @\(time.seconds)")
    }
    func conflictingRetransmission(startSequence: UInt32, byteCount: Int, direction: StreamDirection, at time: CaptureTimestamp) {}
    func finished(direction: StreamDirection, at time: CaptureTimestamp) { log.append("fin \(direction.label) @\(time.seconds)") }
    func closed(reason: ConnectionEndReason, at time: CaptureTimestamp) { log.append("closed \(reason.rawValue) @\(time.seconds)") }
}

final class TimedObserver: TCPConnectionObserver {
    let handler = TimedHandler()
    func connectionOpened(_ connection: TCPConnectionInfo, at time: CaptureTimestamp) -> any TCPStreamHandler { handler }
}

struct GapTimingTests {
    /// A segment lost by the capture: the receiver's ACK above it declares the hole at once
    /// (not at the end of the capture); the bytes held behind it keep their own packets' times,
    /// and the FIN behind it is delivered, so the connection ends with its FINs.
    @Test func anAcknowledgmentAboveAHoleDeclaresItAndBytesKeepTheirTimes() {
        let observer = TimedObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 100, .syn, at: 1)
        send(table, from: server, seq: 5000, [.syn, .ack], at: 1, ack: 101)
        send(table, from: client, seq: 101, .ack, "aaaa", at: 2, ack: 5001)
        // "bbbb" (105-108) is lost by the capture.
        send(table, from: client, seq: 109, .ack, "cccc", at: 3, ack: 5001)
        send(table, from: client, seq: 113, [.ack, .fin], at: 4, ack: 5001)
        // The server acknowledged everything, the lost bytes and the FIN included.
        send(table, from: server, seq: 5001, .ack, at: 5, ack: 114)
        send(table, from: server, seq: 5001, [.ack, .fin], at: 6, ack: 114)
        send(table, from: client, seq: 114, .ack, at: 7, ack: 5002)
        #expect(observer.handler.log == ["aaaa @2", "gap 4 @5", "cccc @3", "fin c2s @5", "fin s2c @6", "closed fin @6"])
        #expect(table.openConnectionCount == 0)
    }

    /// Bytes held behind a hole that a later packet fills are complete in that packet.
    @Test func bytesMadeContiguousByALaterPacketTakeItsTime() {
        let observer = TimedObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 100, .syn, at: 1)
        send(table, from: client, seq: 105, .ack, "world", at: 2)
        send(table, from: client, seq: 101, .ack, "hell", at: 3)
        #expect(observer.handler.log == ["hell @3", "world @3"])
    }

    /// An ACK field past everything the capture holds proves nothing: the hole waits.
    @Test func anAcknowledgmentBeyondWhatIsHeldIsNoEvidence() {
        let observer = TimedObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 100, .syn, at: 1)
        send(table, from: client, seq: 109, .ack, "cccc", at: 2)
        send(table, from: server, seq: 5001, .ack, at: 3, ack: 1_000_000)
        #expect(observer.handler.log.isEmpty)
        table.finish(at: CaptureTimestamp(seconds: 9, nanoseconds: 0))
        #expect(observer.handler.log == ["gap 8 @9", "cccc @2", "closed end-of-capture @9"])
    }
}

struct ReassemblyTests {
    @Test func reordersRetransmitsAndClosesOnFins() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 100, .syn)
        send(table, from: server, seq: 5000, [.syn, .ack])
        send(table, from: client, seq: 106, .ack, "world")       // ahead of a hole
        send(table, from: client, seq: 101, .ack, "hello")       // fills it
        send(table, from: client, seq: 101, .ack, "hello")       // retransmission
        send(table, from: client, seq: 104, .ack, "lo")          // overlap
        send(table, from: server, seq: 5001, [.ack, .fin], "bye")
        send(table, from: client, seq: 111, [.ack, .fin])
        let handler = observer.handlers[0]
        #expect(String(decoding: handler.bytes[0], as: UTF8.self) == "helloworld")
        #expect(String(decoding: handler.bytes[1], as: UTF8.self) == "bye")
        #expect(handler.log == ["fin s2c", "fin c2s", "closed fin"])
        #expect(observer.infos[0].client == client && observer.infos[0].handshakeSeen)
        #expect(table.statistics.outOfOrderSegments == 1)
        #expect(table.statistics.retransmittedBytes == 7)
        #expect(table.openConnectionCount == 0)
    }

    @Test func sequenceNumbersWrapAround() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: UInt32.max - 2, .syn)
        send(table, from: client, seq: UInt32.max - 1, .ack, "abc")
        send(table, from: client, seq: 1, .ack, "def")
        table.finish(at: .zero)
        #expect(String(decoding: observer.handlers[0].bytes[0], as: UTF8.self) == "abcdef")
        #expect(observer.handlers[0].log == ["closed end-of-capture"])
    }

    @Test func holesAreReportedWhenTheConnectionEnds() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 10, .syn)
        send(table, from: client, seq: 11, .ack, "ab")
        send(table, from: client, seq: 20, .ack, "xy")
        send(table, from: client, seq: 30, .rst)
        #expect(observer.handlers[0].log == ["gap c2s 7 @13", "closed rst"])
        #expect(String(decoding: observer.handlers[0].bytes[0], as: UTF8.self) == "abxy")
    }

    @Test func bufferLimitDeclaresTheHoleLost() {
        var limits = ReassemblyLimits()
        limits.maxPendingBytesPerDirection = 4
        let observer = RecordingObserver()
        let table = ConnectionTable(limits: limits, observer: observer)
        send(table, from: client, seq: 0, .syn)
        send(table, from: client, seq: 11, .ack, "abcdef")
        #expect(observer.handlers[0].log == ["gap c2s 10 @1"])
        #expect(String(decoding: observer.handlers[0].bytes[0], as: UTF8.self) == "abcdef")
    }

    @Test func snaplenCutBytesAreMissingNotInvented() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 0, .syn)
        send(table, from: client, seq: 1, .ack, "abc", missing: 5)
        send(table, from: client, seq: 9, .ack, "z")
        #expect(observer.handlers[0].log == ["gap c2s 5 snaplen"])
        #expect(String(decoding: observer.handlers[0].bytes[0], as: UTF8.self) == "abcz")
    }

    @Test func retransmissionWithDifferentBytesIsAConflict() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 0, .syn)
        send(table, from: client, seq: 1, .ack, "first")
        send(table, from: client, seq: 1, .ack, "first")     // a faithful retransmission
        send(table, from: client, seq: 1, .ack, "FIRST")     // the same range, other bytes
        #expect(observer.handlers[0].log == ["conflict c2s 1 5"])
        #expect(String(decoding: observer.handlers[0].bytes[0], as: UTF8.self) == "first")
    }

    @Test func synWithANewSequenceNumberStartsANewConnection() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 100, .syn)
        send(table, from: client, seq: 101, .ack, "one")
        send(table, from: client, seq: 900, .syn)
        send(table, from: client, seq: 901, .ack, "two")
        #expect(observer.handlers.count == 2)
        #expect(observer.handlers[0].log == ["closed reused"])
        #expect(String(decoding: observer.handlers[1].bytes[0], as: UTF8.self) == "two")
        #expect(observer.infos.map(\.id) == [1, 2])
    }

    @Test func midStreamConnectionsGuessTheServerByPortAndIgnoreBareAcks() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: server, seq: 7, .ack)        // no payload: nothing to open
        send(table, from: server, seq: 7, .ack, "data")
        #expect(observer.infos.count == 1)
        #expect(observer.infos[0].client == client && !observer.infos[0].handshakeSeen)
        #expect(table.statistics.segmentsWithoutConnection == 1)
    }

    @Test func tinySegmentsAheadOfAHoleAreBoundedInCountAndMemory() throws {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 1, .syn)
        // A 10-byte hole, then 5,000 one-byte segments in reverse order: past 4,096 held, the
        // hole up to the first of them (offset 903) is given up; the rest come too late.
        for offset in (0..<5000).reversed() { send(table, from: client, seq: UInt32(12 + offset), .ack, "x") }
        let handler = try #require(observer.handlers.first)
        #expect(handler.log.first == "gap c2s 913 @2")
        #expect(table.statistics.outOfOrderSegments == 4097)
        // Each held byte counts 65 toward the limit: 100 of them fit under 6,500 bytes, not 6,500.
        var limits = ReassemblyLimits()
        limits.maxPendingBytesPerDirection = 6500
        let smallObserver = RecordingObserver()  // the table does not retain its observer
        let small = ConnectionTable(limits: limits, observer: smallObserver)
        send(small, from: client, seq: 1, .syn)
        for offset in 0..<100 { send(small, from: client, seq: UInt32(12 + offset), .ack, "x") }
        #expect(smallObserver.handlers.isEmpty)  // all held: nothing handed out yet
        send(small, from: client, seq: 112, .ack, "x")
        #expect(smallObserver.handlers.first?.log.first == "gap c2s 10 @2")
        table.finish(at: CaptureTimestamp(seconds: 2, nanoseconds: 0))
        #expect(handler.bytes[0].count + Int(table.statistics.missingBytes) == 5010)
    }

    @Test func lateSegmentsAfterCloseDoNotOpenGhosts() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 1, .syn)
        send(table, from: client, seq: 2, .ack, "hi")
        send(table, from: client, seq: 4, .rst)
        send(table, from: client, seq: 4, .ack, "late")
        #expect(observer.handlers.count == 1)
        #expect(observer.handlers[0].log == ["closed rst"])
        #expect(table.statistics.segmentsAfterClose == 1)
    }
}

/// The table's own bounds: connections without bytes, the connection limit, idle timeouts and the
/// memory of closed 4-tuples.
struct ConnectionLimitTests {
    static func peer(_ index: Int) -> Endpoint { Endpoint(address: .v4(0x0A00_0000 + UInt32(index)), port: 40000) }

    static func limited(_ connections: Int, idleTimeout: Int64 = 3600) -> (ConnectionTable, RecordingObserver) {
        var limits = ReassemblyLimits()
        limits.maxConnections = connections
        limits.idleTimeoutSeconds = idleTimeout
        let observer = RecordingObserver()
        return (ConnectionTable(limits: limits, observer: observer), observer)
    }

    @Test func connectionsWithoutBytesGetNoHandlerButAreCounted() {
        let (table, observer) = Self.limited(100)
        for index in 0..<50 { send(table, from: Self.peer(index), seq: 1, .syn, to: server) }
        #expect(observer.handlers.isEmpty)
        #expect(table.statistics.connections == 50)
        #expect(table.openConnectionCount == 50)
        // The first bytes create the handler, with the time and roles of the SYN.
        send(table, from: Self.peer(7), seq: 2, .ack, "data", to: server, at: 5)
        #expect(observer.infos.map(\.id) == [8])
        #expect(observer.infos[0].client == Self.peer(7) && observer.infos[0].handshakeSeen)
        table.finish(at: CaptureTimestamp(seconds: 9, nanoseconds: 0))
        #expect(observer.handlers[0].bytes[0] == Array("data".utf8))
        #expect(observer.handlers[0].log == ["closed end-of-capture"])
    }

    @Test func theLeastRecentlyActiveIsEvictedAndComesBackIfItSendsAgain() {
        let (table, observer) = Self.limited(3)
        for index in 0..<3 { send(table, from: Self.peer(index), seq: 1, .ack, "a", to: server, at: Int64(index)) }
        send(table, from: Self.peer(0), seq: 2, .ack, "b", to: server, at: 3)   // 1 is now the least recent
        send(table, from: Self.peer(3), seq: 1, .ack, "c", to: server, at: 4)   // over the limit
        #expect(observer.handlers.map(\.log) == [[], ["closed evicted"], [], []])
        #expect(table.openConnectionCount == 3)
        // Still alive on the wire: its next bytes open it again, seen mid-stream, not dropped.
        send(table, from: Self.peer(1), seq: 2, .ack, "d", to: server, at: 5)
        #expect(observer.infos.map(\.client) == [Self.peer(0), Self.peer(1), Self.peer(2), Self.peer(3), Self.peer(1)])
        #expect(observer.handlers[4].bytes[0] == Array("d".utf8))
        #expect(table.statistics.segmentsAfterClose == 0)
    }

    @Test func idleConnectionsCloseAtTheNextSweep() {
        let (table, observer) = Self.limited(100, idleTimeout: 30)
        send(table, from: Self.peer(0), seq: 1, .ack, "a", to: server, at: 100)
        send(table, from: Self.peer(1), seq: 1, .ack, "a", to: server, at: 101)
        send(table, from: Self.peer(0), seq: 2, .ack, "b", to: server, at: 102)
        send(table, from: Self.peer(2), seq: 1, .ack, "a", to: server, at: 125)
        send(table, from: Self.peer(2), seq: 2, .ack, "b", to: server, at: 140)  // sweeps: 0 and 1 idle past 30 s
        #expect(observer.handlers.map(\.log) == [["closed idle-timeout"], ["closed idle-timeout"], []])
        #expect(table.openConnectionCount == 1)
    }

    @Test func closedTuplesAreRememberedUpToTheLimitThenForgottenOldestFirst() {
        let (table, observer) = Self.limited(2)
        for index in 0..<3 {
            send(table, from: Self.peer(index), seq: 1, .ack, "a", to: server)
            send(table, from: Self.peer(index), seq: 2, .rst, to: server)
        }
        send(table, from: Self.peer(2), seq: 2, .ack, "late", to: server)   // remembered: dropped, counted
        #expect(table.statistics.segmentsAfterClose == 1)
        send(table, from: Self.peer(0), seq: 2, .ack, "new", to: server)    // forgotten: a new connection
        #expect(observer.handlers.count == 4)
        #expect(table.statistics.segmentsAfterClose == 1)
    }
}
