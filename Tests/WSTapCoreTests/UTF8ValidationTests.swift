import Testing
@testable import WSTapCore

/// The UTF-8 validator against the standard library's own validation, on edge cases and on
/// random buffers that put multi-byte and invalid sequences at every alignment of the fast paths.
@Suite struct UTF8ValidationTests {
    static func reference(_ bytes: [UInt8]) -> Bool {
        String(validating: bytes, as: UTF8.self) != nil
    }

    static func validate(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { UTF8Validation.isValid($0) }
    }

    @Test func edgeCases() {
        let cases: [[UInt8]] = [
            [], [0x41], [0xC2, 0x80], [0xC1, 0xBF], [0xE0, 0x9F, 0x80], [0xE0, 0xA0, 0x80], [0xED, 0xA0, 0x80],
            [0xED, 0x9F, 0xBF], [0xF0, 0x8F, 0xBF, 0xBF], [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],
            [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0x80], [0xE2, 0x82], [0xF0, 0x9F, 0x98],
        ]
        for bytes in cases {
            #expect(Self.validate(bytes) == Self.reference(bytes), "\(bytes)")
        }
    }

    @Test func randomBuffersAgreeWithTheStandardLibrary() {
        var generator = SystemRandomNumberGenerator()
        let pieces: [[UInt8]] = [
            [0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x98, 0x80], [0xC0, 0x80], [0xED, 0xA0, 0x80],
            [0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80],
        ]
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...80, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0x20...0x7E, using: &generator) }
            if Bool.random(using: &generator), !bytes.isEmpty {
                let piece = pieces.randomElement(using: &generator)!
                bytes.insert(contentsOf: piece, at: Int.random(in: 0...bytes.count, using: &generator))
            }
            #expect(Self.validate(bytes) == Self.reference(bytes), "\(bytes)")
        }
    }

    @Test func aCharacterCutByTheEndPassesOnlyWhenAllowed() {
        let cut: [UInt8] = Array(repeating: 0x61, count: 37) + [0xF0, 0x9F, 0x98]
        cut.withUnsafeBytes { bytes in
            #expect(!UTF8Validation.isValid(bytes))
            #expect(UTF8Validation.isValid(bytes, allowingCutEnd: true))
        }
    }
}
