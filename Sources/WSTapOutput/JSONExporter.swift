import Synchronization
import WSTap
import WSTapParallel
import WSTapCore
/// Writes the whole capture as one JSON document (docs/json-format.md, `format_version` 1).
///
/// Connections appear in id order (the order they were first shown). Each is built while open and
/// written once it has ended and every connection before it has been written, so memory follows
/// the open connections and those that ended behind a longer one. Past `memoryBudget` of rendered
/// JSON held, the largest lists move to a temporary file (`JSONSpool`) until the connection is
/// written.
public final class JSONExporter: TimelineSink {
    /// The objects of one JSON array, rendered as they come, one per line.
    final class ObjectList {
        let items: OutputBuffer
        private(set) var count = 0
        /// The first objects, moved to a spool (a job's, then the merge's), in order.
        private var spilled: [(spool: JSONSpool, chunk: JSONSpool.Chunk)] = []

        init(items: OutputBuffer = OutputBuffer()) { self.items = items }

        /// Memory a spill would give back: the buffer's, when it is larger than what a spill keeps.
        var freeableMemory: Int { items.capacity > Self.keptCapacity ? items.capacity : 0 }
        /// Room a list keeps uncounted: 1 KiB (at 64 KiB, 100,000 open WebSocket connections held
        /// 1.9 GB of lists that the budget never saw).
        private static let keptCapacity = Int.kibibytes(1)

        /// Moves the objects rendered so far to `spool` and gives back the buffer's memory; false
        /// if they stay in memory.
        func spill(to spool: JSONSpool) -> Bool {
            if items.count > 0 {
                guard let chunk = items.withBytes({ spool.store($0) }) else { return false }
                spilled.append((spool, chunk))
            }
            items.removeAll(shrinkingAbove: Self.keptCapacity, to: 512)
            return true
        }

        /// Starts the next object; its fields go into `items`, then a closing brace.
        ///
        /// Frames and messages are written through `items` borrowed without reference counting:
        /// releasing a reference after a burst of writes is a locked instruction that waits for
        /// every pending store, which cost a tenth of the JSON run.
        func beginObject() {
            // Two literal calls, not one with a chosen literal: a constant length is a few moves,
            // a variable one a call to memcpy.
            if count == 0 { items.raw("\n{") } else { items.raw(",\n{") }
            count += 1
        }

        func write(to output: OutputChannel) {
            output.write("[")
            for (spool, chunk) in spilled where !spool.copy(chunk, to: output) {
                output.markFailed("the JSON spooled to a temporary file could not be read back")
                return
            }
            output.write(items)
            output.write(count == 0 ? "]" : "\n]")
        }
    }

    final class OpenConnection {
        let record: ConnectionRecord
        /// HTTP requests with their responses, as paired by the HTTP stage.
        let exchanges = ObjectList()
        /// The last Upgrade offer's fields, and the body of its answer when it did not switch.
        var upgrade: OutputBuffer?
        var upgradeAnswerBody: OutputBuffer?
        /// Each stream's own handshake (an HTTP/2 extended CONNECT), written with the stream's end.
        var streamUpgrades: [StreamID: OutputBuffer] = [:]
        let frames: ObjectList
        let messages: ObjectList
        let issues = ObjectList()
        /// What application protocols said inside the messages (written only when there is any).
        let applicationMessages = ObjectList()
        /// The ends of the connection's streams, when it carries several (written only then).
        let streams = ObjectList()

        init(record: ConnectionRecord, frameBuffer: OutputBuffer, messageBuffer: OutputBuffer) {
            self.record = record
            frames = ObjectList(items: frameBuffer)
            messages = ObjectList(items: messageBuffer)
        }

        func addFrame(
            _ frame: FrameRecord, at time: CaptureTimestamp?, stream: StreamID?, maxPayload: Int?, textCache: FrameTextCache
        ) {
            frames.beginObject()
            Unretained(frames.items).with {
                $0.frameFields(frame, at: time, maxPayload: maxPayload, textCache: textCache)
                $0.streamField(stream)
                $0.raw("}")
            }
        }

