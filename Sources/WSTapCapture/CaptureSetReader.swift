import WSTapCore

/// Reads several capture files as one capture, in time order: a ring-buffer set (`tcpdump -C/-G
/// -W`), a directory of captures, or files captured side by side. Packets are merged by time
/// (as `mergecap` does), so connections continue across files.
///
/// Files are ordered by their first packet and opened only when the merge reaches that time: a
/// ring-buffer set keeps one or two files open however long it is. A damaged file is reported
/// (`PacketSourceRead.partDamaged`) and the others are still read.
public final class CaptureSetReader: PacketSource {
    /// A file of the set and when its first packet was captured.
    private struct Member {
        var path: String
        var firstTime: CaptureTimestamp
    }

    /// A file being read, with its next packet (delivered or not).
    private final class OpenMember {
        let reader: CaptureFileReader
        var head: CapturedPacket?
        /// `head` was handed out: the reader moves on at the next call.
        var delivered = false

        init(reader: CaptureFileReader) { self.reader = reader }
    }

    private let filter: String?
    /// Files not opened yet, the earliest first packet last (taken from the end).
    private var waiting: [Member]
    private var open: [OpenMember] = []
    /// What could not be opened or was empty when the set was listed, by path: said once, at the start.
    public let skipped: [(path: String, reason: String)]
    /// The files of the set, in the order of their first packets.
    public let paths: [String]

    /// Lists `paths` (directories: every capture file in them, by its first bytes) and reads the
    /// first packet of each. Throws when none holds a packet, or when the filter is invalid.
    public init(paths inputs: [String], filter: String? = nil) throws(CaptureError) {
        self.filter = filter
        var members: [Member] = []
        var skipped: [(path: String, reason: String)] = []
        for path in Self.expand(inputs, skipped: &skipped) {
            do {
                let reader = try CaptureFileReader(path: path, filter: nil)
                switch try reader.nextPacket() {
                case .packet(let packet): members.append(Member(path: path, firstTime: packet.timestamp))
                default: skipped.append((path, "holds no packet"))
                }
            } catch {
                skipped.append((path, error.message))
            }
        }
        guard !members.isEmpty else {
            throw .notACapture(path: inputs.joined(separator: " "), reason: "no capture file with a packet in it")
        }
        members.sort { ($0.firstTime, $0.path) < ($1.firstTime, $1.path) }
        paths = members.map(\.path)
        waiting = members.reversed()
        self.skipped = skipped
        // The filter is checked once, before any packet is read.
        if let filter { _ = try CaptureFileReader(path: paths[0], filter: filter) }
    }

    /// Regular files as given; directories replaced by the capture files in them (what else a
    /// directory holds, other than hidden files, is said in `skipped` with why; pcap, pcapng
    /// or gzip by their first bytes, hidden files left out), sorted by name.
    private static func expand(_ inputs: [String], skipped: inout [(path: String, reason: String)]) -> [String] {
        var files: [String] = []
        for input in inputs {
            guard case .success(let entries) = SystemCalls.directoryEntries(input) else {
                files.append(input)
                continue
            }
            for entry in entries.sorted() where !entry.hasPrefix(".") {
                let path = input.hasSuffix("/") ? input + entry : input + "/" + entry
                switch SystemCalls.fileStatus(path) {
                case .success(let status) where status.isRegularFile:
                    break
                case .success:
                    let isDirectory = if case .success = SystemCalls.directoryEntries(path) { true } else { false }
                    skipped.append((path, isDirectory ? "a directory (only the files directly in \(input) are read)" : "not a regular file"))
                    continue
                case .failure(let error):
                    skipped.append((path, error.reason))
                    continue
                }
                if CaptureFileReader.startsLikeCapture(path) {
                    files.append(path)
                } else {
                    skipped.append((path, "not a capture file"))
                }
            }
        }
        return files
    }

    public func nextPacket() throws(CaptureError) -> PacketSourceRead {
        // The file whose packet went out last moves on first.
        for (index, member) in open.enumerated() where member.delivered {
            member.delivered = false
            member.head = nil
            if let damage = advance(member) {
                open.remove(at: index)
                return .partDamaged(damage)
            }
            break
        }
        open.removeAll { $0.head == nil }
        // A file whose first packet is not later than the earliest packet in hand may hold the next one.
        while let next = waiting.last, open.isEmpty || open.allSatisfy({ next.firstTime <= $0.head!.timestamp }) {
            waiting.removeLast()
            let member: OpenMember
            do {
                member = OpenMember(reader: try CaptureFileReader(path: next.path, filter: filter))
            } catch {
                return .partDamaged(error)
            }
            if let damage = advance(member) { return .partDamaged(damage) }
            if member.head != nil {
                open.append(member)
                shareReadAhead()
            }
        }
        guard let earliest = open.indices.min(by: { open[$0].head!.timestamp < open[$1].head!.timestamp }) else {
            return .endOfCapture
        }
        let member = open[earliest]
        member.delivered = true
        var packet = member.head!
        // Numbered as the merged file would number it: every record read so far, less the ones
        // read ahead and not yet handed out.
        let readAhead = open.count - 1
        packet.timestamp.packet = UInt64(max(1, open.reduce(retiredRecords) { $0 + $1.reader.packetsRead } - readAhead))
        return .packet(packet)
    }

    /// What the open files may read ahead together: each gets its share (at least 64 KiB, so
    /// 2,000 files that overlap in time hold about 128 MB of read buffers per job, not 2.6 GB).
    static let readAheadBudget = Int.mebibytes(32)

    private func shareReadAhead() {
        let share = Self.readAheadBudget / open.count
        for member in open { member.reader.readAheadLimit = share }
    }

    /// Records of the files already read to their end (their numbers come first).
    private var retiredRecords = 0

    /// Reads a member's next packet into `head` (nil at its end, when its records are counted);
    /// returns the damage that ended it early.
    private func advance(_ member: OpenMember) -> CaptureError? {
        do {
            switch try member.reader.nextPacket() {
            case .packet(let packet): member.head = packet
            case .noPacketYet, .endOfCapture, .partDamaged: member.head = nil
            }
        } catch {
            member.head = nil
            retiredRecords += member.reader.packetsRead
            return error
        }
        if member.head == nil { retiredRecords += member.reader.packetsRead }
        return nil
    }
}
