import Testing
@testable import WSTap
@testable import WSTapOutput
import WSTapCore

/// The terminal previews: what a capture's bytes may put on a terminal.
@Suite struct TextPreviewTests {
    static func preview(_ bytes: [UInt8], limit: Int = 60, asText: Bool = true) -> String {
        let buffer = OutputBuffer()
        bytes.withUnsafeBytes { buffer.quotedPreview($0, limit: limit, asText: asText) }
        return buffer.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// A model written the slow, obvious way with the standard library: each character the lead
    /// byte announces, kept if the standard library accepts exactly those bytes as one scalar.
    static func model(_ bytes: [UInt8], limit: Int) -> String {
        var output = "\""
        var index = 0
        var shown = 0
        while index < bytes.count {
            if shown >= limit {
                output += "…"
                break
            }
            let lead = bytes[index]
            let length = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0
            if length > 0, index + length <= bytes.count,
               let character = String(validating: bytes[index..<(index + length)], as: UTF8.self),
               character.unicodeScalars.count == 1, let scalar = character.unicodeScalars.first {
                output += modelEscape(scalar)
                index += length
            } else {
                output += "\\x" + hex(lead)
                index += 1
            }
            shown += 1
        }
        return output + "\""
    }

    static func modelEscape(_ scalar: Unicode.Scalar) -> String {
        let value = scalar.value
        switch value {
        case 0x0A: return "\\n"
        case 0x0D: return "\\r"
        case 0x09: return "\\t"
        case 0x22: return "\\\""
        case 0x5C: return "\\\\"
        case 0..<0x20, 0x7F...0x9F: return "\\x" + hex(UInt8(value))
        case 0x061C, 0x200E, 0x200F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069:
            let digits = String(value, radix: 16)
            return "\\u{" + String(repeating: "0", count: 4 - digits.count) + digits + "}"
        default: return String(scalar)
        }
    }

    static func hex(_ byte: UInt8) -> String {
        (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
    }

    @Test func controlsBidiAndBrokenUTF8AreEscaped() {
        #expect(Self.preview(Array("a\u{1B}[31mb\n\"\\".utf8)) == #""a\x1b[31mb\n\"\\""#)
        #expect(Self.preview([0xC2, 0x85, 0x7F, 0x09, 0x0D]) == #""\x85\x7f\t\r""#)
        #expect(Self.preview(Array("x\u{202E}y\u{2066}\u{200F}".utf8)) == #""x\u{202e}y\u{2066}\u{200f}""#)
        #expect(Self.preview(Array("a\u{061C}b\u{2028}c\u{2029}".utf8)) == #""a\u{061c}b\u{2028}c\u{2029}""#)
        // Overlong, surrogate, above U+10FFFF, a lone continuation, a cut character.
        #expect(Self.preview([0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80, 0x80, 0xE2, 0x82])
            == #""\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\x80\xe2\x82""#)
        #expect(Self.preview(Array("é€😀".utf8)) == "\"é€😀\"")
    }

    @Test func longTextIsCutAfterTheLimitInCharacters() {
        #expect(Self.preview(Array("ééééé".utf8), limit: 3) == "\"ééé…\"")
        #expect(Self.preview(Array("abc".utf8), limit: 3) == "\"abc\"")
    }

    @Test func binaryIsShownAsHex() {
        #expect(Self.preview([0x81, 0x05, 0x48], asText: false) == "81 05 48")
        #expect(Self.preview(Array(repeating: 0xAB, count: 25), asText: false)
            == Array(repeating: "ab", count: 20).joined(separator: " ") + " …")
        #expect(Self.preview([], asText: false) == "")
    }

    /// Random byte strings built from the cases that matter agree with the model.
    @Test func agreesWithTheStandardLibraryModel() {
        let pieces: [[UInt8]] = [
            [0x41], [0x20], [0x0A], [0x00], [0x1B], [0x22], [0x5C], [0x7F], [0xC2, 0x80], [0xC2, 0x9F], [0xC2, 0xA0],
            [0xC3, 0xA9], [0xE2, 0x80, 0x8E], [0xE2, 0x80, 0xAA], [0xE2, 0x80, 0xAF], [0xE2, 0x81, 0xA6],
            [0xE2, 0x81, 0xA9], [0xE2, 0x82, 0xAC], [0xED, 0x9F, 0xBF], [0xED, 0xA0, 0x80], [0xE0, 0x9F, 0x80],
            [0xE0, 0xA0, 0x80], [0xF0, 0x8F, 0x80, 0x80], [0xF0, 0x9F, 0x98, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],
            [0xF4, 0x90, 0x80, 0x80], [0xC0], [0xC1], [0xF5], [0xFF], [0x80], [0xBF], [0xE2], [0xF0, 0x9F],
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int.random(in: 0...12, using: &generator) {
                bytes += pieces.randomElement(using: &generator)!
            }
            let limit = Int.random(in: 1...16, using: &generator)
            #expect(Self.preview(bytes, limit: limit) == Self.model(bytes, limit: limit), "\(bytes) limit \(limit)")
        }
    }

    @Test func byteCountsAndTimes() {
        let buffer = OutputBuffer()
        for count in [0, 999, 1000, 6249, 999_949, 1_000_000, 2_500_000_000] {
            buffer.byteCount(count)
            buffer.raw("|")
        }
        let start = CaptureTimestamp(seconds: 100, nanoseconds: 0)
        buffer.relativeTime(CaptureTimestamp(seconds: 100, nanoseconds: 345_999), since: start)
        buffer.relativeTime(CaptureTimestamp(seconds: 112, nanoseconds: 5_000), since: start)
        buffer.relativeTime(CaptureTimestamp(seconds: 12_345, nanoseconds: 0), since: start, aligned: false)
        buffer.relativeTime(nil, since: start)
        #expect(buffer.withBytes { String(decoding: $0, as: UTF8.self) }
            == "0 B|999 B|1.0 KB|6.2 KB|999.9 KB|1.0 MB|2.5 GB|  0.000345 12.00000512245.000000         -")
    }
}