        func addMessage(
            _ message: MessageRecord, at time: CaptureTimestamp?, stream: StreamID?, maxPayload: Int?, textCache: FrameTextCache
        ) {
            messages.beginObject()
            Unretained(messages.items).with {
                $0.messageFields(message, at: time, maxPayload: maxPayload, textCache: textCache)
                $0.streamField(stream)
                $0.raw("}")
            }
        }

        func addApplicationMessage(_ message: ApplicationMessage, at time: CaptureTimestamp?, stream: StreamID?) {
            applicationMessages.beginObject()
            applicationMessages.items.applicationFields(message, at: time)
            applicationMessages.items.streamField(stream)
            applicationMessages.items.raw("}")
        }

        /// A request and its response (or null), as the HTTP stage paired them (with its stream,
        /// on a connection that carries several).
        func addExchange(_ exchange: HTTPExchange, stream: StreamID?) {
            exchanges.beginObject()
            let items = exchanges.items
            items.raw("\"request\":{")
            items.requestFields(exchange.request, time: exchange.requestTime)
            items.raw("},\"response\":")
            if let response = exchange.response, let time = exchange.responseTime {
                items.raw("{")
                items.responseFields(response, time: time)
                items.raw("}")
            } else {
                items.raw("null")
            }
            items.streamField(stream)
            items.raw("}")
        }

        var lists: [ObjectList] { [exchanges, frames, messages, issues, applicationMessages, streams] }

        /// Memory of its lists that spilling would give back.
        var freeableMemory: Int { lists.reduce(0) { $0 + $1.freeableMemory } }
    }

    let output: OutputChannel
    let maxPayload: Int?
    /// Connections not yet written, each retained once by this table (by hand: the lookup
    /// for every frame and message then costs no reference counting).
    private var open: [UInt64: ManuallyRetained<OpenConnection>] = [:]
    /// Consecutive events mostly concern one connection: the last one looked up, by id.
    private var lastID: UInt64 = 0
    private var lastConnection: Unretained<OpenConnection>?
    private var written = 0
    /// Ids of the connections shown and not yet written, in the order shown (ascending).
    private var shownOrder = FIFOQueue<UInt64>()
    /// Connections that ended while one shown before them is still open, by id.
    private var ended: [UInt64: EndedConnection] = [:]
    private let captureIssues = ObjectList()
    private let scratch = OutputBuffer()
    private let textCache = FrameTextCache()
    /// Bounds decompressed payloads shown when `maxPayload` is nil.
    var inflatedBudget = InflatedPayloadBudget()
    /// Frame and message buffers of connections already written, kept for the next ones.
    let spares = SpareBuffers()
    /// Memory the lists of connections not yet written hold beyond 1 KiB each (their buffers' capacity, not
    /// just the JSON in them: grown by doubling, a buffer can hold twice its contents); past
    /// `memoryBudget` the largest lists go to the spool until half of it is left, and one list goes
    /// as soon as it holds `listBudget` of JSON (32 MiB and 8 MiB; smaller in tests). With 4 MiB
    /// per list, bulk transfers wrote a third of their JSON to the file and read it back: 0.2 s of
    /// 0.6 s on 200 MB.
    private var bufferedBytes = 0
    private let memoryBudget: Int
    private let listBudget: Int
    /// Lists moved to the spool so far.
    private(set) var spills = 0
    let spool = JSONSpool()
    /// In a `--jobs` job's part: connections opened (so that the merge numbers them as they
    /// appear) and ended, not yet handed over.
    var partItems: [PartItem]?

    /// An ended connection waiting for its turn, and where its emptied buffers go.
    struct EndedConnection {
        let connection: OpenConnection
        let end: ConnectionEnd
        let spares: SpareBuffers
    }

    /// What a part hands the merge, in the order it happened.
    enum PartItem {
        case opened(UInt64)
        case ended(OpenConnection, ConnectionEnd)
    }
    /// Why a part's temporary file could not be used (reported once, by the whole exporter).
    var partSpoolFailure: SystemError?

    /// `maxPayload` cuts every payload shown to that many bytes (`--max-payload`).
    public convenience init(output: OutputChannel, maxPayload: Int? = nil) {
        self.init(output: output, maxPayload: maxPayload, memoryBudget: .mebibytes(32), listBudget: .mebibytes(8))
    }

