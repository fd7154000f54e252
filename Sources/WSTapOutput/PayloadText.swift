import WSTap
import WSTapCore

/// The one rule for showing a payload as text, which every exporter applies:
///
/// - a data message or frame is text when its sender said so: a decoded text message, a text
///   frame (or a continuation of one) not compressed;
/// - a ping's or pong's payload is text when it is valid UTF-8 (usually ASCII words); a close
///   frame's reason is always text (RFC 6455 §5.5.1);
/// - any other bytes (an HTTP body) are text when they are valid UTF-8.
///
/// Everything else is shown as bytes (hex, or base64 in JSON). Text whose bytes are not all
/// valid UTF-8 (a fragment cut inside a character, a sender that broke the rule) is shown with
/// those bytes escaped as `\xNN` (terminal, follow), marked (HTML) or as U+FFFD (HAR, as a
/// browser shows it); JSON, whose strings cannot carry them, shows such a payload as base64
/// (its `valid_utf8` says why).
enum PayloadText {
    static func isText(_ frame: FrameRecord) -> Bool {
        if frame.payloadIsText { return true }
        let opcode = frame.header.opcode
        return (opcode == .ping || opcode == .pong) && UTF8Validation.isValid(frame.payload)
    }

    static func isText(_ record: MessageRecord) -> Bool {
        record.message.opcode == .text && record.message.isDecoded
    }

    static func isText(_ bytes: UnsafeRawBufferPointer) -> Bool {
        UTF8Validation.isValid(bytes)
    }

    /// A frame's payload as a JSON string: text that is valid UTF-8.
    static func isJSONString(_ frame: FrameRecord) -> Bool {
        // Pings and pongs were validated by `isText`.
        isText(frame) && (!frame.payloadIsText || UTF8Validation.isValid(frame.payload))
    }

    /// A message's payload as a JSON string: text that is valid UTF-8 (with bytes missing, the
    /// parts that were captured).
    static func isJSONString(_ record: MessageRecord) -> Bool {
        let message = record.message
        guard isText(record), message.isValidUTF8 != false else { return false }
        return message.gaps.isEmpty ? message.isValidUTF8 == true : UTF8Validation.isValid(message.payload)
    }
}
