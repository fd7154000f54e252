/// A key of `ConnectionIndex`: equatable, and mixed into a well-spread word by a seed.
protocol IndexKey: Equatable {
    func mixed(seed: UInt64) -> UInt64
}

extension ConnectionKey: IndexKey {}

/// A connection already hashed (a `ConnectionCensus` key: a seeded hash of its two endpoints).
extension UInt64: IndexKey {
    func mixed(seed: UInt64) -> UInt64 {
        let product = (self ^ seed) &* 0x9E37_79B9_7F4A_7C15
        return product ^ (product >> 32)
    }
}

/// The open connections by 4-tuple, looked up on every packet: an open-addressing table with
/// linear probing, kept at most half full, with deletion by backward shift (no tombstones).
///
/// Why not `Dictionary`: it hashes every key with SipHash through `Hasher`, 4.7% of all
/// instructions on the bench slice (docs/performance.md); its faster path is an underscored
/// standard-library hook. Here the key's own multiply-xorshift mixing is used, with a random seed
/// per table so that a capture cannot be built to collide. A lookup is linear in the cluster it
/// probes, which the load bound keeps short; growth rehashes each entry once (amortised O(1)).
struct ConnectionIndex<Key: IndexKey, Value> {
    private struct Entry {
        var key: Key
        var value: Value
    }

    private var slots: [Entry?]
    private var mask: Int
    private let seed = UInt64.random(in: .min ... .max)
    private(set) var count = 0

    init() {
        slots = Array(repeating: nil, count: 64)
        mask = 63
    }

    subscript(key: Key) -> Value? {
        var index = home(of: key)
        while let entry = slots[index] {
            if entry.key == key { return entry.value }
            index = (index &+ 1) & mask
        }
        return nil
    }

    /// Stores `value` for `key`; returns the value it replaces, if any.
    @discardableResult
    mutating func updateValue(_ value: Value, forKey key: Key) -> Value? {
        var index = home(of: key)
        while let entry = slots[index] {
            if entry.key == key {
                slots[index] = Entry(key: key, value: value)
                return entry.value
            }
            index = (index &+ 1) & mask
        }
        slots[index] = Entry(key: key, value: value)
        count += 1
        if count * 2 > slots.count { grow() }
        return nil
    }

    /// Removes `key`; returns its value, if it was there.
    mutating func removeValue(forKey key: Key) -> Value? {
        var index = home(of: key)
        while let entry = slots[index] {
            if entry.key == key {
                slots[index] = nil
                count -= 1
                closeGap(at: index)
                return entry.value
            }
            index = (index &+ 1) & mask
        }
        return nil
    }

    /// Every value, in no particular order.
    var values: [Value] { slots.compactMap { $0?.value } }

    private func home(of key: Key) -> Int {
        Int(truncatingIfNeeded: key.mixed(seed: seed)) & mask
    }

    /// Moves later entries of the cluster back over the emptied slot, so that every entry stays
    /// reachable from its home slot without tombstones.
    private mutating func closeGap(at emptied: Int) {
        var gap = emptied
        var index = (emptied &+ 1) & mask
        while let entry = slots[index] {
            let home = home(of: entry.key)
            // The entry may fill the gap unless its home lies cyclically in (gap, index].
            let homeAfterGap = gap <= index ? (home > gap && home <= index) : (home > gap || home <= index)
            if !homeAfterGap {
                slots[gap] = entry
                slots[index] = nil
                gap = index
            }
            index = (index &+ 1) & mask
        }
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: nil, count: old.count * 2)
        mask = slots.count - 1
        for case let entry? in old {
            var index = home(of: entry.key)
            while slots[index] != nil { index = (index &+ 1) & mask }
            slots[index] = entry
        }
    }
}