    init(output: OutputChannel, maxPayload: Int?, memoryBudget: Int, listBudget: Int) {
        self.output = output
        self.maxPayload = maxPayload
        self.memoryBudget = memoryBudget
        self.listBudget = listBudget
        output.write("{\"format_version\":1,\"connections\":[")
    }

    /// A job's part of `whole`: builds its connections within a share of the memory budget and
    /// of the decompressed payload headroom, and keeps each ended one for the whole exporter to
    /// write (`Part`).
    init(partOf whole: JSONExporter, jobs: Int) {
        output = whole.output
        maxPayload = whole.maxPayload
        memoryBudget = max(1, whole.memoryBudget / jobs)
        listBudget = min(whole.listBudget, memoryBudget / 4)
        inflatedBudget = InflatedPayloadBudget(sharedBy: jobs)
        partItems = []
    }

    deinit {
        for connection in open.values { connection.release() }
    }

    public func receive(_ event: TimelineEvent) {
        guard let record = event.connection else {
            if case .issue(let issue) = event.kind { Self.add(issue, to: captureIssues) }
            return
        }
        switch event.kind {
        case .captureStarted:
            break
        case .connectionOpened:
            let connection = OpenConnection(record: record, frameBuffer: spares.take(), messageBuffer: spares.take())
            bufferedBytes += connection.freeableMemory
            if let replaced = open.updateValue(ManuallyRetained(retaining: connection), forKey: record.id) {
                bufferedBytes -= replaced.with { $0.freeableMemory }
                replaced.release()
            }
            if lastID == record.id { lastConnection = nil }
            if partItems == nil { shown(record.id) }
        case .httpRequest, .httpResponse:
            break  // Written in pairs, from `httpExchange`.
        case .tls:
            break  // Written with the connection, as it stood at its end.
        case .httpExchange(let exchange):
            withConnection(record.id) { connection in
                counting(connection.exchanges) { connection.addExchange(exchange, stream: event.stream) }
            }
        case .upgrade(let exchange):
            withConnection(record.id) { connection in
                let buffer = OutputBuffer()
                buffer.upgradeFields(exchange)
                connection.upgrade = buffer
                connection.upgradeAnswerBody = nil
                if let stream = event.stream { connection.streamUpgrades[stream] = buffer }
            }
        case .upgradeAnswerBody(let body):
            withConnection(record.id) { connection in
                let buffer = OutputBuffer()
                buffer.raw("{")
                buffer.answerBodyFields(body, time: event.time)
                buffer.raw("}")
                connection.upgradeAnswerBody = buffer
            }
        case .frame(let frame):
            inflatedBudget.frameSeen(frame)
            withConnection(record.id) { connection in
                counting(connection.frames) {
                    connection.addFrame(frame, at: event.time, stream: event.stream, maxPayload: maxPayload, textCache: textCache)
                }
            }
        case .message(let message):
            let shown = maxPayload ?? inflatedBudget.maxPayload(for: message)
            withConnection(record.id) { connection in
                counting(connection.messages) {
                    connection.addMessage(message, at: event.time, stream: event.stream, maxPayload: shown, textCache: textCache)
                }
            }
        case .application(let message):
            withConnection(record.id) { connection in
                counting(connection.applicationMessages) { connection.addApplicationMessage(message, at: event.time, stream: event.stream) }
            }
        case .issue(let issue):
            withConnection(record.id) { connection in counting(connection.issues) { Self.add(issue, to: connection.issues) } }
        case .streamClosed(let end):
            withConnection(record.id) { connection in
                counting(connection.streams) {
                    connection.streams.beginObject()
                    connection.streams.items.streamEndFields(end, stream: event.stream)
                    if let stream = event.stream, let upgrade = connection.streamUpgrades.removeValue(forKey: stream) {
                        connection.streams.items.raw(",\"upgrade\":{")
                        connection.streams.items.append(upgrade)
                        connection.streams.items.raw(",\"answer_body\":null}")
                    }
                    connection.streams.items.raw("}")
                }
            }
        case .connectionClosed(let end):
            guard let owned = open.removeValue(forKey: record.id) else { return }
            if lastID == record.id { lastConnection = nil }
            let connection = owned.takeOwnership()
            bufferedBytes -= connection.freeableMemory
            if partItems != nil {
                partItems?.append(.ended(connection, end))
                return
            }
            connectionEnded(connection, end: end, id: record.id, spares: spares)
        }
        if bufferedBytes > memoryBudget, !spool.isUnusable { spillLargestLists() }
    }

