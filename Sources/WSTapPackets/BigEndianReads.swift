extension UnsafeRawBufferPointer {
    /// The big-endian 16-bit value at `offset`; callers check `offset + 2 <= count` first.
    @inline(__always)
    func uint16BigEndian(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    /// The big-endian 32-bit value at `offset`; callers check `offset + 4 <= count` first.
    @inline(__always)
    func uint32BigEndian(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16
            | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }

    /// The big-endian 64-bit value at `offset`; callers check `offset + 8 <= count` first.
    @inline(__always)
    func uint64BigEndian(at offset: Int) -> UInt64 {
        UInt64(uint32BigEndian(at: offset)) << 32 | UInt64(uint32BigEndian(at: offset + 4))
    }

    /// The bytes from `start` to `end`, rebased so they index from zero.
    @inline(__always)
    func slice(_ start: Int, _ end: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[start..<end])
    }
}
