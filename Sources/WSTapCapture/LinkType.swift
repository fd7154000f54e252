/// A libpcap data link type (DLT value), kept open so unknown types can still be counted.
public struct LinkType: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// BSD loopback: a 4-byte address family in host byte order of the capturing machine.
    public static let null = LinkType(rawValue: 0)
    public static let ethernet = LinkType(rawValue: 1)
    /// Raw IP as libpcap reports it on Linux (LINKTYPE_RAW is mapped to DLT_RAW 12).
    public static let raw = LinkType(rawValue: 12)
    /// Raw IP on OpenBSD (DLT_RAW 14).
    public static let rawOpenBSD = LinkType(rawValue: 14)
    /// LINKTYPE_RAW as stored in files, should a reader pass it through unmapped.
    public static let linkTypeRaw = LinkType(rawValue: 101)
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    public static let loop = LinkType(rawValue: 108)
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10).
    public static let linuxSLL = LinkType(rawValue: 113)
    public static let ipv4 = LinkType(rawValue: 228)
    public static let ipv6 = LinkType(rawValue: 229)
    /// Linux cooked capture v2 (`tcpdump -i any` with libpcap 1.10 and later).
    public static let linuxSLL2 = LinkType(rawValue: 276)

    public var description: String {
        switch self {
        case .null: "NULL"
        case .ethernet: "EN10MB"
        case .raw, .rawOpenBSD, .linkTypeRaw: "RAW"
        case .loop: "LOOP"
        case .linuxSLL: "LINUX_SLL"
        case .linuxSLL2: "LINUX_SLL2"
        case .ipv4: "IPV4"
        case .ipv6: "IPV6"
        default: "DLT \(rawValue)"
        }
    }
}
