import Foundation
import Testing
@testable import WSTapCore

struct Base64Tests {
    @Test func base64RoundTrip() {
        for length in 0..<20 {
            let bytes = (0..<length).map { UInt8($0 * 13 & 0xFF) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
        }
        #expect(Base64.decode("abc") == nil)
        #expect(Base64.decode("ab$=") == nil)
    }

    /// The six-bytes-at-a-time path and the tail against Foundation's encoder, at every length
    /// around the block boundaries.
    @Test func base64MatchesFoundation() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<300 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(Base64.encode(bytes) == Data(bytes).base64EncodedString(), "length \(length)")
        }
    }
}
