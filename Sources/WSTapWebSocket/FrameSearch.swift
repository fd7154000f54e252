import WSTapCore
/// Finds where frames start in bytes whose frame boundaries are unknown: after a capture gap, or
/// in a connection whose start was not captured.
///
/// A candidate offset must begin a chain of plausible headers, each where the previous frame
/// ends: opcodes RFC 6455 defines, RSV bits the extensions allow, one masking choice throughout,
/// control frames final and short, lengths in their shortest form, close codes valid, text
/// (unmasked) valid UTF-8, fragments in a valid order, nothing after a close. A random header
/// passes about one time in twenty, a following one about one in seventy; so a chain must be long
/// (`Requirement.anywhere` frames) or end exactly where the received bytes end
/// (`Requirement.endingAtEnd` frames), as real frames do at segment boundaries.
///
/// Linear: a chain is at most `Requirement.anywhere` headers long and the payload checks look at
/// the first `checkedPayloadPrefix` bytes of each frame, so each candidate offset costs a bounded
/// amount of work however long the frames it claims; `search` looks at each offset once.
public enum FrameSearch {
    /// The payload bytes of each frame that the text and close-code checks look at.
    static let checkedPayloadPrefix = 128

    struct Rules {
        var allowedReservedBits: UInt8
        /// The masking every frame must have; nil when the sender's role is unknown.
        var masked: Bool?
        var maxPayloadLength: UInt64 = .mebibytes(16)
    }

    /// How many complete frames make a chain convincing.
    struct Requirement {
        /// Frames in a chain that ends exactly at the end of the bytes.
        var endingAtEnd: Int
        /// Frames in a chain that goes on past them.
        var anywhere: Int

        static let normal = Requirement(endingAtEnd: 4, anywhere: 6)
        /// When the stream has ended and the connection is known to carry WebSocket.
        static let lastChance = Requirement(endingAtEnd: 1, anywhere: 1)
        /// When the connection is known to carry WebSocket (the other direction's frames were
        /// found, or `--websocket-port` says so) and the sender's role is known: one frame that
        /// ends where the bytes end (as frames end at segment boundaries), or three in a row.
        static let confirmed = Requirement(endingAtEnd: 1, anywhere: 3)
    }

    enum Outcome: Equatable {
        /// A convincing chain of complete frames starts at `offset`.
        case found(offset: Int, masked: Bool)
        /// Every offset before `candidate` is ruled out; the chain at `candidate` needs more bytes.
        /// `tentative`: the chain is complete frames ending exactly at the end of the bytes, too
        /// few to convince alone (the other direction's frames may add to them).
        case needMoreData(candidate: Int, tentative: TentativeChain?)
        /// No offset can begin a chain.
        case noFrames
    }

    /// Complete frames that end exactly where the bytes end, fewer than a requirement asks.
    public struct TentativeChain: Equatable, Sendable {
        public var frames: Int
        public var masked: Bool
    }

    private enum Chain {
        case complete(masked: Bool)
        case needMoreData(TentativeChain?)
        case broken
    }

    static func search(_ bytes: UnsafeRawBufferPointer, rules: Rules, requirement: Requirement) -> Outcome {
        var offset = 0
        while offset < bytes.count {
            switch chain(bytes, at: offset, rules: rules, requirement: requirement) {
            case .complete(let masked): return .found(offset: offset, masked: masked)
            case .needMoreData(let tentative): return .needMoreData(candidate: offset, tentative: tentative)
            case .broken: offset += 1
            }
        }
        return .noFrames
    }

