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
    }

    /// Counters for the summary.
    public private(set) var reassembled: UInt64 = 0
    public private(set) var abandoned: UInt64 = 0

    private var datagrams: [Key: Datagram] = [:]
    private let maxDatagrams: Int
    private let timeoutSeconds: Int64
    private static let maxDatagramLength = 65_535 + 40

    public init(maxDatagrams: Int = 1024, timeoutSeconds: Int64 = 30) {
        self.maxDatagrams = maxDatagrams
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
        var datagram = datagrams[key] ?? Datagram(firstSeen: time)
        if !fragment.moreFragments { datagram.totalLength = end }
        datagram.pieces.append((fragment.offset, Array(fragment.payload)))
        datagram.heldBytes += fragment.payload.count
        guard let total = datagram.totalLength, let whole = Self.assemble(datagram.pieces, total: total) else {
            datagrams[key] = datagram
            return
        }
        datagrams[key] = nil
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
        let stale = datagrams.filter { $0.value.firstSeen.adding(seconds: timeoutSeconds) < time }
        abandoned &+= UInt64(stale.count)
        for key in stale.keys { datagrams[key] = nil }
    }

    private func evictOldest() {
        guard let oldest = datagrams.min(by: { $0.value.firstSeen < $1.value.firstSeen }) else { return }
        datagrams[oldest.key] = nil
        abandoned &+= 1
    }

    /// Datagrams still incomplete (reported as abandoned at the end of the capture).
    public var pending: Int { datagrams.count }
}
