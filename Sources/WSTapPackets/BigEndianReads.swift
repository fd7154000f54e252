extension UnsafeRawBufferPointer {
    /// The big-endian 16-bit value at `offset`; callers check `offset + 2 <= count` first.
    @inline(__always)
    func uint16BigEndian(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// The big-endian 32-bit value at `offset`; callers check `offset + 4 <= count` first.
    @inline(__always)
    func uint32BigEndian(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// The big-endian 64-bit value at `offset`; callers check `offset + 8 <= count` first.
    @inline(__always)
    func uint64BigEndian(at offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The bytes from `start` to `end`, rebased so they index from zero.
    @inline(__always)
    func slice(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[start..<end])
    }
}
