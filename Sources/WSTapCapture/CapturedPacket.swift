import WSTapCore
/// One packet record as a source delivers it.
///
/// `bytes` is borrowed from the source and valid only until the source reads the next packet;
/// copy what must outlive that.
public struct CapturedPacket {
    public var timestamp: CaptureTimestamp
    public var linkType: LinkType
    /// Bytes present in the record (`caplen`); fewer than `originalLength` when a snaplen cut it.
    public var bytes: UnsafeRawBufferPointer
    /// Length of the packet on the wire (`len`).
    public var originalLength: Int

    public init(timestamp: CaptureTimestamp, linkType: LinkType, bytes: UnsafeRawBufferPointer, originalLength: Int) {
        self.timestamp = timestamp
        self.linkType = linkType
        self.bytes = bytes
        self.originalLength = originalLength
    }

    /// Bytes the capture did not keep (snaplen truncation).
    public var missingLength: Int { max(0, originalLength - bytes.count) }
}

/// What a packet source produced on one read.
public enum PacketSourceRead {
    case packet(CapturedPacket)
    /// A live source waited its timeout without a packet; ask again.
    case noPacketYet
    /// The file ended, or a live capture was stopped.
    case endOfCapture
    /// A part of the input (a file of a set) ended in damage or could not be read; the rest is
    /// still read. The error says which and where.
    case partDamaged(CaptureError)
}

/// Anything that yields captured packets one at a time: a capture file or a live interface.
public protocol PacketSource: AnyObject {
    /// Reads the next packet. The returned bytes stay valid until the next call.
    func nextPacket() throws(CaptureError) -> PacketSourceRead
}
