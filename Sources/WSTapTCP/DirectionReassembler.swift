import WSTapCore

/// Orders one direction's segments by sequence number and hands out contiguous bytes.
///
/// In-order payload is passed through without copying; only segments that arrive ahead of a
/// hole are copied and held, up to the limits the connection table enforces.
struct DirectionReassembler {
    /// What reassembly releases, in stream order, each with the capture time it belongs to: the
    /// time of the packet that carried the bytes (a segment held ahead of a hole keeps its own),
    /// and for a hole the time it was declared.
    enum Output {
        case bytes(UnsafeRawBufferPointer, CaptureTimestamp)
        case gap(MissingRange, CaptureTimestamp)
        case conflict(startSequence: UInt32, byteCount: Int)
        case fin
    }

    /// A delivered segment remembered by a sampled fingerprint, to spot retransmissions that differ.
    private struct DeliveredSegment {
        var sequence: UInt32
        var length: Int
        var fingerprint: UInt64
    }

    private static let rememberedSegments = 16

    /// What a held segment costs beyond its bytes (its entry and its array), counted in
    /// `pendingBytes` so that the limits bound memory and not only payload: 1-byte segments ahead
    /// of a hole would otherwise take a hundred times the bytes counted.
    static let heldSegmentOverhead = 64
    /// Held segments are kept sorted in an array; the connection table gives up the first hole
    /// past this many, so that placing one never moves more entries than this.
    static let maxHeldSegments = 4096

    private struct PendingSegment {
        var sequence: UInt32
        var bytes: [UInt8]
        var missingLength: Int
        /// When the packet that carried it was captured.
        var time: CaptureTimestamp
        var length: Int { bytes.count + missingLength }
    }

    private(set) var started = false
    private(set) var nextSequence: UInt32 = 0
    private var finSequence: UInt32?
    private(set) var finDelivered = false
    /// Held segments in sequence order, consumed from the front.
    private var pending = FIFOQueue<PendingSegment>()
    /// Bytes held out of order, each segment counting `heldSegmentOverhead` more.
    private(set) var pendingBytes = 0
    private(set) var retransmittedBytes: UInt64 = 0
    private(set) var missingBytes: UInt64 = 0
    private(set) var conflicts: UInt64 = 0
    private var delivered: [DeliveredSegment] = []
    private var deliveredCursor = 0

    /// Sets the first expected sequence number (ISN + 1 after a SYN).
    mutating func start(at sequence: UInt32) {
        guard !started else { return }
        started = true
        nextSequence = sequence
    }

    /// Signed distance from the next expected byte to `sequence` (RFC 1982 serial arithmetic).
    private func distance(to sequence: UInt32) -> Int64 {
        Int64(Int32(bitPattern: sequence &- nextSequence))
    }

    /// Takes one segment; returns true when it was held out of order.
    mutating func accept(
        sequence: UInt32, payload: UnsafeRawBufferPointer, missingLength: Int, fin: Bool, at time: CaptureTimestamp,
        emit: (Output) -> Void
    ) -> Bool {
        if !started { start(at: sequence) }
        let length = payload.count + missingLength
        if fin, finSequence == nil { finSequence = sequence &+ UInt32(truncatingIfNeeded: length) }
        var heldOutOfOrder = false
        if length > 0 {
            if distance(to: sequence) <= 0 {
                deliver(sequence: sequence, payload: payload, missingLength: missingLength, at: time, emit: emit)
                // Held bytes this packet made contiguous are complete now, in this packet (as
                // Wireshark shows a reassembled unit in the packet that completed it).
                drainPending(completedAt: time, emit: emit)
            } else {
                hold(PendingSegment(
                    sequence: sequence, bytes: [UInt8](copying: payload), missingLength: missingLength, time: time))
                heldOutOfOrder = true
            }
        }
        deliverFinIfReached(emit: emit)
        return heldOutOfOrder
    }

    var heldSegments: Int { pending.count }

    /// The peer acknowledged every byte before `acknowledgment`: a hole below it reached the
    /// receiver and only the capture lost it (Zeek's content-gap rule), so it is declared now
    /// rather than when the buffers fill or the connection ends. Only holes with held bytes above
    /// them: bytes after the last one held may still be on their way through the capture. An
    /// acknowledgment past the last byte held (or a FIN after it) proves nothing the capture
    /// holds, and is taken as no evidence (a crafted or garbled ACK field).
    mutating func acknowledged(_ acknowledgment: UInt32, at now: CaptureTimestamp, emit: (Output) -> Void) {
        guard let last = pending.last else { return }
        let heldEnd = distance(to: last.sequence) + Int64(last.length) + (finSequence != nil ? 1 : 0)
        let acknowledged = distance(to: acknowledgment)
        guard acknowledged > 0, acknowledged <= heldEnd else { return }
        while let first = pending.first, distance(to: first.sequence) > 0, distance(to: first.sequence) <= acknowledged {
            skipFirstHole(at: now, emit: emit)
        }
    }

    /// Gives up on the first hole: reports it as missing (at `now`) and releases what follows.
    mutating func skipFirstHole(at now: CaptureTimestamp, emit: (Output) -> Void) {
        guard let first = pending.first else { return }
        let hole = distance(to: first.sequence)
        if hole > 0 {
            emit(.gap(MissingRange(startSequence: nextSequence, byteCount: UInt64(hole), cause: .notCaptured), now))
            missingBytes &+= UInt64(hole)
            nextSequence = first.sequence
        }
        // After a hole given up, held bytes were complete when their own packets came.
        drainPending(completedAt: nil, emit: emit)
        deliverFinIfReached(emit: emit)
    }

