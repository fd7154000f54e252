/// The RFC 6455 §5.1-5.5 and RFC 7692 §6 rules one frame header can break, checked as a step of
/// their own over a parsed header.
enum FrameRules {
    /// Reports each rule `header` breaks, given the sender's role (nil: unknown) and the RSV bits
    /// the negotiated extensions define (RSV1 = 4).
    static func check(
        _ header: FrameHeader, role: WebSocketRole?, allowedReservedBits: UInt8, violation: (FrameViolation) -> Void
    ) {
        let opcode = header.opcode
        if role == .client, !header.masked { violation(.unmaskedClientFrame) }
        if role == .server, header.masked { violation(.maskedServerFrame) }
        if opcode.isReserved { violation(.reservedOpcode(opcode.rawValue)) }
        let undefinedBits = header.rsv & ~allowedReservedBits
        if undefinedBits != 0 {
            violation(.reservedBitsWithoutExtension(rsv: header.rsv))
        } else if header.rsv1, allowedReservedBits == FrameHeader.rsv1Bit, opcode.isControl || opcode == .continuation {
            violation(.compressedBitMisplaced(opcode))
        }
        if opcode.isControl {
            if header.payloadLength > 125 { violation(.controlFrameTooLong(header.payloadLength)) }
            if !header.fin { violation(.fragmentedControlFrame) }
        }
        if header.lengthTopBitSet { violation(.lengthTopBitSet) }
        if header.nonMinimalLength { violation(.nonMinimalLength(header.payloadLength)) }
    }
}
