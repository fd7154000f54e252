import Testing
@testable import WSTapOutput

/// `--grep`'s matcher: the regex syntax it accepts, checked against Swift's own `Regex` on the
/// same texts, what it refuses, and that its work grows with the text, not with backtracking.
@Suite struct TextPatternTests {
    /// Patterns and texts where the answer is plain; each is also checked against `Regex`.
    static let cases: [(pattern: String, text: String, matches: Bool)] = [
        ("error", "an error occurred", true),
        ("error", "an eror occurred", false),
        ("^hello", "hello world", true),
        ("^world", "hello world", false),
        ("world$", "hello world", true),
        ("hello$", "hello world", false),
        ("^$", "", true),
        ("a.c", "abc", true),
        ("a.c", "a\nc", false),
        ("colou?r", "color", true),
        ("colou?r", "colour", true),
        ("colou?r", "colouur", false),
        ("ab+c", "ac", false),
        ("ab+c", "abbbc", true),
        ("ab*c", "ac", true),
        ("a{3}", "aa", false),
        ("a{3}", "xaaay", true),
        ("^a{2,3}$", "aaaa", false),
        ("^a{2,3}$", "aaa", true),
        ("^a{2,}$", "aaaaaaa", true),
        ("^a{2,}$", "a", false),
        ("cat|dog", "hotdog", true),
        ("cat|dog", "bird", false),
        ("^(cat|dog)s?$", "dogs", true),
        ("^(?:cat|dog)s?$", "cats", true),
        ("^(cat|dog)s?$", "catdog", false),
        ("[0-9]+ms", "took 350ms", true),
        ("[0-9]+ms", "took ms", false),
        ("[^\"]+\"", "\"", false),
        ("[^\"]+\"", "ab\"", true),
        ("\\d{3}-\\d{4}", "call 555-1234", true),
        ("\\d{3}-\\d{4}", "call 55-1234", false),
        ("\\w+@\\w+\\.com", "mail bob@example.com now", true),
        ("\\s", "nospace", false),
        ("\\S+", "   ", false),
        ("[\\d.]+", "v1.2", true),
        ("\\.", "abc", false),
        ("\\.", "a.c", true),
        ("\"type\":\"error\"", "{\"type\":\"error\",\"code\":4}", true),
        ("error.*timeout", "error: read timeout", true),
        ("error.*timeout", "timeout then error", false),
        ("(a|ab)(c|bcd)(d*)", "abcd", true),
        ("(a*)*b", "aaaa", false),
        ("(a*)*b", "aaab", true),
        ("\\u{e9}t\\u{e9}", "été", true),
        ("\\x41", "A", true),
        ("[a-c]+z", "cabz", true),
        ("a|", "zzz", true),
        ("\\berror\\b", "an error here", true),
        ("\\berror\\b", "errors", false),
        ("\\berror\\b", "error", true),
        ("\\Berr", "terror", true),
        ("\\Berr", "err", false),
    ]

    @Test func agreesWithSwiftRegex() throws {
        for item in Self.cases {
            let pattern = try TextPattern(item.pattern)
            #expect(pattern.matches(item.text) == item.matches, "\(item.pattern) on \(item.text)")
            let reference = try Regex(item.pattern)
            #expect((try reference.firstMatch(in: item.text) != nil) == item.matches, "Regex disagrees: \(item.pattern)")
        }
    }

    /// A `{` that starts no count is itself (Swift's `Regex` refuses it).
    @Test func braceWithoutCount() throws {
        #expect(try TextPattern("x{").matches("ax{"))
        #expect(try TextPattern("x{a}").matches("x{a}"))
    }

    @Test func matchesWithoutCase() throws {
        #expect(try TextPattern("(?i)ERROR").matches("an Error here"))
        #expect(try TextPattern("(?i)[a-f]+z").matches("ABCZ"))
        #expect(try TextPattern("(?i)[A-F]+z").matches("abcZ"))
        #expect(try !TextPattern("ERROR").matches("an Error here"))
        #expect(try TextPattern("(?i)ÉTÉ").matches("un été"))
    }

    @Test func refusesWhatNeedsBacktracking() {
        for pattern in ["(a)\\1", "foo(?=bar)", "(?<=a)b", "(?!x)y", "(unclosed", "closed)", "[abc", "*a", "a{3,2}", "\\b+", "[[:alpha:]]", "\\q"] {
            #expect(throws: TextPattern.SyntaxError.self, "\(pattern)") { try TextPattern(pattern) }
        }
    }

    @Test func refusesAProgramTooLarge() {
        #expect(throws: TextPattern.SyntaxError.self) { try TextPattern("(a{1000}){1000}") }
        #expect(throws: TextPattern.SyntaxError.self) { try TextPattern("a{100000}") }
        #expect(throws: TextPattern.SyntaxError.self) { try TextPattern("a" + String(repeating: "*", count: 100_000)) }
        #expect(throws: TextPattern.SyntaxError.self) { try TextPattern(String(repeating: "(", count: 10_000)) }
    }

    /// The patterns that backtrack exponentially in a backtracking engine answer at once, on a
    /// text long enough that backtracking could never finish.
    @Test func nestedQuantifiersStayLinear() throws {
        let text = String(repeating: "a", count: 20_000) + "!"
        #expect(try !TextPattern("^(a+)+$").matches(text))
        #expect(try !TextPattern("^(a|aa)*$").matches(text))
        #expect(try !TextPattern("(x+x+)+y").matches(String(repeating: "x", count: 20_000)))
        #expect(try TextPattern("error.*timeout").matches("error" + String(repeating: " ", count: 100_000) + "timeout"))
    }
}

/// `--grep-bytes`: what its argument means, and a search that finds every occurrence a naive
/// scan finds, in linear time.
@Suite struct ByteSearchTests {
    @Test func readsHexOrText() {
        #expect(DisplayFilter.searchedBytes("89504e47") == [0x89, 0x50, 0x4E, 0x47])
        #expect(DisplayFilter.searchedBytes("89 50:4e 47") == [0x89, 0x50, 0x4E, 0x47])
        #expect(DisplayFilter.searchedBytes("0x8950") == [0x89, 0x50])
        #expect(DisplayFilter.searchedBytes("hex:cafe") == [0xCA, 0xFE])
        #expect(DisplayFilter.searchedBytes("text:cafe") == Array("cafe".utf8))
        #expect(DisplayFilter.searchedBytes("PNG") == Array("PNG".utf8))
        #expect(DisplayFilter.searchedBytes("abc") == Array("abc".utf8))  // odd: not hex pairs
        #expect(DisplayFilter.searchedBytes("hex:7g") == nil)
        #expect(DisplayFilter.searchedBytes("") == nil)
        #expect(DisplayFilter.searchedBytes("text:") == nil)
    }

    @Test func findsWhatANaiveScanFinds() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let haystack = (0..<Int.random(in: 0...64, using: &generator)).map { _ in UInt8.random(in: 0...2, using: &generator) }
            let needle = (0..<Int.random(in: 1...6, using: &generator)).map { _ in UInt8.random(in: 0...2, using: &generator) }
            let naive = haystack.count >= needle.count
                && (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
            let found = haystack.withUnsafeBytes { ByteSearch(needle).occurs(in: $0) }
            #expect(found == naive, "\(needle) in \(haystack)")
        }
    }
}
