import WSTapCore

/// Connections (4-tuples, or their hashes in a census) that ended with FIN or RST, and when: late
/// ACKs and retransmissions after a close must not open ghosts. Forgotten after
/// `ConnectionTable.closedMemorySeconds` of capture time (`forget(before:)`, at each idle
/// sweep), and the oldest first past `capacity` entries.
struct RecentlyClosed<Key: Hashable> {
    private var times: [Key: CaptureTimestamp] = [:]
    /// Oldest first; an entry superseded by a later close or a reopening is skipped when it comes up.
    private var order = FIFOQueue<(key: Key, time: CaptureTimestamp)>()
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func contains(_ key: Key) -> Bool { times[key] != nil }

    /// `key` was opened again: it is no longer a closed one.
    mutating func reopened(_ key: Key) { times[key] = nil }

    mutating func remember(_ key: Key, at time: CaptureTimestamp) {
        times[key] = time
        order.append((key, time))
        while order.count > capacity { forgetOldest() }
    }

    /// Forgets those closed more than `ConnectionTable.closedMemorySeconds` before `time`.
    mutating func forget(before time: CaptureTimestamp) {
        while let oldest = order.first, oldest.time.adding(seconds: ConnectionTable.closedMemorySeconds) < time {
            forgetOldest()
        }
    }

    mutating func removeAll() {
        times.removeAll()
        order.removeAll()
    }

    private mutating func forgetOldest() {
        let oldest = order.removeFirst()
        if times[oldest.key] == oldest.time { times[oldest.key] = nil }
    }
}
