/// How text is cut into pieces ("pre-tokens") before byte-level BPE runs on each piece.
///
/// Every case reproduces one regular expression of HF `tokenizers` (Oniguruma) / llama.cpp exactly, with a
/// hand-written scanner over Unicode scalars (`\p{L}`: general category L*, `\p{N}`: N*, `\s`: the Unicode
/// `White_Space` property). Pieces are consecutive and cover the whole text; no characters are dropped.
///
/// | case      | pattern |
/// |-----------|---------|
/// | `.gpt2`   | `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` |
/// | `.smollm` | every `\p{N}` character is a piece of its own, then `.gpt2` on the stretches between them |
/// | `.llama3` | `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` |
/// | `.qwen2`  | `.llama3` with `\p{N}` instead of `\p{N}{1,3}` |
///
/// `.smollm` is what SmolLM / SmolLM2 / StarCoder use: HF `Sequence[Digits(individual_digits: true),
/// ByteLevel(use_regex: true)]`, llama.cpp `LLAMA_VOCAB_PRE_TYPE_SMOLLM` (regexes `\p{N}`, then GPT-2's).
public enum PreTokenizer: String, Sendable, Hashable, CaseIterable {
    /// GPT-2's pattern (HF `ByteLevel(use_regex: true)`).
    case gpt2
    /// Individual digits, then GPT-2's pattern (SmolLM, SmolLM2, StarCoder, Refact, Command-R, CodeShell, EXAONE).
    case smollm
    /// The Llama-3 pattern (numbers in runs of at most three digits, case-insensitive contractions).
    case llama3
    /// The Qwen2 pattern: `.llama3` with single digits.
    case qwen2

    /// Maps a GGUF `tokenizer.ggml.pre` name (llama.cpp's names) to a pre-tokenizer; `nil` for names not covered.
    public init?(ggmlName: String) {
        switch ggmlName.lowercased() {
        case "gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais":
            self = .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b":
            self = .smollm
        case "llama3", "llama-v3", "llama-bpe", "falcon3":
            self = .llama3
        case "qwen2", "deepseek-r1-qwen", "megrez":
            self = .qwen2
        default:
            return nil
        }
    }

    /// The pieces of `text`, in order; their concatenation is `text`.
    public func split(_ text: String) -> [String] {
        let bytes = Array(text.utf8)
        var out: [String] = []
        bytes.withUnsafeBufferPointer { buf in
            let scalars = ScalarBuffer(utf8: buf, range: 0..<buf.count)
            forEachPiece(scalars) { lo, hi in
                out.append(String(decoding: buf[lo..<hi], as: UTF8.self))
            }
        }
        return out
    }

    /// Calls `body(byteStart, byteEnd)` for every piece of the scanned text (byte offsets into the UTF-8 buffer).
    func forEachPiece(_ s: ScalarBuffer, _ body: (Int, Int) -> Void) {
        let n = s.count
        guard n > 0 else { return }
        switch self {
        case .gpt2:
            Self.scanGPT2(s, 0, n) { body(s.offsets[$0], s.offsets[$1]) }
        case .smollm:
            var start = 0
            for i in 0..<n where s.classes[i] & CharClass.number != 0 {
                if start < i { Self.scanGPT2(s, start, i) { body(s.offsets[$0], s.offsets[$1]) } }
                body(s.offsets[i], s.offsets[i + 1])
                start = i + 1
            }
            if start < n { Self.scanGPT2(s, start, n) { body(s.offsets[$0], s.offsets[$1]) } }
        case .llama3:
            Self.scanLlama3(s, 0, n, maxDigits: 3) { body(s.offsets[$0], s.offsets[$1]) }
        case .qwen2:
            Self.scanLlama3(s, 0, n, maxDigits: 1) { body(s.offsets[$0], s.offsets[$1]) }
        }
    }

    // MARK: Scanners (scalar indices; `end` is the end of the text the regex sees)

