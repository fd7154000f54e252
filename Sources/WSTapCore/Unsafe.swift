// The one place where wstap uses references without reference counting. Each type below names
// the trick; each use names the owner that keeps the object alive.
//
// Why (docs/performance.md, "Reference counting"): a class reference loaded from a stored property
// or from a table is retained and released around its use, and a release is a locked instruction
// that waits for every pending store. On the per-packet and per-frame paths this cost 10-20% of
// all instructions.

/// A reference used without reference counting while its owner keeps the object alive.
@frozen
public struct Unretained<Object: AnyObject> {
    @usableFromInline let unmanaged: Unmanaged<Object>

    @inlinable @inline(__always)
    public init(_ object: Object) { unmanaged = .passUnretained(object) }

    @inlinable @inline(__always)
    init(unmanaged: Unmanaged<Object>) { self.unmanaged = unmanaged }

    /// Runs `body` with the object; the caller's owner keeps it alive for the call.
    @inlinable @inline(__always)
    public func with<Result>(_ body: (Object) throws -> Result) rethrows -> Result {
        try unmanaged._withUnsafeGuaranteedRef(body)
    }

    /// A counted reference to the object, for code that keeps it beyond the owner's call.
    @inlinable @inline(__always)
    public var object: Object { unmanaged.takeUnretainedValue() }

    /// Whether both refer to the same object.
    @inlinable @inline(__always)
    public func isSame(as other: Unretained<Object>) -> Bool { unmanaged.toOpaque() == other.unmanaged.toOpaque() }
}

/// A reference retained once by hand, for a container whose every lookup must cost no reference
/// counting: the container releases it exactly once (`release` or `takeOwnership`).
@frozen
public struct ManuallyRetained<Object: AnyObject> {
    @usableFromInline let unmanaged: Unmanaged<Object>

    @inlinable @inline(__always)
    public init(retaining object: Object) { unmanaged = .passRetained(object) }

    /// The same object, to use while this reference is held.
    @inlinable @inline(__always)
    public var unretained: Unretained<Object> { Unretained(unmanaged: unmanaged) }

    @inlinable @inline(__always)
    public func with<Result>(_ body: (Object) throws -> Result) rethrows -> Result {
        try unmanaged._withUnsafeGuaranteedRef(body)
    }

    /// Gives up the hand-made retain.
    @inlinable @inline(__always)
    public func release() { unmanaged.release() }

    /// Hands the hand-made retain to an ordinary, counted reference.
    @inlinable @inline(__always)
    public func takeOwnership() -> Object { unmanaged.takeRetainedValue() }
}

/// Bytes in memory of their own, for a reader that lends out what it read: a view of them stays
/// valid until the next `reserve`. (An array's bytes are valid only inside its `withUnsafeBytes`:
/// a packet lent from there would point at memory it does not own.)
public final class OwnedBytes {
    /// The bytes, valid until the next `reserve`.
    public private(set) var storage: UnsafeMutableRawBufferPointer

    public init() { storage = UnsafeMutableRawBufferPointer(start: nil, count: 0) }

    deinit { storage.deallocate() }

    /// Makes room for at least `count` bytes; of what was held, the first `keepingFirst` bytes are kept.
    public func reserve(_ count: Int, keepingFirst kept: Int = 0) {
        guard storage.count < count else { return }
        let larger = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        if kept > 0 { larger.copyMemory(from: UnsafeRawBufferPointer(rebasing: storage[..<kept])) }
        storage.deallocate()
        storage = larger
    }

    public var count: Int { storage.count }

    @inline(__always)
    public subscript(index: Int) -> UInt8 { storage[index] }

    /// A view of `range`, valid until the next `reserve`.
    public func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(storage)[range])
    }
}

/// Byte searches eight bytes at a time (SWAR): for scanners whose inner loop is "find the next
/// byte that matters" (a JSON string's end).
public enum WordScan {
    /// The index of the first byte at or after `start` that is `"`, `\` or below 0x20 (the bytes
    /// a JSON string cannot hold as they are); `bytes.count` when there is none.
    public static func firstJSONStringSpecial(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int {
        var index = start
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while index + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let quote = word ^ (ones &* 0x22)
            let backslash = word ^ (ones &* 0x5C)
            let found = ((quote &- ones) & ~quote | (backslash &- ones) & ~backslash | (word &- ones &* 0x20) & ~word) & highs
            if found != 0 { break }
            index += 8
        }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { return index }
            index += 1
        }
        return bytes.count
    }
}