    /// Runs `body`, which adds to `list`, and counts the memory it took. The list goes to the
    /// spool when it holds `listBudget` of JSON, or as it grows while the budget is spent (no
    /// search among every list then: with 100,000 open connections that would be 600,000).
    @inline(__always)
    private func counting(_ list: ObjectList, _ body: () -> Void) {
        let before = list.freeableMemory
        body()
        let after = list.freeableMemory
        bufferedBytes += after - before
        if (list.items.count > listBudget || (after > before && bufferedBytes > memoryBudget)), !spool.isUnusable {
            _ = spill(list)
        }
    }

    /// Moves the largest lists of connections not yet written to the spool until half the budget
    /// is left.
    private func spillLargestLists() {
        var lists: [ObjectList] = []
        for connection in open.values { connection.with { lists += $0.lists.filter { $0.freeableMemory > 0 } } }
        for waiting in ended.values { lists += waiting.connection.lists.filter { $0.freeableMemory > 0 } }
        lists.sort { $0.freeableMemory > $1.freeableMemory }
        for list in lists {
            guard bufferedBytes > memoryBudget / 2, spill(list) else { return }
        }
    }

    /// Moves `list` to the spool, counting the memory given back; false if it stays in memory.
    private func spill(_ list: ObjectList) -> Bool {
        let before = list.freeableMemory
        guard list.spill(to: spool) else { return false }
        bufferedBytes -= before - list.freeableMemory
        spills += 1
        return true
    }

    private static func add(_ issue: Issue, to list: ObjectList) {
        list.beginObject()
        list.items.issueFields(issue)
        list.items.raw("}")
    }

    /// Runs `body` with the open connection `id`, borrowed (events for unknown ids are dropped).
    @inline(__always)
    private func withConnection(_ id: UInt64, _ body: (OpenConnection) -> Void) {
        if id != lastID || lastConnection == nil {
            lastID = id
            lastConnection = open[id]?.unretained
        }
        lastConnection?.with(body)
    }

    /// Connection `id` was shown: it is written before any shown after it.
    func shown(_ id: UInt64) {
        shownOrder.append(id)
    }

    /// Writes connection `id`, which has ended, and those that waited for it; or keeps it until
    /// every connection shown before it has been written. Its emptied buffers go to `spares`.
    func connectionEnded(_ connection: OpenConnection, end: ConnectionEnd, id: UInt64, spares: SpareBuffers) {
        guard shownOrder.first != id else {
            _ = shownOrder.removeFirst()
            write(connection, end: end, id: id, spares: spares)
            return writeWaiting()
        }
        ended[id] = EndedConnection(connection: connection, end: end, spares: spares)
        bufferedBytes += connection.freeableMemory
        if bufferedBytes > memoryBudget, !spool.isUnusable { spillLargestLists() }
    }

    /// Writes the ended connections that were waiting for the ones now written, in order.
    private func writeWaiting() {
        while let next = shownOrder.first, let waiting = ended.removeValue(forKey: next) {
            _ = shownOrder.removeFirst()
            bufferedBytes -= waiting.connection.freeableMemory
            write(waiting.connection, end: waiting.end, id: next, spares: waiting.spares)
        }
    }

    public func finish(_ summary: CaptureSummary) {
        // Every connection ends before the capture does; any still waiting is written in id order.
        shownOrder.removeAll()
        for id in ended.keys.sorted() {
            let waiting = ended.removeValue(forKey: id)!
            write(waiting.connection, end: waiting.end, id: id, spares: waiting.spares)
        }
        output.write(written == 0 ? "]" : "\n]")
        if let failure = spool.failure ?? partSpoolFailure { Self.add(.jsonSpoolUnavailable(failure.description), to: captureIssues) }
        if let cut = inflatedBudget.issue { Self.add(cut, to: captureIssues) }
        output.write(",\n\"issues\":")
        captureIssues.write(to: output)
        scratch.removeAll()
        scratch.raw(",\n\"summary\":{")
        scratch.summaryFields(summary)
        scratch.raw("}}\n")
        output.write(scratch)
        output.flush()
    }

