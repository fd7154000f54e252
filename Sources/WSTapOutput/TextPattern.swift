/// A regular expression matched in time linear in the text (`--grep`): compiled to a small
/// program of Unicode-scalar tests and run as a Thompson NFA, every thread advanced together one
/// scalar at a time, so no input can make it backtrack. The work is at most the text's length
/// times the program's size, and the program is bounded (`maxProgramSize`).
///
/// The syntax is the common core of POSIX ERE, Perl and Swift regexes: literals; `.` (any
/// character but a line feed); classes `[a-z_]`, `[^"]` with `\d \w \s` (and their negations
/// `\D \W \S`) inside or outside them; escapes `\. \\ \n \r \t \/` and `\xHH`, `\u{H…}`;
/// anchors `^` and `$` (the text's start and end) and `\b`, `\B` (a word boundary, or not);
/// groups `(…)` and `(?:…)`; alternation `|`;
/// quantifiers `* + ?` and `{n}`, `{n,}`, `{n,m}` (a lazy `?` after one is accepted: it does not
/// change whether a text matches); `(?i)` at the start for matching without case. What would
/// need backtracking (backreferences, lookaround) is refused with a message that says so.
public struct TextPattern: Sendable {
    /// What a pattern cannot be compiled for, in one line.
    public struct SyntaxError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Instructions at most (a bounded repetition counts its copies).
    public static let maxProgramSize = 10_000

    private enum Instruction: Sendable {
        case scalar(Unicode.Scalar)
        case anyButLineFeed
        case set(ScalarSet)
        case split(Int, Int)
        case jump(Int)
        case textStart
        case textEnd
        case wordBoundary(Bool)
        case match
    }

    /// Where in the text threads are being added: what the zero-width assertions look at.
    private struct Position {
        var atStart: Bool
        var atEnd: Bool
        var previousIsWord: Bool
        var nextIsWord: Bool
    }

    private let program: [Instruction]
    private let ignoresCase: Bool

    public init(_ pattern: String) throws(SyntaxError) {
        var scalars = Array(pattern.unicodeScalars)
        var ignoresCase = false
        if scalars.starts(with: "(?i)".unicodeScalars) {
            ignoresCase = true
            scalars.removeFirst(4)
        }
        var parser = Parser(scalars: scalars, ignoresCase: ignoresCase)
        let tree = try parser.parseAlternation()
        guard parser.atEnd else { throw SyntaxError(description: "unbalanced ')' at position \(parser.position + 1)") }
        var compiler = Compiler()
        try compiler.emit(tree)
        compiler.program.append(.match)
        program = compiler.program
        self.ignoresCase = ignoresCase
    }

    /// Whether the pattern matches anywhere in `text`.
    public func matches(_ text: String) -> Bool {
        var current = ThreadList(capacity: program.count)
        var next = ThreadList(capacity: program.count)
        var stack: [Int] = []
        stack.reserveCapacity(program.count)
        var iterator = text.unicodeScalars.makeIterator()
        var scalar = iterator.next()
        var here = Position(atStart: true, atEnd: scalar == nil, previousIsWord: false, nextIsWord: scalar.map(NamedClass.word.contains) ?? false)
        while true {
            // A new attempt starts at every position (an unanchored search).
            if add(0, to: &current, stack: &stack, at: here) { return true }
            guard let input = scalar else { return false }
            let folded = ignoresCase ? Self.fold(input) : input
            let following = iterator.next()
            let after = Position(
                atStart: false, atEnd: following == nil, previousIsWord: here.nextIsWord,
                nextIsWord: following.map(NamedClass.word.contains) ?? false)
            next.clear()
            for pc in current.threads {
                let advances: Bool
                switch program[pc] {
                case .scalar(let expected): advances = folded == expected
                case .anyButLineFeed: advances = input != "\n"
                case .set(let set): advances = set.contains(folded, original: input)
                default: advances = false
                }
                if advances, add(pc + 1, to: &next, stack: &stack, at: after) { return true }
            }
            swap(&current, &next)
            here = after
            scalar = following
        }
    }

    /// Adds the thread at `pc` and every thread its jumps and splits reach without consuming a
    /// scalar; true when one of them is the match.
    private func add(
        _ start: Int, to list: inout ThreadList, stack: inout [Int], at position: Position
    ) -> Bool {
        stack.removeAll(keepingCapacity: true)
        stack.append(start)
        while let pc = stack.popLast() {
            guard list.insert(pc) else { continue }
            switch program[pc] {
            case .match: return true
            case .jump(let target): stack.append(target)
            case .split(let first, let second):
                stack.append(second)
                stack.append(first)
            case .textStart: if position.atStart { stack.append(pc + 1) }
            case .textEnd: if position.atEnd { stack.append(pc + 1) }
            case .wordBoundary(let expected):
                if (position.previousIsWord != position.nextIsWord) == expected { stack.append(pc + 1) }
            case .scalar, .anyButLineFeed, .set: list.threads.append(pc)
            }
        }
        return false
    }