    /// Releases everything held, reporting every hole, and a FIN whose data never all arrived.
    mutating func flush(at now: CaptureTimestamp, emit: (Output) -> Void) {
        while !pending.isEmpty { skipFirstHole(at: now, emit: emit) }
        if let finSequence, !finDelivered {
            let hole = distance(to: finSequence)
            if hole > 0 {
                emit(.gap(MissingRange(startSequence: nextSequence, byteCount: UInt64(hole), cause: .notCaptured), now))
                missingBytes &+= UInt64(hole)
                nextSequence = finSequence
            }
            deliverFinIfReached(emit: emit)
        }
    }

    private mutating func deliverFinIfReached(emit: (Output) -> Void) {
        if let finSequence, !finDelivered, nextSequence == finSequence, pending.isEmpty {
            finDelivered = true
            emit(.fin)
        }
    }

    /// Delivers the part of a segment at or after `nextSequence`; earlier bytes are retransmissions.
    private mutating func deliver(
        sequence: UInt32, payload: UnsafeRawBufferPointer, missingLength: Int, at time: CaptureTimestamp,
        emit: (Output) -> Void
    ) {
        let length = payload.count + missingLength
        let alreadyDelivered = Int(-distance(to: sequence))
        guard alreadyDelivered < length else {
            retransmittedBytes &+= UInt64(length)
            checkRetransmission(sequence: sequence, payload: payload, missingLength: missingLength, emit: emit)
            return
        }
        retransmittedBytes &+= UInt64(alreadyDelivered)
        if alreadyDelivered < payload.count {
            let fresh = UnsafeRawBufferPointer(rebasing: payload[(payload.startIndex + alreadyDelivered)...])
            if alreadyDelivered == 0, missingLength == 0 { remember(sequence: sequence, payload: fresh) }
            emit(.bytes(fresh, time))
        }
        let missingPart = min(missingLength, length - alreadyDelivered)
        if missingPart > 0 {
            let start = sequence &+ UInt32(truncatingIfNeeded: length - missingPart)
            emit(.gap(MissingRange(startSequence: start, byteCount: UInt64(missingPart), cause: .cutBySnaplen), time))
            missingBytes &+= UInt64(missingPart)
        }
        nextSequence = sequence &+ UInt32(truncatingIfNeeded: length)
    }

    /// The length and three 8-byte samples (start, middle, end), mixed: cheap on every segment,
    /// and different for nearly any change of content.
    private static func fingerprint(_ payload: UnsafeRawBufferPointer) -> UInt64 {
        let count = payload.count
        guard count >= 8 else {
            var small: UInt64 = 0
            for byte in payload { small = small << 8 | UInt64(byte) }
            return small &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(count)
        }
        let first = payload.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        let middle = payload.loadUnaligned(fromByteOffset: (count - 8) / 2, as: UInt64.self)
        let last = payload.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        return ((first &* 0x9E37_79B9_7F4A_7C15) ^ middle) &* 0xC2B2_AE3D_27D4_EB4F ^ last ^ UInt64(count)
    }

    private mutating func remember(sequence: UInt32, payload: UnsafeRawBufferPointer) {
        let entry = DeliveredSegment(sequence: sequence, length: payload.count, fingerprint: Self.fingerprint(payload))
        if delivered.count < Self.rememberedSegments {
            delivered.append(entry)
        } else {
            delivered[deliveredCursor] = entry
        }
        deliveredCursor = (deliveredCursor + 1) % Self.rememberedSegments
    }

    /// A full retransmission of a remembered segment must carry the same bytes.
    private mutating func checkRetransmission(
        sequence: UInt32, payload: UnsafeRawBufferPointer, missingLength: Int, emit: (Output) -> Void
    ) {
        guard missingLength == 0, !payload.isEmpty,
              let original = delivered.first(where: { $0.sequence == sequence && $0.length == payload.count }),
              original.fingerprint != Self.fingerprint(payload)
        else { return }
        conflicts &+= 1
        emit(.conflict(startSequence: sequence, byteCount: payload.count))
    }

    /// Delivers the held segments that are now contiguous, at `completedAt` (nil: each at its own time).
    private mutating func drainPending(completedAt: CaptureTimestamp?, emit: (Output) -> Void) {
        while let first = pending.first, distance(to: first.sequence) <= 0 {
            pending.removeFirst()
            pendingBytes -= first.bytes.count + Self.heldSegmentOverhead
            first.bytes.withUnsafeBytes { bytes in
                deliver(
                    sequence: first.sequence, payload: bytes, missingLength: first.missingLength,
                    at: completedAt ?? first.time, emit: emit)
            }
        }
    }

    private mutating func hold(_ segment: PendingSegment) {
        let key = distance(to: segment.sequence)
        var low = 0, high = pending.count
        // Most segments held arrive in order behind a hole: they go to the end without a search.
        if let last = pending.last, distance(to: last.sequence) < key {
            low = pending.count
            high = low
        }
        while low < high {
            let middle = (low + high) / 2
            if distance(to: pending[middle].sequence) <= key { low = middle + 1 } else { high = middle }
        }
        // A segment identical in start and length to one already held is a duplicate.
        if low > 0, pending[low - 1].sequence == segment.sequence, pending[low - 1].length >= segment.length {
            retransmittedBytes &+= UInt64(segment.length)
            return
        }
        pending.insert(segment, at: low)
        pendingBytes += segment.bytes.count + Self.heldSegmentOverhead
    }
}