    private static func chain(_ bytes: UnsafeRawBufferPointer, at start: Int, rules: Rules, requirement: Requirement) -> Chain {
        var position = start
        var frames = 0
        var masked = rules.masked
        /// Whether a fragmented message is open; unknown before the first data frame.
        var messageOpen: Bool?
        var closed = false
        while frames < requirement.anywhere {
            guard position < bytes.count else {
                if frames >= requirement.endingAtEnd { return .complete(masked: masked ?? false) }
                return .needMoreData(frames > 0 ? TentativeChain(frames: frames, masked: masked ?? false) : nil)
            }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
            guard case .header(let header) = FrameHeader.parse(rest) else { return .needMoreData(nil) }
            if let expected = masked, header.masked != expected { return .broken }
            masked = header.masked
            guard !closed, isPlausible(header, rules: rules) else { return .broken }
            let opcode = header.opcode
            if opcode == .close { closed = true }
            if !opcode.isControl {
                let isContinuation = opcode == .continuation
                if let open = messageOpen, open != isContinuation { return .broken }
                messageOpen = !header.fin
            }
            let available = rest.count - header.headerLength
            let complete = header.payloadLength <= UInt64(available)
            let payloadCount = complete ? Int(header.payloadLength) : available
            let payload = UnsafeRawBufferPointer(rebasing: rest[header.headerLength..<(header.headerLength + payloadCount)])
            guard payloadIsPlausible(header, payload: payload, complete: complete) else { return .broken }
            guard complete else { return .needMoreData(nil) }
            frames += 1
            position += header.headerLength + payloadCount
        }
        return .complete(masked: masked ?? false)
    }

    /// Whether `bytes`, which a gap of `gap` bytes follows, are whole plausible frames from the
    /// first byte on, the last one ending exactly where the gap ends (as when a snapshot length cut
    /// the packet). Returns the frames' masking, or nil.
    static func chainEndingInGap(_ bytes: UnsafeRawBufferPointer, gap: UInt64, rules: Rules) -> Bool? {
        var position = 0
        while position < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[position...])
            guard case .header(let header) = FrameHeader.parse(rest), isPlausible(header, rules: rules),
                  rules.masked.map({ $0 == header.masked }) ?? true
            else { return nil }
            let end = UInt64(position) + UInt64(header.headerLength) + header.payloadLength
            if end > UInt64(bytes.count) {
                return end == UInt64(bytes.count) + gap ? header.masked : nil
            }
            position = Int(end)
        }
        return nil
    }

    private static func isPlausible(_ header: FrameHeader, rules: Rules) -> Bool {
        let opcode = header.opcode
        guard !opcode.isReserved, header.rsv & ~rules.allowedReservedBits == 0 else { return false }
        guard !header.nonMinimalLength, !header.lengthTopBitSet, header.payloadLength <= rules.maxPayloadLength else {
            return false
        }
        if opcode.isControl {
            guard header.fin, header.payloadLength <= 125, !header.rsv1, header.payloadLength != 1 else { return false }
        }
        if opcode == .continuation, header.rsv1 { return false }
        return true
    }

    /// Close codes must be valid on the wire; uncompressed text must be UTF-8 (a cut sequence may
    /// end it). Only the first `checkedPayloadPrefix` bytes are looked at, unmasked in place of a copy.
    private static func payloadIsPlausible(_ header: FrameHeader, payload: UnsafeRawBufferPointer, complete: Bool) -> Bool {
        let checksText = header.opcode == .text && !header.rsv1
        let checksClose = header.opcode == .close && payload.count >= 2
        guard checksText || checksClose else { return true }
        let checked = UnsafeRawBufferPointer(rebasing: payload.prefix(checkedPayloadPrefix))
        let cutShort = checked.count < payload.count || !complete || !header.fin
        return withUnsafeTemporaryAllocation(byteCount: checkedPayloadPrefix, alignment: 1) { scratch in
            let plain = UnsafeMutableRawBufferPointer(rebasing: scratch[..<checked.count])
            plain.copyMemory(from: checked)
            if let key = header.maskingKey { unmask(plain, key: key, offset: 0) }
            if checksClose {
                let code = CloseCode(rawValue: UInt16(plain[0]) << 8 | UInt16(plain[1]))
                return code.isValidOnWire
            }
            return UTF8Validation.isValid(UnsafeRawBufferPointer(plain), allowingCutEnd: cutShort)
        }
    }
}
