import WSTapCore
import WSTapCapture

/// Puts fragmented IPv4 and IPv6 datagrams back together (RFC 791, RFC 8200 §4.5), within limits.
///
/// Fragments are copied while a datagram is incomplete; overlapping bytes keep the first copy.
public final class IPFragmentReassembler {
    private struct Key: Hashable {
        var source: IPAddress
        var destination: IPAddress
        var identification: UInt32
        var protocolNumber: UInt8
    }

    private struct Datagram {
        var pieces: [(offset: Int, bytes: [UInt8])] = []
        var totalLength: Int?
        var heldBytes = 0
        var firstSeen: CaptureTimestamp
        /// Order of first fragment: of datagrams first seen at the same time, the earliest goes first.
        var arrival: UInt64
        /// Which 8-byte units of the datagram the pieces cover (fragment offsets are multiples of 8).
        var covered = CoverageBits()
    }

    /// One bit per 8-byte unit of a datagram (1 KiB at most). Marking costs the length of the
    /// fragment, and asking whether the datagram is covered a fixed 129 words: a flood of
    /// overlapping fragments around a hole costs linear time, not a sort per fragment.
    private struct CoverageBits {
        private var words = [UInt64](repeating: 0, count: (IPFragmentReassembler.maxDatagramLength / 8 + 64) / 64)

        /// Marks the units `offset..<end` covers whole; the datagram's last, partial unit counts as
        /// whole when `end` reaches `total`. (Every fragment starts on a unit, so a unit a piece
        /// ends inside is covered by a piece that starts on it, or by the last fragment.)
        mutating func mark(offset: Int, end: Int, total: Int?) {
            var last = end / 8
            if let total, end >= total { last = (total + 7) / 8 }
            var unit = offset / 8
            while unit < last {
                words[unit >> 6] |= 1 << UInt64(unit & 63)
                unit += 1
            }
        }

        /// True when every unit of a datagram of `total` bytes is covered.
        func covers(total: Int) -> Bool {
            let units = (total + 7) / 8
            for index in 0..<(units >> 6) where words[index] != .max { return false }
            let rest = units & 63
            return rest == 0 || words[units >> 6] & ((1 << UInt64(rest)) - 1) == (1 << UInt64(rest)) - 1
        }
    }

    /// Counters for the summary.
    public private(set) var reassembled: UInt64 = 0
    public private(set) var abandoned: UInt64 = 0

    private var datagrams: [Key: Datagram] = [:]
    private let maxDatagrams: Int
    private let maxHeldBytes: Int
    private var heldBytes = 0
    private var arrivals: UInt64 = 0
    private let timeoutSeconds: Int64
    private static let maxDatagramLength = 65_535 + 40
    /// Past these, a datagram is flooded with duplicates or cut into absurdly small pieces (real
    /// stacks send no fragment under 8 bytes, nor each byte twice): it is given up.
    private static let maxHeldBytesPerDatagram = 2 * maxDatagramLength
    private static let maxPiecesPerDatagram = maxDatagramLength / 8

    /// At most `maxDatagrams` incomplete datagrams holding `maxHeldBytes` in all; the oldest is
    /// given up first.
    public init(maxDatagrams: Int = 1024, maxHeldBytes: Int = .mebibytes(16), timeoutSeconds: Int64 = 30) {
        self.maxDatagrams = maxDatagrams
        self.maxHeldBytes = maxHeldBytes
        self.timeoutSeconds = timeoutSeconds
    }

    /// Adds a fragment; when it completes its datagram, `complete` receives the whole payload.
    public func add(_ fragment: IPFragment, at time: CaptureTimestamp, complete: (UnsafeRawBufferPointer) -> Void) {
        let end = fragment.offset + fragment.payload.count
        guard end <= Self.maxDatagramLength else {
            abandoned &+= 1
            return
        }
        let key = Key(source: fragment.source, destination: fragment.destination,
                      identification: fragment.identification, protocolNumber: fragment.protocolNumber)
        if datagrams[key] == nil {
            expire(before: time)
            if datagrams.count >= maxDatagrams { evictOldest() }
        }
        while heldBytes + fragment.payload.count > maxHeldBytes, !datagrams.isEmpty { evictOldest() }
        // Taken out of the table while it changes: appending to a piece list the table still
        // shares would copy the whole list for every fragment.
        var datagram = datagrams.removeValue(forKey: key) ?? Datagram(firstSeen: time, arrival: arrivals)
        arrivals &+= 1
        guard datagram.heldBytes + fragment.payload.count <= Self.maxHeldBytesPerDatagram,
              datagram.pieces.count < Self.maxPiecesPerDatagram else {
            heldBytes -= datagram.heldBytes
            abandoned &+= 1
            return
        }
        // The first last fragment sets the length; a later, different one is not believed (the
        // first copy wins, as for overlapping bytes). It starts on a unit, so it covers the
        // datagram's last, partial unit itself.
        if !fragment.moreFragments, datagram.totalLength == nil { datagram.totalLength = end }
        datagram.pieces.append((fragment.offset, Array(fragment.payload)))
        datagram.covered.mark(offset: fragment.offset, end: end, total: datagram.totalLength)
        datagram.heldBytes += fragment.payload.count
        heldBytes += fragment.payload.count
        guard let total = datagram.totalLength, datagram.covered.covers(total: total),
              let whole = Self.assemble(datagram.pieces, total: total) else {
            datagrams[key] = datagram
            return
        }
        heldBytes -= datagram.heldBytes
        reassembled &+= 1
        whole.withUnsafeBytes(complete)
    }

    /// The datagram's bytes when the pieces cover 0..<total with no hole.
    private static func assemble(_ pieces: [(offset: Int, bytes: [UInt8])], total: Int) -> [UInt8]? {
        var covered = 0
        for piece in pieces.sorted(by: { $0.offset < $1.offset }) {
            if piece.offset > covered { return nil }
            covered = max(covered, piece.offset + piece.bytes.count)
        }
        guard covered >= total else { return nil }
        var whole = [UInt8](repeating: 0, count: total)
        // Later pieces first, so the first copy of any overlapping byte is what remains.
        for piece in pieces.reversed() where piece.offset < total {
            let count = min(piece.bytes.count, total - piece.offset)
            whole.replaceSubrange(piece.offset..<(piece.offset + count), with: piece.bytes[0..<count])
        }
        return whole
    }

    private func expire(before time: CaptureTimestamp) {
        let stale = datagrams.compactMap { $0.value.firstSeen.adding(seconds: timeoutSeconds) < time ? $0.key : nil }
        for key in stale { giveUp(key) }
    }

    private func evictOldest() {
        guard let oldest = datagrams.min(by: { ($0.value.firstSeen, $0.value.arrival) < ($1.value.firstSeen, $1.value.arrival) }) else {
            return
        }
        giveUp(oldest.key)
    }

    private func giveUp(_ key: Key) {
        guard let datagram = datagrams.removeValue(forKey: key) else { return }
        heldBytes -= datagram.heldBytes
        abandoned &+= 1
    }

    /// Datagrams still incomplete (reported as abandoned at the end of the capture).
    public var pending: Int { datagrams.count }
}
