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
    public init(maxDatagrams: Int = 1024, maxHeldBytes: Int = 16 << 20, timeoutSeconds: Int64 = 30) {
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
        var datagram = datagrams[key] ?? Datagram(firstSeen: time, arrival: arrivals)
        arrivals &+= 1
        guard datagram.heldBytes + fragment.payload.count <= Self.maxHeldBytesPerDatagram,
              datagram.pieces.count < Self.maxPiecesPerDatagram else {
            giveUp(key)
            return
        }
        if !fragment.moreFragments { datagram.totalLength = end }
        datagram.pieces.append((fragment.offset, Array(fragment.payload)))
        datagram.heldBytes += fragment.payload.count
        heldBytes += fragment.payload.count
        // Fewer bytes than the datagram's length cannot cover it: no need to sort the pieces.
        guard let total = datagram.totalLength, datagram.heldBytes >= total,
              let whole = Self.assemble(datagram.pieces, total: total) else {
            datagrams[key] = datagram
            return
        }
        datagrams[key] = nil
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
