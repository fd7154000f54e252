import WSTapCore

/// One direction's TLS record framing (RFC 8446 §5.1, RFC 5246 §6.2): bytes in, whole records out,
/// and after a gap the offsets where a record header could start again.
///
/// Linear: bytes are appended once and records are taken off the front by an index (compacted
/// when half is consumed); a record is at most 2^14 + 2,048 bytes.
struct TLSRecordLayer {
    /// A whole record: its header's type and version, and its fragment (protected or not).
    struct Record {
        var type: TLSContentType
        var version: UInt16
        var fragment: [UInt8]
    }

    enum Next {
        case record(Record)
        case needMoreBytes
        /// The bytes at the front are not a TLS record header (described).
        case malformed(String)
    }

    static let maxRecordLength = (1 << 14) + 2048

    /// Bytes received and not yet taken; records start at `start`.
    private(set) var pending: [UInt8] = []
    private(set) var start = 0

    /// Bytes held that no record has taken yet.
    var held: Int { pending.count - start }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        pending.append(contentsOf: bytes)
    }

    /// The next whole record, if its bytes are all here.
    mutating func next() -> Next {
        guard held >= 5 else { return .needMoreBytes }
        let type = pending[start]
        let version = UInt16(pending[start + 1]) << 8 | UInt16(pending[start + 2])
        let length = Int(pending[start + 3]) << 8 | Int(pending[start + 4])
        guard (TLSContentType.changeCipherSpec.rawValue...TLSContentType.heartbeat.rawValue).contains(type),
              pending[start + 1] == 3, length <= Self.maxRecordLength
        else {
            return .malformed("record type \(type), version 0x\(String(version, radix: 16)), length \(length)")
        }
        guard held >= 5 + length else { return .needMoreBytes }
        let fragment = Array(pending[(start + 5)..<(start + 5 + length)])
        start += 5 + length
        return .record(Record(type: TLSContentType(rawValue: type), version: version, fragment: fragment))
    }

    /// Whether a record header that decryption could resume at starts at `offset` (after a gap):
    /// a protected type (application data only, in TLS 1.3), version 3.3, and a length that an
    /// AEAD record can have; with the record's length. Needs 5 bytes at `offset`.
    func plausibleRecord(at offset: Int, tls13: Bool) -> (plausible: Bool, length: Int) {
        let type = pending[offset], length = Int(pending[offset + 3]) << 8 | Int(pending[offset + 4])
        let plausible = (tls13 ? type == TLSContentType.applicationData.rawValue : TLSContentType.known.contains(type))
            && pending[offset + 1] == 3 && pending[offset + 2] == 3 && length >= 17 && length <= Self.maxRecordLength
        return (plausible, length)
    }

    /// Records are taken from `offset` on (resynchronised after a gap).
    mutating func resume(at offset: Int) { start = offset }

    /// Drops every byte held (a gap cut the record they began); returns how many.
    mutating func discard() -> UInt64 {
        let cut = UInt64(held)
        pending = []
        start = 0
        return cut
    }

    /// Gives back the memory of bytes already taken. Emptied, the buffer keeps at most the room of
    /// one largest record (2^14 + 2,048 bytes and its header): an idle connection gave back none
    /// of what a burst of records had grown it to (issue 30: 32 KB per open TLS connection).
    mutating func compact() {
        if start == pending.count {
            pending.removeAll(keepingCapacity: pending.capacity <= .kibibytes(18) + 5)
            start = 0
        } else if start > pending.count / 2 {
            pending.removeSubrange(0..<start)
            start = 0
        }
    }
}
