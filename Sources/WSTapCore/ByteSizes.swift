extension BinaryInteger {
    /// `count` KiB (1,024 bytes each), for the sizes of limits and buffers.
    @inlinable
    public static func kibibytes(_ count: Self) -> Self { count << 10 }

    /// `count` MiB (1,048,576 bytes each), for the sizes of limits and buffers.
    @inlinable
    public static func mebibytes(_ count: Self) -> Self { count << 20 }
}
