import WSTapCore
import WSTapPackets

/// The connections one table of the whole capture would hold, counted from every TCP segment
/// without reassembling anything: in a parallel analysis every job keeps one over all segments,
/// so that all of them evict the same connections at the same packet when the capture reaches
/// `maxConnections`, rather than each job at its own share of it (which a job reached first
/// when the connections did not hash evenly, well below the limit).
///
/// It follows `ConnectionTable`'s rules for opening (a SYN, a SYN-ACK, or data not just after a
/// close), reuse (a SYN with another initial sequence number), closing (RST; a FIN each way) and
/// idle sweeps, with one difference: a table closes a connection once both FINs are *delivered*
/// (every byte before them reassembled), the census once both are seen. So it never counts more
/// connections than the table: below the limit it never evicts, as one table would not.
///
/// Connections are told apart by a seeded 64-bit hash of their endpoints that the caller has
/// already computed to route the segment (`EndpointHashes`), which keeps the census at a fraction
/// of a table lookup per segment; two connections whose hashes collide (about one chance in
/// 10¹⁰ among 100,000 open) would count as one.
package final class ConnectionCensus {
    private struct Entry {
        /// The 4-tuple (made when the connection opens, for the tables that evict it).
        var key: ConnectionKey
        var connectionHash: UInt64
        var clientHash: UInt64
        var clientInitialSequence: UInt32?
        var lastActivity: CaptureTimestamp
        var clientFinished = false
        var serverFinished = false
        /// Neighbours in activity order (indices into `entries`), -1 at either end.
        var lessRecent = -1
        var moreRecent = -1
    }

    private let maxConnections: Int
    private let idleTimeoutSeconds: Int64
    /// Where each open connection's entry is in `entries`.
    private var index = ConnectionIndex<UInt64, Int>()
    /// Entries of open connections, and free slots (`free`) of closed ones.
    private var entries: [Entry] = []
    private var free: [Int] = []
    private var leastRecent = -1
    private var mostRecent = -1
    /// Connections that ended with FIN or RST, as the table remembers them.
    private var closedRecently: RecentlyClosed<UInt64>

    package init(limits: ReassemblyLimits) {
        maxConnections = limits.maxConnections
        idleTimeoutSeconds = limits.idleTimeoutSeconds
        closedRecently = RecentlyClosed(capacity: limits.maxConnections)
    }

    /// Connections counted as open.
    package var count: Int { index.count }

    /// Counts one segment, whose endpoints hash to `hashes`; returns the connections a table
    /// would evict before it (its least recently active hundredth when the segment opens one past
    /// `maxConnections`), else nil.
    package func process(_ segment: TCPSegment, hashes: EndpointHashes, at time: CaptureTimestamp) -> [ConnectionKey]? {
        let connection = hashes.connection
        var slot = index[connection]
        // Most segments only carry data on: they make their connection the most recent.
        if let existing = slot, segment.flags.isDisjoint(with: [.syn, .fin, .rst]) {
            touch(existing, at: time)
            return nil
        }
        let isSyn = segment.flags.contains(.syn)
        let isSynAck = isSyn && segment.flags.contains(.ack)
        var evicted: [ConnectionKey]?
        if let existing = slot, isSyn, !isSynAck, hashes.source == entries[existing].clientHash,
           let initial = entries[existing].clientInitialSequence, initial != segment.sequenceNumber {
            close(existing, remembered: false, at: time)
            slot = nil
        }
        if slot == nil {
            guard let clientIsSource = Self.clientIsSource(
                segment, isSyn: isSyn, isSynAck: isSynAck, closedBefore: closedRecently.contains(connection))
            else { return nil }
            closedRecently.reopened(connection)
            if index.count >= maxConnections { evicted = evictLeastRecentlyActive(at: time) }
            slot = open(segment, hashes: hashes, clientIsSource: clientIsSource, at: time)
        }
        guard let slot else { return evicted }
        touch(slot, at: time)
        if segment.flags.contains(.rst) {
            close(slot, remembered: true, at: time)
            return evicted
        }
        let fromClient = hashes.source == entries[slot].clientHash
        if fromClient, isSyn, !isSynAck, entries[slot].clientInitialSequence == nil {
            entries[slot].clientInitialSequence = segment.sequenceNumber
        }
        if segment.flags.contains(.fin) {
            if fromClient { entries[slot].clientFinished = true } else { entries[slot].serverFinished = true }
            if entries[slot].clientFinished, entries[slot].serverFinished { close(slot, remembered: true, at: time) }
        }
        return evicted
    }

    /// The idle sweep a table makes at `time` (where `ConnectionTable.sweepIsDue` says).
    package func sweep(at time: CaptureTimestamp) {
        while leastRecent >= 0, entries[leastRecent].lastActivity.adding(seconds: idleTimeoutSeconds) < time {
            close(leastRecent, remembered: false, at: time)
        }
        closedRecently.forget(before: time)
    }

    /// Whether the client of a connection this segment would open is its source, as
    /// `ConnectionTable` decides; nil when it opens none (no SYN, and no data or just after a close).
    private static func clientIsSource(_ segment: TCPSegment, isSyn: Bool, isSynAck: Bool, closedBefore: Bool) -> Bool? {
        if isSyn { return !isSynAck }
        guard !closedBefore, segment.payload.count + segment.missingPayloadLength > 0 else { return nil }
        // No handshake seen: the side with the lower port is most likely the server.
        return segment.source.port >= segment.destination.port
    }

    private func open(_ segment: TCPSegment, hashes: EndpointHashes, clientIsSource: Bool, at time: CaptureTimestamp) -> Int {
        let entry = Entry(
            key: ConnectionKey(segment.source, segment.destination), connectionHash: hashes.connection,
            clientHash: clientIsSource ? hashes.source : hashes.destination, lastActivity: time)
        let slot: Int
        if let reused = free.popLast() {
            entries[reused] = entry
            slot = reused
        } else {
            entries.append(entry)
            slot = entries.count - 1
        }
        _ = index.updateValue(slot, forKey: hashes.connection)
        link(slot)
        return slot
    }

    private func close(_ slot: Int, remembered: Bool, at time: CaptureTimestamp) {
        let key = entries[slot].connectionHash
        unlink(slot)
        _ = index.removeValue(forKey: key)
        free.append(slot)
        if remembered { closedRecently.remember(key, at: time) }
    }

    /// Closes the least recently active hundredth (at least one) and returns their keys.
    private func evictLeastRecentlyActive(at time: CaptureTimestamp) -> [ConnectionKey] {
        var keys: [ConnectionKey] = []
        for _ in 0..<max(1, index.count / 100) where leastRecent >= 0 {
            keys.append(entries[leastRecent].key)
            close(leastRecent, remembered: false, at: time)
        }
        return keys
    }

    private func touch(_ slot: Int, at time: CaptureTimestamp) {
        entries[slot].lastActivity = time
        guard slot != mostRecent else { return }
        unlink(slot)
        link(slot)
    }

    /// Appends `slot` as the most recently active.
    private func link(_ slot: Int) {
        entries[slot].lessRecent = mostRecent
        entries[slot].moreRecent = -1
        if mostRecent >= 0 { entries[mostRecent].moreRecent = slot } else { leastRecent = slot }
        mostRecent = slot
    }

    private func unlink(_ slot: Int) {
        let (previous, next) = (entries[slot].lessRecent, entries[slot].moreRecent)
        if previous >= 0 { entries[previous].moreRecent = next } else { leastRecent = next }
        if next >= 0 { entries[next].lessRecent = previous } else { mostRecent = previous }
        entries[slot].lessRecent = -1
        entries[slot].moreRecent = -1
    }
}

/// Seeded 64-bit hashes of a segment's two endpoints, the same in every job of a run: the sum is
/// the connection's (the same both ways), each tells the two sides apart.
package struct EndpointHashes {
    package var source: UInt64
    package var destination: UInt64
    package var connection: UInt64 { source &+ destination }

    package init(source: UInt64, destination: UInt64) {
        self.source = source
        self.destination = destination
    }
}