    /// Writes an ended connection, numbered `id`, its spooled lists read back, and gives its
    /// emptied buffers to `spares`.
    private func write(_ connection: OpenConnection, end: ConnectionEnd, id: UInt64, spares: SpareBuffers) {
        let record = connection.record
        scratch.removeAll()
        scratch.raw(written == 0 ? "\n{" : ",\n{")
        written += 1
        scratch.key("id"); scratch.number(id)
        scratch.raw(",\"client\":"); scratch.endpoint(record.client)
        scratch.raw(",\"server\":"); scratch.endpoint(record.server)
        scratch.raw(",\"start_time\":"); scratch.time(record.startTime)
        scratch.raw(",\"end_time\":"); scratch.time(end.time)
        scratch.raw(",\"end_reason\":"); scratch.string(end.reason.rawValue)
        scratch.comma(); scratch.endingFields(end.ending, start: record.startTime, end: end.time)
        scratch.raw(",\"tcp_handshake_seen\":"); scratch.bool(record.tcpHandshakeSeen)
        scratch.raw(",\"protocol\":"); scratch.string(end.protocolKind.rawValue)
        scratch.raw(",\"websocket_detection\":"); scratch.string(end.websocketDetection?.rawValue)
        scratch.raw(",\"tls\":")
        if let tls = end.tls { scratch.tlsFields(tls) } else { scratch.raw("null") }
        scratch.raw(",\"totals\":{"); scratch.totalsFields(end.totals); scratch.raw("}")
        scratch.raw(",\n\"http\":")
        output.write(scratch)
        connection.exchanges.write(to: output)
        scratch.removeAll()
        scratch.raw(",\n\"upgrade\":")
        if let upgrade = connection.upgrade {
            scratch.raw("{")
            scratch.append(upgrade)
            scratch.raw(",\"answer_body\":")
            if let body = connection.upgradeAnswerBody { scratch.append(body) } else { scratch.raw("null") }
            scratch.raw("}")
        } else {
            scratch.raw("null")
        }
        scratch.raw(",\n\"frames\":")
        output.write(scratch)
        connection.frames.write(to: output)
        output.write(",\n\"messages\":")
        connection.messages.write(to: output)
        output.write(",\n\"issues\":")
        connection.issues.write(to: output)
        if connection.applicationMessages.count > 0 {
            output.write(",\n\"app_messages\":")
            connection.applicationMessages.write(to: output)
        }
        if connection.streams.count > 0 {
            output.write(",\n\"streams\":")
            connection.streams.write(to: output)
        }
        output.write("}")
        output.endEvent(at: nil)
        spares.give(connection.frames.items)
        spares.give(connection.messages.items)
    }
}

/// Emptied list buffers of written connections, for the next connections' lists: growing a fresh
/// buffer for every connection copied each list several times over (with 2 jobs, a tenth of the
/// CPU time on many small connections). With `--jobs` the merging thread gives back what a job's
/// part took, so the pool is guarded by a lock.
final class SpareBuffers: @unchecked Sendable {
    /// Guards `buffers` and `bytes`.
    private let lock = Mutex(())
    private var buffers: [OutputBuffer] = []
    private var bytes = 0
    /// What the pool may hold in all: a bulk transfer's huge lists are not kept.
    private static let maxBytes = Int.mebibytes(8)
    private static let maxCapacity = Int.kibibytes(256)

    /// A kept buffer, or a new one of 512 bytes (not more: every open connection holds two, and
    /// at 4 KiB 10,000 open connections that never carried a frame held 80 MB of them).
    func take() -> OutputBuffer {
        lock.withLock { _ in
            guard let buffer = buffers.popLast() else { return OutputBuffer(capacity: 512) }
            bytes -= buffer.capacity
            return buffer
        }
    }

    /// Keeps `buffer`, emptied, unless it is large or the pool is full.
    func give(_ buffer: OutputBuffer) {
        guard buffer.capacity <= Self.maxCapacity else { return }
        buffer.removeAll()
        lock.withLock { _ in
            guard bytes + buffer.capacity <= Self.maxBytes else { return }
            buffers.append(buffer)
            bytes += buffer.capacity
        }
    }
}