    /// Lower case, scalar by scalar (simple case folding).
    static func fold(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        if scalar.value < 0x80 {
            return scalar.value >= 0x41 && scalar.value <= 0x5A ? Unicode.Scalar(scalar.value + 0x20)! : scalar
        }
        let lower = scalar.properties.lowercaseMapping.unicodeScalars
        return lower.count == 1 ? lower.first! : scalar
    }

    /// The threads at one position, each program counter at most once (a sparse set: cleared in
    /// constant time).
    private struct ThreadList {
        var threads: [Int] = []
        private var seen: [UInt32]
        private var generation: UInt32 = 1

        init(capacity: Int) {
            seen = Array(repeating: 0, count: capacity)
            threads.reserveCapacity(capacity)
        }

        /// False when `pc` was already added at this position.
        mutating func insert(_ pc: Int) -> Bool {
            guard seen[pc] != generation else { return false }
            seen[pc] = generation
            return true
        }

        mutating func clear() {
            threads.removeAll(keepingCapacity: true)
            generation &+= 1
            if generation == 0 {
                for index in seen.indices { seen[index] = 0 }
                generation = 1
            }
        }
    }

    /// A bracket class or a class escape: ranges of scalars, the named classes, negated or not.
    fileprivate struct ScalarSet: Sendable {
        var ranges: [ClosedRange<UInt32>] = []
        var named: [(NamedClass, negated: Bool)] = []
        var negated = false

        func contains(_ folded: Unicode.Scalar, original: Unicode.Scalar) -> Bool {
            var found = false
            for range in ranges where range.contains(folded.value) || range.contains(original.value) {
                found = true
                break
            }
            if !found {
                for (named, negated) in named where named.contains(original) != negated {
                    found = true
                    break
                }
            }
            return found != negated
        }
    }

    fileprivate enum NamedClass: Sendable {
        case digit, word, space

        func contains(_ scalar: Unicode.Scalar) -> Bool {
            switch self {
            case .digit: return scalar.properties.numericType == .decimal
            case .word: return scalar == "_" || scalar.properties.isAlphabetic || scalar.properties.numericType == .decimal
            case .space: return scalar.properties.isWhitespace
            }
        }
    }

    fileprivate indirect enum Node {
        case scalar(Unicode.Scalar)
        case anyButLineFeed
        case set(ScalarSet)
        case textStart
        case textEnd
        case wordBoundary(Bool)
        case sequence([Node])
        case alternation([Node])
        case repeated(Node, minimum: Int, maximum: Int?)
    }

    private struct Parser {
        let scalars: [Unicode.Scalar]
        let ignoresCase: Bool
        var position = 0
        var depth = 0

        init(scalars: [Unicode.Scalar], ignoresCase: Bool) {
            self.scalars = scalars
            self.ignoresCase = ignoresCase
        }

        var atEnd: Bool { position == scalars.count }

        private func peek() -> Unicode.Scalar? { position < scalars.count ? scalars[position] : nil }

        /// `at`: where the construct began (by default, where the parser is).
        private func error(_ text: String, at start: Int? = nil) -> SyntaxError {
            SyntaxError(description: "\(text) at position \(min(start ?? position, scalars.count) + 1)")
        }

