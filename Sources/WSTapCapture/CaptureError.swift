/// Failures of the capture stage itself (not problems found in the traffic).
public enum CaptureError: Error, Equatable, Sendable {
    /// The file could not be opened or read at all.
    case cannotOpen(path: String, reason: String)
    /// The file exists but is not a pcap or pcapng capture.
    case notACapture(path: String, reason: String)
    /// A BPF filter expression did not compile.
    case invalidFilter(expression: String, reason: String)
    /// The capture ended in a damaged or incomplete record; packets before it were delivered.
    case damagedRecord(path: String, offset: Int64, packetsRead: Int, reason: String)
    /// A live device could not be opened or configured.
    case deviceFailed(device: String, reason: String)
    /// Writing a capture file failed.
    case writeFailed(path: String, reason: String)
    /// `--user` could not take effect; the capture does not go on as root.
    case privilegeDropFailed(user: String, reason: String)

    /// One line for a person, naming the input and what was wrong.
    public var message: String {
        switch self {
        case let .cannotOpen(path, reason):
            "cannot read \(path): \(reason)"
        case let .notACapture(path, reason):
            "\(path) is not a pcap or pcapng capture: \(reason)"
        case let .invalidFilter(expression, reason):
            "invalid filter expression '\(expression)': \(reason)"
        case let .damagedRecord(path, offset, packetsRead, reason):
            "\(path): capture is damaged or cut off at byte offset \(offset) after \(packetsRead) packets: \(reason)"
        case let .deviceFailed(device, reason):
            "cannot capture on \(device): \(reason)"
        case let .writeFailed(path, reason):
            "cannot write \(path): \(reason)"
        case let .privilegeDropFailed(user, reason):
            "cannot switch to user \(user): \(reason); not capturing as root"
        }
    }
}
