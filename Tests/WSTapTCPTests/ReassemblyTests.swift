import Testing
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
          missing: Int = 0) {
    let bytes = Array(payload.utf8)
    bytes.withUnsafeBytes { raw in
        let to = source == client ? server : client
        table.process(TCPSegment(source: source, destination: to, sequenceNumber: seq, acknowledgmentNumber: 0,
                                 flags: flags, window: 1000, payload: raw, missingPayloadLength: missing),
                      at: CaptureTimestamp(seconds: 1, nanoseconds: 0))
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

    @Test func lateSegmentsAfterCloseDoNotOpenGhosts() {
        let observer = RecordingObserver()
        let table = ConnectionTable(observer: observer)
        send(table, from: client, seq: 1, .syn)
        send(table, from: client, seq: 2, .rst)
        send(table, from: client, seq: 2, .ack, "late")
        #expect(observer.handlers.count == 1)
        #expect(table.statistics.segmentsAfterClose == 1)
    }
}
