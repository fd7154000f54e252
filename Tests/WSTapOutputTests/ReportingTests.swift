import Testing
@testable import WSTapOutput

/// `--pretty`, `follow` and the HTML report re-indent JSON messages; anything else is left alone.
@Suite struct JSONPrettyTests {
    func pretty(_ text: String) -> [String]? {
        Array(text.utf8).withUnsafeBytes { JSONPretty.lines($0) }
    }

    @Test func reindentsObjectsAndArrays() {
        #expect(pretty(#"{"a":1,"b":[true,null,"x,\"y\""],"c":{}}"#) == [
            "{", #"  "a": 1,"#, #"  "b": ["#, "    true,", "    null,", #"    "x,\"y\"""#, "  ],", #"  "c": {}"#, "}",
        ])
        #expect(pretty(" [ -1.5e3 , [] ] ") == ["[", "  -1.5e3,", "  []", "]"])
    }

    @Test func leavesWhatIsNotOneJSONDocumentAlone() {
        for text in ["hello", "42", #""just a string""#, "{", #"{"a":1"#, #"{"a" 1}"#, "[1,]", "[1 2]", "{}x", "[tru]",
                     #"{"a":1}}"#, "[1]]", #"{1:2}"#, "[\"unterminated]"] {
            #expect(pretty(text) == nil, "\(text)")
        }
    }

    @Test func deepNestingIsNotReindented() {
        let depth = JSONPretty.maxDepth
        #expect(pretty(String(repeating: "[", count: depth) + String(repeating: "]", count: depth)) != nil)
        #expect(pretty(String(repeating: "[", count: depth + 1) + String(repeating: "]", count: depth + 1)) == nil)
    }
}

/// `wstap stats` percentiles: exact below 1 KiB, within 1.6% above.
@Suite struct SizeHistogramTests {
    @Test func exactBelowOneKibibyte() {
        var sizes = SizeHistogram()
        for size in 1...100 { sizes.add(UInt64(size)) }
        #expect(sizes.percentile(0.5) == 50)
        #expect(sizes.percentile(0.9) == 90)
        #expect(sizes.percentile(0.99) == 99)
        #expect(sizes.percentile(1) == 100)
        #expect(sizes.minimum == 1 && sizes.maximum == 100 && sizes.count == 100)
    }

    @Test func largeSizesWithinTheirBucket() {
        var sizes = SizeHistogram()
        let values: [UInt64] = (0..<1000).map { 5_000 + UInt64($0) * 997 }
        for value in values { sizes.add(value) }
        let sorted = values.sorted()
        for fraction in [0.5, 0.9, 0.99] {
            let exact = Double(sorted[Int((fraction * 1000).rounded(.up)) - 1])
            let estimate = Double(sizes.percentile(fraction) ?? 0)
            #expect(estimate <= exact && estimate >= exact * (1 - 1.0 / 64), "p\(fraction): \(estimate) vs \(exact)")
        }
        #expect(sizes.maximum == sorted.last)
    }

    @Test func mergedHistogramsEqualOneFedEverything() {
        var all = SizeHistogram(), first = SizeHistogram(), second = SizeHistogram()
        for value in stride(from: UInt64(0), to: 100_000, by: 37) {
            all.add(value)
            if value % 2 == 0 { first.add(value) } else { second.add(value) }
        }
        first.add(second)
        #expect(first == all)
    }

    @Test func emptyHasNoPercentile() {
        #expect(SizeHistogram().percentile(0.5) == nil)
    }
}

/// Text from the capture in the HTML report is text: markup escaped, controls made visible.
@Suite struct HTMLTextTests {
    func html(_ text: String, singleLine: Bool = true) -> String {
        let out = OutputBuffer()
        HTMLText.write(text, into: out, singleLine: singleLine)
        return out.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    @Test func markupIsEscaped() {
        #expect(html(#"<img src=x onerror="a('b')">&amp;"#) == "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;amp;")
    }

    @Test func controlsAndInvisibleFormattingAreShown() {
        #expect(html("a\u{0}b\u{1B}c\u{7F}") == "a<span class=\"ctl\">␀</span>b<span class=\"ctl\">␛</span>c<span class=\"ctl\">␡</span>")
        #expect(html("x\u{202E}y") == "x<span class=\"ctl\">&lt;U+202E&gt;</span>y")
        #expect(html("1\n2", singleLine: false) == "1\n2")
        #expect(html("1\n2") == "1<span class=\"ctl\">␊</span>2")
    }
}