        mutating func parseAlternation() throws(SyntaxError) -> Node {
            var branches = [try parseSequence()]
            while peek() == "|" {
                position += 1
                branches.append(try parseSequence())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        private mutating func parseSequence() throws(SyntaxError) -> Node {
            var items: [Node] = []
            while let next = peek(), next != "|", next != ")" {
                let atom = try parseAtom()
                items.append(try parseQuantifiers(on: atom))
            }
            return items.count == 1 ? items[0] : .sequence(items)
        }

        private mutating func parseQuantifiers(on atom: Node) throws(SyntaxError) -> Node {
            var node = atom
            var stacked = 0
            while let next = peek() {
                let bounds: (Int, Int?)
                switch next {
                case "*": bounds = (0, nil); position += 1
                case "+": bounds = (1, nil); position += 1
                case "?": bounds = (0, 1); position += 1
                case "{":
                    guard let counted = try parseCount() else { return node }
                    bounds = counted
                default: return node
                }
                switch node {
                case .textStart, .textEnd, .wordBoundary: throw error("a quantifier after an anchor")
                default: break
                }
                stacked += 1
                guard stacked <= 100 else { throw error("more than 100 quantifiers on one item") }
                node = .repeated(node, minimum: bounds.0, maximum: bounds.1)
                // Lazy and possessive forms match the same texts.
                if peek() == "?" || peek() == "+" { position += 1 }
            }
            return node
        }

        /// `{n}`, `{n,}`, `{n,m}`; nil (a literal `{`) when what follows is not a count.
        private mutating func parseCount() throws(SyntaxError) -> (Int, Int?)? {
            let start = position
            position += 1
            guard let minimum = parseNumber() else {
                position = start
                return nil
            }
            var maximum: Int? = minimum
            if peek() == "," {
                position += 1
                maximum = parseNumber()
            }
            guard peek() == "}" else {
                position = start
                return nil
            }
            position += 1
            if let maximum, maximum < minimum { throw error("a count {\(minimum),\(maximum)} whose maximum is below its minimum") }
            return (minimum, maximum)
        }

        /// ASCII digits (capped: a larger count fails as too large a program anyway).
        private mutating func parseNumber() -> Int? {
            var value: Int?
            while let scalar = peek(), scalar.value >= 0x30, scalar.value <= 0x39 {
                value = min(100_000, (value ?? 0) * 10 + Int(scalar.value - 0x30))
                position += 1
            }
            return value
        }

        private mutating func parseAtom() throws(SyntaxError) -> Node {
            let scalar = scalars[position]
            position += 1
            switch scalar {
            case "(":
                if peek() == "?" {
                    guard position + 1 < scalars.count, scalars[position + 1] == ":" else {
                        throw error("lookaround and other (?…) groups are not supported (wstap matches in linear time, without backtracking)", at: position - 1)
                    }
                    position += 2
                }
                depth += 1
                guard depth <= 100 else { throw error("groups nested more than 100 deep") }
                let inner = try parseAlternation()
                guard peek() == ")" else { throw error("a '(' without its ')'") }
                position += 1
                depth -= 1
                return inner
            case ".": return .anyButLineFeed
            case "^": return .textStart
            case "$": return .textEnd
            case "[": return .set(try parseBracket())
            case "\\": return try parseEscape()
            case "*", "+", "?": throw error("'\(scalar)' with nothing to repeat")
            default: return literal(scalar)
            }
        }

        private func literal(_ scalar: Unicode.Scalar) -> Node {
            .scalar(ignoresCase ? TextPattern.fold(scalar) : scalar)
        }

        private mutating func parseEscape() throws(SyntaxError) -> Node {
            let start = position - 1
            guard let scalar = peek() else { throw error("a '\\' at the end", at: start) }
            position += 1
            switch scalar {
            case "d", "D", "w", "W", "s", "S":
                let named: NamedClass = scalar == "d" || scalar == "D" ? .digit : scalar == "w" || scalar == "W" ? .word : .space
                let negated = scalar == "D" || scalar == "W" || scalar == "S"
                return .set(ScalarSet(named: [(named, negated)]))
            case "b", "B": return .wordBoundary(scalar == "b")
            case "n": return .scalar("\n")
            case "r": return .scalar("\r")
            case "t": return .scalar("\t")
            case "x", "u": return literal(try parseCodePoint(braced: scalar == "u"))
            case "1"..."9":
                throw error("backreferences are not supported (wstap matches in linear time, without backtracking)", at: start)
            case "A", "z", "Z", "G", "k", "p", "P", "Q", "E":
                throw error("'\\\(scalar)' is not supported", at: start)
            default:
                guard !scalar.properties.isAlphabetic || !scalar.isASCII else { throw error("unknown escape '\\\(scalar)'", at: start) }
                return literal(scalar)
            }
        }

        /// `\xHH` or `\u{H…}` (also `\x{H…}`).
        private mutating func parseCodePoint(braced: Bool) throws(SyntaxError) -> Unicode.Scalar {
            var digits = ""
            if peek() == "{" {
                position += 1
                while let scalar = peek(), scalar != "}" {
                    digits.unicodeScalars.append(scalar)
                    position += 1
                }
                guard peek() == "}" else { throw error("a '\\u{' without its '}'") }
                position += 1
            } else {
                guard !braced else { throw error("'\\u' takes '{hex digits}'") }
                for _ in 0..<2 {
                    guard let scalar = peek() else { break }
                    digits.unicodeScalars.append(scalar)
                    position += 1
                }
            }
            guard digits.count <= 8, let value = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(value) else {
                throw error("'\(digits)' is not a code point")
            }
            return scalar
        }

        private mutating func parseBracket() throws(SyntaxError) -> ScalarSet {
            var set = ScalarSet()
            if peek() == "^" {
                set.negated = true
                position += 1
            }
            var first = true
            while let scalar = peek(), scalar != "]" || first {
                first = false
                position += 1
                var low: Unicode.Scalar = scalar
                if scalar == "\\" {
                    switch try parseEscape() {
                    case .set(let inner):
                        set.named += inner.named
                        continue
                    case .scalar(let escaped): low = escaped
                    default: continue
                    }
                } else if scalar == "[", peek() == ":" {
                    throw error("POSIX classes like [:alpha:] are not supported; use \\w, \\d, \\s or a range")
                }
                var high = low
                if peek() == "-", position + 1 < scalars.count, scalars[position + 1] != "]" {
                    position += 1
                    var end = scalars[position]
                    position += 1
                    if end == "\\" {
                        guard case .scalar(let escaped) = try parseEscape() else { throw error("a range ending in a class") }
                        end = escaped
                    }
                    guard end.value >= low.value else { throw error("a range \(low)-\(end) out of order") }
                    high = end
                }
                set.ranges.append(ignoresCase ? TextPattern.foldedRange(low.value...high.value) : low.value...high.value)
                if ignoresCase, let extra = TextPattern.upperRange(low.value...high.value) { set.ranges.append(extra) }
            }
            guard peek() == "]" else { throw error("a '[' without its ']'") }
            position += 1
            return set
        }
    }

    /// A range as matched without case: its ASCII capitals lowered.
    fileprivate static func foldedRange(_ range: ClosedRange<UInt32>) -> ClosedRange<UInt32> {
        guard range.lowerBound >= 0x41, range.upperBound <= 0x5A else { return range }
        return (range.lowerBound + 0x20)...(range.upperBound + 0x20)
    }

    /// For a range of lower-case ASCII letters matched without case, the capitals (the text is
    /// folded, but a range such as `[A-z]` or a mixed one keeps both).
    fileprivate static func upperRange(_ range: ClosedRange<UInt32>) -> ClosedRange<UInt32>? {
        let lower = max(range.lowerBound, 0x41), upper = min(range.upperBound, 0x5A)
        guard lower <= upper else { return nil }
        return (lower + 0x20)...(upper + 0x20)
    }

    private struct Compiler {
        var program: [Instruction] = []

        mutating func emit(_ node: Node) throws(SyntaxError) {
            guard program.count < TextPattern.maxProgramSize else {
                throw SyntaxError(description: "the pattern is too large once its repetitions are counted (more than \(TextPattern.maxProgramSize) steps)")
            }
            switch node {
            case .scalar(let scalar): program.append(.scalar(scalar))
            case .anyButLineFeed: program.append(.anyButLineFeed)
            case .set(let set): program.append(.set(set))
            case .textStart: program.append(.textStart)
            case .textEnd: program.append(.textEnd)
            case .wordBoundary(let expected): program.append(.wordBoundary(expected))
            case .sequence(let items):
                for item in items { try emit(item) }
            case .alternation(let branches):
                // split L1, next; L1: branch; jump end; next: split … — the last branch plain.
                var jumps: [Int] = []
                for (index, branch) in branches.enumerated() {
                    if index < branches.count - 1 {
                        let split = program.count
                        program.append(.split(split + 1, 0))
                        try emit(branch)
                        jumps.append(program.count)
                        program.append(.jump(0))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        try emit(branch)
                    }
                }
                for jump in jumps { program[jump] = .jump(program.count) }
            case .repeated(let inner, let minimum, let maximum):
                for _ in 0..<minimum { try emit(inner) }
                if let maximum {
                    // Each optional copy: split into it or past every one left.
                    var splits: [Int] = []
                    for _ in minimum..<maximum {
                        splits.append(program.count)
                        program.append(.split(program.count + 1, 0))
                        try emit(inner)
                    }
                    for split in splits { program[split] = .split(split + 1, program.count) }
                } else {
                    let loop = program.count
                    program.append(.split(loop + 1, 0))
                    try emit(inner)
                    program.append(.jump(loop))
                    program[loop] = .split(loop + 1, program.count)
                }
            }
        }
    }
}

extension TextPattern.ScalarSet {
    fileprivate init(named: [(TextPattern.NamedClass, negated: Bool)]) {
        self.init()
        self.named = named
    }
}