    /// Length (2 or 3) of a contraction `'s|'t|'re|'ve|'m|'ll|'d` at `i`, or 0. `caseInsensitive` follows
    /// Oniguruma's `(?i)` case folding (ASCII case, and U+017F LONG S folds to `s`).
    @inline(__always)
    private static func contraction(_ s: ScalarBuffer, _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int {
        guard s.values[i] == 0x27, i + 1 < end else { return 0 }
        func ch(_ k: Int) -> UInt32 {
            let v = s.values[k]
            guard caseInsensitive else { return v }
            if v >= 0x41 && v <= 0x5A { return v + 0x20 }
            if v == 0x17F { return 0x73 }
            return v
        }
        let c1 = ch(i + 1)
        switch c1 {
        case 0x73, 0x74, 0x6D, 0x64: return 2  // s t m d
        case 0x72, 0x76:  // r v -> "re" "ve"
            return i + 2 < end && ch(i + 2) == 0x65 ? 3 : 0
        case 0x6C:  // l -> "ll"
            return i + 2 < end && ch(i + 2) == 0x6C ? 3 : 0
        default: return 0
        }
    }

    @inline(__always)
    private static func runEnd(_ s: ScalarBuffer, from i: Int, _ end: Int, mask: UInt8) -> Int {
        var j = i
        while j < end && s.classes[j] & mask != 0 { j += 1 }
        return j
    }

    /// Other: neither whitespace, letter nor number (`[^\s\p{L}\p{N}]`).
    @inline(__always)
    private static func otherRunEnd(_ s: ScalarBuffer, from i: Int, _ end: Int) -> Int {
        var j = i
        while j < end && s.classes[j] == 0 { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar `i`.
    @inline(__always)
    private static func whitespacePiece(_ s: ScalarBuffer, _ i: Int, _ end: Int) -> Int {
        let j = runEnd(s, from: i, end, mask: CharClass.space)
        if j == end { return j }  // the run reaches the end: `(?!\S)` holds there
        return j - i >= 2 ? j - 1 : j  // leave the last whitespace for the next piece (` ?\p{L}+` etc.)
    }

    static func scanGPT2(_ s: ScalarBuffer, _ start: Int, _ end: Int, _ emit: (Int, Int) -> Void) {
        var i = start
        while i < end {
            var j: Int
            let c = s.classes[i]
            let k = contraction(s, i, end, caseInsensitive: false)
            if k > 0 {
                j = i + k
            } else if s.values[i] == 0x20 && i + 1 < end && s.classes[i + 1] & CharClass.space == 0 {
                // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+` with the optional space
                let c1 = s.classes[i + 1]
                if c1 & CharClass.letter != 0 {
                    j = runEnd(s, from: i + 1, end, mask: CharClass.letter)
                } else if c1 & CharClass.number != 0 {
                    j = runEnd(s, from: i + 1, end, mask: CharClass.number)
                } else {
                    j = otherRunEnd(s, from: i + 1, end)
                }
            } else if c & CharClass.letter != 0 {
                j = runEnd(s, from: i, end, mask: CharClass.letter)
            } else if c & CharClass.number != 0 {
                j = runEnd(s, from: i, end, mask: CharClass.number)
            } else if c == 0 {
                j = otherRunEnd(s, from: i, end)
            } else {
                j = whitespacePiece(s, i, end)
            }
            emit(i, j)
            i = j
        }
    }

    static func scanLlama3(_ s: ScalarBuffer, _ start: Int, _ end: Int, maxDigits: Int,
                           _ emit: (Int, Int) -> Void) {
        var i = start
        while i < end {
            var j: Int
            let c = s.classes[i]
            let k = contraction(s, i, end, caseInsensitive: true)
            if k > 0 {
                j = i + k
            } else if c & CharClass.letter != 0 {
                // [^\r\n\p{L}\p{N}]?\p{L}+ without the optional character
                j = runEnd(s, from: i, end, mask: CharClass.letter)
            } else if c & (CharClass.newline | CharClass.number) == 0 && i + 1 < end
                        && s.classes[i + 1] & CharClass.letter != 0 {
                // ... with one leading character that is not CR, LF, a letter or a number
                j = runEnd(s, from: i + 1, end, mask: CharClass.letter)
            } else if c & CharClass.number != 0 {
                // \p{N}{1,maxDigits}
                j = i + 1
                while j < end && j - i < maxDigits && s.classes[j] & CharClass.number != 0 { j += 1 }
            } else if c == 0 || (s.values[i] == 0x20 && i + 1 < end && s.classes[i + 1] == 0) {
                // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
                j = otherRunEnd(s, from: c == 0 ? i : i + 1, end)
                while j < end && s.classes[j] & CharClass.newline != 0 { j += 1 }
            } else {
                // whitespace: `\s*[\r\n]+` (up to the run's last CR/LF), else `\s+(?!\S)|\s+`
                let runEnd = runEnd(s, from: i, end, mask: CharClass.space)
                var lastNewline = -1
                var p = runEnd - 1
                while p >= i {
                    if s.classes[p] & CharClass.newline != 0 { lastNewline = p; break }
                    p -= 1
                }
                j = lastNewline >= 0 ? lastNewline + 1 : whitespacePiece(s, i, end)
            }
            emit(i, j)
            i = j
        }
    }
}

/// Character classes of the pre-tokenizer patterns, as bits. 0 means "other" (`[^\s\p{L}\p{N}]`).
enum CharClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    /// CR or LF (also has `space`).
    static let newline: UInt8 = 8

    static let ascii: [UInt8] = (0..<128).map { v in classify(Unicode.Scalar(UInt8(v))) }

    @inline(__always)
    static func of(_ v: UInt32) -> UInt8 {
        if v < 128 { return ascii[Int(v)] }
        return classify(Unicode.Scalar(v) ?? "\u{FFFD}")
    }

    static func classify(_ u: Unicode.Scalar) -> UInt8 {
        if u == "\r" || u == "\n" { return space | newline }
        let p = u.properties
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return p.isWhitespace ? space : 0
        }
    }
}

/// The Unicode scalars of a UTF-8 byte range: values, classes and byte offsets (`offsets[count]` is the end).
struct ScalarBuffer {
    var values: [UInt32] = []
    var classes: [UInt8] = []
    var offsets: [Int] = []
    var count: Int { values.count }

    /// Decodes valid UTF-8 (Swift strings always are) from `utf8[range]`.
    init(utf8: UnsafeBufferPointer<UInt8>, range: Range<Int>) {
        values.reserveCapacity(range.count)
        classes.reserveCapacity(range.count)
        offsets.reserveCapacity(range.count + 1)
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let b0 = utf8[i]
            var v: UInt32
            var len: Int
            if b0 < 0x80 {
                v = UInt32(b0); len = 1
            } else if b0 < 0xE0 {
                v = UInt32(b0 & 0x1F); len = 2
            } else if b0 < 0xF0 {
                v = UInt32(b0 & 0x0F); len = 3
            } else {
                v = UInt32(b0 & 0x07); len = 4
            }
            if len > 1 {
                len = min(len, end - i)
                for k in 1..<max(len, 1) { v = (v << 6) | UInt32(utf8[i + k] & 0x3F) }
            }
            offsets.append(i)
            values.append(v)
            classes.append(CharClass.of(v))
            i += len
        }
        offsets.append(end)
    }
}
