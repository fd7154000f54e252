/// The bytes of one direction's WebSocket messages, for protocols whose units may span messages
/// or share one (an MQTT packet cut over two messages, three STOMP frames in one): units are read
/// from the front, and each consumed unit learns which messages it came from.
///
/// Bounded by `limit` bytes held; linear in its input (consumed bytes are dropped in amortised
/// O(1), message origins are visited once each).
struct MessageByteStream {
    let limit: Int
    private var storage: [UInt8] = []
    /// Where the unconsumed bytes start in `storage`.
    private var head = 0
    /// Bytes consumed since the stream began: the absolute offset of `storage[head]`.
    private var consumed = 0
    /// The messages whose bytes are held, with the absolute offset of each one's first byte.
    private var origins: [(index: UInt64, offset: Int)] = []

    init(limit: Int) {
        self.limit = limit
    }

    /// The bytes not yet consumed.
    var count: Int { storage.count - head }
    var isEmpty: Bool { count == 0 }

    /// Appends a message's payload (an empty one adds nothing); false (and nothing kept) when the
    /// bytes held would pass `limit`.
    mutating func append(_ payload: UnsafeRawBufferPointer, index: UInt64) -> Bool {
        guard count + payload.count <= limit else { return false }
        guard !payload.isEmpty else { return true }
        if head > 0, head >= storage.count / 2 {
            storage.removeFirst(head)
            head = 0
        }
        if origins.last?.index != index { origins.append((index, consumed + count)) }
        storage.append(contentsOf: payload)
        return true
    }

    /// Calls `body` with the unconsumed bytes.
    func withBytes<Result>(_ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[head...])) }
    }

    /// Consumes `length` bytes from the front; the indices of the messages they came from (an
    /// empty range for none).
    mutating func consume(_ length: Int) -> Range<UInt64> {
        let length = min(length, count)
        let end = consumed + length
        var first: UInt64?
        var last: UInt64 = 0
        for (position, origin) in origins.enumerated() {
            guard origin.offset < end else { break }
            let nextOffset = position + 1 < origins.count ? origins[position + 1].offset : Int.max
            if nextOffset > consumed {
                if first == nil { first = origin.index }
                last = origin.index
            }
        }
        head += length
        consumed = end
        // Drop the origins wholly consumed; the last one may still have bytes to come.
        var firstKept = 0
        while firstKept + 1 < origins.count, origins[firstKept + 1].offset <= consumed { firstKept += 1 }
        if firstKept > 0 { origins.removeFirst(firstKept) }
        if isEmpty { origins.removeAll() }
        return first.map { $0..<last + 1 } ?? 0..<0
    }

    /// The finding for a stream that ended with bytes of an unfinished unit held (`what`: "a
    /// packet", "a frame without its NUL").
    func endedInside(_ protocolName: String, _ what: String) -> ApplicationFinding {
        ApplicationFinding(
            severity: .warning, code: "app-malformed", detail: "\(protocolName): the stream ended inside \(what) (\(count) bytes held)")
    }

    /// The finding for the unit held when bytes of the stream went missing.
    func cutByMissingBytes(_ protocolName: String, _ what: String) -> ApplicationFinding {
        ApplicationFinding(
            severity: .warning, code: "app-malformed", detail: "\(protocolName): \(what) cut by missing bytes (\(count) bytes held)")
    }

    /// Forgets every byte held (after a loss or a unit that cannot be read).
    mutating func discard() {
        consumed += count
        storage.removeAll(keepingCapacity: true)
        head = 0
        origins.removeAll()
    }
}
