import WSTapCore
/// The body of a close frame (RFC 6455 §5.5.1): an optional status code and a UTF-8 reason.
public struct CloseFrameBody: Hashable, Sendable {
    /// nil when the payload is empty (no status code sent).
    public var code: CloseCode?
    /// The reason bytes after the code.
    public var reason: [UInt8]
    public var reasonIsValidUTF8: Bool

    public init(code: CloseCode?, reason: [UInt8], reasonIsValidUTF8: Bool) {
        self.code = code
        self.reason = reason
        self.reasonIsValidUTF8 = reasonIsValidUTF8
    }

    /// Parses a close payload and lists what breaks the RFC.
    public static func parse(_ payload: UnsafeRawBufferPointer) -> (CloseFrameBody, [FrameViolation]) {
        guard payload.count >= 2 else {
            let body = CloseFrameBody(code: nil, reason: [], reasonIsValidUTF8: true)
            return (body, payload.count == 1 ? [.closePayloadTooShort] : [])
        }
        let code = CloseCode(rawValue: UInt16(payload[0]) << 8 | UInt16(payload[1]))
        let reasonBytes = UnsafeRawBufferPointer(rebasing: payload[2...])
        let valid = UTF8Validation.isValid(reasonBytes)
        var violations: [FrameViolation] = []
        if !code.isValidOnWire { violations.append(.invalidCloseCode(code.rawValue)) }
        if !valid { violations.append(.invalidUTF8CloseReason) }
        return (CloseFrameBody(code: code, reason: Array(reasonBytes), reasonIsValidUTF8: valid), violations)
    }
}
