import Foundation

/// BERT's tokenizer as HF `tokenizers` runs it from a `tokenizer.json` with a `WordPiece` model:
///
///     text ──split on added tokens ([CLS], [MASK], …: matched whole in the raw text, longest first)
///          ──BertNormalizer:  clean text (drop NUL, U+FFFD and control/format/private-use chars; whitespace → ' ')
///                             → spaces around CJK ideographs → strip accents (NFD, drop Mn marks; defaults to
///                             `lowercase`) → lowercase (per scalar, full Unicode mapping)
///          ──BertPreTokenizer: split on whitespace (removed) and on punctuation (ASCII punctuation or Unicode P*,
///                             each mark its own word)
///          ──WordPiece:       greedy longest match from the left; pieces after the first carry `##`; a word
///                             with no full cover, or longer than `max_input_chars_per_word`, becomes [UNK]
///          ──post-processor:  TemplateProcessing (`single` template) or BertProcessing: [CLS] … [SEP]
///
/// Everything works on Unicode scalars (Rust `char`s) and compares strings by their UTF-8 bytes, as Rust does:
/// Swift's `String ==` would identify canonically equivalent spellings that HF keeps apart.
/// `tokenizer.json`'s `truncation` / `padding` settings are not applied (HF transformers does not apply them
/// either unless asked); callers truncate (see ``SentenceEmbedder``).
public final class WordPieceTokenizer: Sendable {
    /// HF `BertNormalizer` options.
    public struct Normalizer: Sendable, Equatable {
        public var cleanText = true
        public var handleChineseChars = true
        /// nil: follow `lowercase` (HF's default).
        public var stripAccents: Bool? = nil
        public var lowercase = true
        public init() {}
    }

    /// Token strings by id.
    public let tokens: [String]
    public let normalizer: Normalizer?
    public let unknownTokenId: Int
    public let continuingSubwordPrefix: String
    public let maxInputCharsPerWord: Int
    /// Ids the post-processor puts before and after a single sequence (e.g. [CLS] and [SEP]).
    public let prefixIds: [Int]
    public let suffixIds: [Int]
    /// Added tokens (matched whole in the raw text) and which ids are special.
    public let addedTokens: [String: Int]
    public let specialTokenIds: Set<Int>

    private let vocabulary: [[UInt8]: Int]
    private let addedByFirstScalar: [Unicode.Scalar: [([Unicode.Scalar], Int)]]

    public var vocabularySize: Int { tokens.count }

    /// A tokenizer from its parts (``init(tokenizerJSON:)`` reads them from a file).
    public init(tokens: [String], unknownToken: String = "[UNK]", continuingSubwordPrefix: String = "##",
                maxInputCharsPerWord: Int = 100, normalizer: Normalizer? = Normalizer(), prefixIds: [Int] = [],
                suffixIds: [Int] = [], addedTokens: [String: Int] = [:], specialTokenIds: Set<Int> = []) throws {
        var vocab = [[UInt8]: Int](minimumCapacity: tokens.count)
        for (i, t) in tokens.enumerated() { vocab[Array(t.utf8)] = i }
        guard let unk = vocab[Array(unknownToken.utf8)] else {
            throw TokenizerError.invalidFormat("unk_token \(unknownToken) is not in the vocabulary")
        }
        for id in prefixIds + suffixIds + Array(addedTokens.values) where id < 0 || id >= tokens.count {
            throw TokenizerError.invalidFormat("special token id \(id) is outside the vocabulary (\(tokens.count))")
        }
        guard maxInputCharsPerWord > 0 else { throw TokenizerError.invalidFormat("max_input_chars_per_word must be positive") }
        (self.tokens, self.vocabulary, self.unknownTokenId) = (tokens, vocab, unk)
        (self.continuingSubwordPrefix, self.maxInputCharsPerWord, self.normalizer) = (continuingSubwordPrefix, maxInputCharsPerWord, normalizer)
        (self.prefixIds, self.suffixIds, self.addedTokens, self.specialTokenIds) = (prefixIds, suffixIds, addedTokens, specialTokenIds)
        var byFirst = [Unicode.Scalar: [([Unicode.Scalar], Int)]]()
        for (text, id) in addedTokens {
            let s = Array(text.unicodeScalars)
            guard let first = s.first else { continue }
            byFirst[first, default: []].append((s, id))
        }
        addedByFirstScalar = byFirst.mapValues { $0.sorted { $0.0.count > $1.0.count } }  // longest first
    }

    /// The id of `token`, if it is in the vocabulary.
    public func id(for token: String) -> Int? { vocabulary[Array(token.utf8)] }

    /// The string of `id`.
    public func token(for id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    /// Token ids of `text`, with the post-processor's special tokens around them when `addSpecialTokens`.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        let scalars = Array(text.unicodeScalars)
        var segmentStart = 0, i = 0
        while i < scalars.count {
            if let candidates = addedByFirstScalar[scalars[i]],
               let (match, id) = candidates.first(where: { c in
                   i + c.0.count <= scalars.count && scalars[i..<(i + c.0.count)].elementsEqual(c.0)
               }) {
                ids += encodeSegment(scalars[segmentStart..<i])
                ids.append(id)
                i += match.count
                segmentStart = i
            } else {
                i += 1
            }
        }
        ids += encodeSegment(scalars[segmentStart..<scalars.count])
        return addSpecialTokens ? addingSpecialTokens(ids) : ids
    }

    /// `ids` wrapped by the post-processor's special tokens (`[CLS] ids [SEP]` for BERT).
    public func addingSpecialTokens(_ ids: [Int]) -> [Int] { prefixIds + ids + suffixIds }

    /// WordPiece strings of `text` (no special tokens), e.g. `["un", "##aff", "##able"]`.
    public func tokenize(_ text: String) -> [String] { encode(text, addSpecialTokens: false).map { tokens[$0] } }

    /// Text of `ids` as HF's `WordPiece` decoder writes it: tokens joined by spaces, `##` pieces glued to their
    /// word, then the usual clean-up of spaces before punctuation and contractions.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var out = ""
        for (k, id) in ids.enumerated() {
            guard let t = token(for: id), !(skipSpecialTokens && specialTokenIds.contains(id)) else { continue }
            if t.hasPrefix(continuingSubwordPrefix) {
                out += t.dropFirst(continuingSubwordPrefix.count)
            } else {
                if k > 0 && !out.isEmpty { out += " " }
                out += t
            }
        }
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                       (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            out = out.replacingOccurrences(of: a, with: b)
        }
        return out
    }

    // MARK: Pipeline

    func encodeSegment(_ raw: ArraySlice<Unicode.Scalar>) -> [Int] {
        guard !raw.isEmpty else { return [] }
        let text = normalizer.map { Self.normalize(raw, $0) } ?? Array(raw)
        var ids: [Int] = []
        for word in Self.preTokenize(text) { wordPiece(word, into: &ids) }
        return ids
    }

    /// HF `BertNormalizer.normalize`.
    static func normalize(_ input: ArraySlice<Unicode.Scalar>, _ n: Normalizer) -> [Unicode.Scalar] {
        var s = Array(input)
        if n.cleanText {
            s = s.compactMap { c in
                if c.value == 0 || c.value == 0xFFFD || isControl(c) { return nil }
                return isWhitespace(c) ? " " : c
            }
        }
        if n.handleChineseChars {
            var out: [Unicode.Scalar] = []
            out.reserveCapacity(s.count)
            for c in s {
                if isChineseChar(c) { out += [" ", c, " "] } else { out.append(c) }
            }
            s = out
        }
        if n.stripAccents ?? n.lowercase {
            var str = String.UnicodeScalarView()
            str.append(contentsOf: s)
            let nfd = String(str).decomposedStringWithCanonicalMapping
            s = nfd.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if n.lowercase {
            s = s.flatMap { c in c.properties.lowercaseMapping.unicodeScalars }
        }
        return s
    }

    /// HF `BertPreTokenizer`: whitespace separates words and is dropped; each punctuation mark is a word.
    static func preTokenize(_ s: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var words: [ArraySlice<Unicode.Scalar>] = []
        var start = 0
        for (i, c) in s.enumerated() {
            if c.properties.isWhitespace || isPunctuation(c) {
                if start < i { words.append(s[start..<i]) }
                if !c.properties.isWhitespace { words.append(s[i...i]) }
                start = i + 1
            }
        }
        if start < s.count { words.append(s[start..<s.count]) }
        return words
    }

    /// Greedy longest-match-first WordPiece of one word.
    func wordPiece(_ word: ArraySlice<Unicode.Scalar>, into ids: inout [Int]) {
        guard word.count <= maxInputCharsPerWord else { ids.append(unknownTokenId); return }
        // The word's UTF-8 bytes, and where each scalar starts in them.
        var bytes: [UInt8] = [], offsets: [Int] = []
        for c in word {
            offsets.append(bytes.count)
            bytes += Array(String(c).utf8)
        }
        offsets.append(bytes.count)
        let count = word.count
        let prefix = Array(continuingSubwordPrefix.utf8)
        var pieces: [Int] = []
        var start = 0
        while start < count {
            var end = count
            var found: Int?
            while start < end {
                let key = (start > 0 ? prefix : []) + bytes[offsets[start]..<offsets[end]]
                if let id = vocabulary[key] { found = id; break }
                end -= 1
            }
            guard let id = found else { ids.append(unknownTokenId); return }
            pieces.append(id)
            start = end
        }
        ids += pieces
    }

    // MARK: Character classes (as HF tokenizers defines them)

    /// `\t \n \r` or the Unicode White_Space property.
    static func isWhitespace(_ c: Unicode.Scalar) -> Bool { c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace }

    /// General categories Cc, Cf, Cs, Co except `\t \n \r` (Rust `unicode_categories` `is_other`; unassigned
    /// code points (Cn) are kept, as HF keeps them — checked against HF's tokenizer).
    static func isControl(_ c: Unicode.Scalar) -> Bool {
        if c == "\t" || c == "\n" || c == "\r" { return false }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse: return true
        default: return false
        }
    }

    /// ASCII punctuation (including `$ + < = > ^ ` | ~`) or Unicode P* categories.
    static func isPunctuation(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch c.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// The CJK Unified Ideograph blocks BERT isolates.
    static func isChineseChar(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }
}

extension WordPieceTokenizer {
    /// Reads an HF `tokenizer.json` whose `model.type` is `WordPiece`: `model.vocab`, `unk_token`,
    /// `continuing_subword_prefix`, `max_input_chars_per_word`; `normalizer` BertNormalizer (or none);
    /// `pre_tokenizer` BertPreTokenizer; `post_processor` TemplateProcessing (its `single` template) or
    /// BertProcessing (or none); `added_tokens`.
    public convenience init(tokenizerJSON url: URL) throws {
        try self.init(tokenizerJSONData: try Data(contentsOf: url))
    }

    /// Like ``init(tokenizerJSON:)``, from the file's contents.
    public convenience init(tokenizerJSONData data: Data) throws {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TokenizerError.invalidFormat("not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError.invalidFormat("no model") }
        guard model["type"] as? String == "WordPiece" else {
            throw TokenizerError.unsupported("model type \(model["type"] ?? "?") (expected WordPiece)")
        }
        guard let vocab = model["vocab"] as? [String: Any] else { throw TokenizerError.invalidFormat("no vocab") }
        var byId = [Int: String](minimumCapacity: vocab.count)
        for (token, value) in vocab {
            guard let id = (value as? NSNumber)?.intValue, id >= 0, id < 10_000_000 else {
                throw TokenizerError.invalidFormat("vocab entry \(token)")
            }
            byId[id] = token
        }
        var added = [String: Int](), special = Set<Int>()
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, id < 10_000_000,
                  let content = entry["content"] as? String else {
                throw TokenizerError.invalidFormat("added token \(entry)")
            }
            byId[id] = byId[id] ?? content
            added[content] = id
            if entry["special"] as? Bool ?? false { special.insert(id) }
        }
        let size = (byId.keys.max() ?? -1) + 1
        guard byId.count == size else { throw TokenizerError.invalidFormat("vocabulary ids are not 0..<\(size)") }
        let tokens = (0..<size).map { byId[$0]! }

        var normalizer: Normalizer?
        if let n = root["normalizer"] as? [String: Any] {
            guard n["type"] as? String == "BertNormalizer" else {
                throw TokenizerError.unsupported("normalizer \(n["type"] ?? "?") (WordPiece: BertNormalizer only)")
            }
            var bn = Normalizer()
            bn.cleanText = n["clean_text"] as? Bool ?? true
            bn.handleChineseChars = n["handle_chinese_chars"] as? Bool ?? true
            bn.stripAccents = n["strip_accents"] as? Bool
            bn.lowercase = n["lowercase"] as? Bool ?? true
            normalizer = bn
        }
        if let p = root["pre_tokenizer"] as? [String: Any], p["type"] as? String != "BertPreTokenizer" {
            throw TokenizerError.unsupported("pre_tokenizer \(p["type"] ?? "?") (WordPiece: BertPreTokenizer only)")
        }

        func idOf(_ name: String) throws -> Int {
            guard let id = added[name] ?? (vocab[name] as? NSNumber)?.intValue else {
                throw TokenizerError.invalidFormat("post-processor token \(name) is not in the vocabulary")
            }
            return id
        }
        var prefix: [Int] = [], suffix: [Int] = []
        if let post = root["post_processor"] as? [String: Any] {
            switch post["type"] as? String {
            case "TemplateProcessing":
                guard let single = post["single"] as? [[String: Any]] else {
                    throw TokenizerError.invalidFormat("TemplateProcessing without a single template")
                }
                let specials = post["special_tokens"] as? [String: Any] ?? [:]
                var seenSequence = false
                for piece in single {
                    if piece["Sequence"] != nil {
                        guard !seenSequence else { throw TokenizerError.unsupported("template with two sequences") }
                        seenSequence = true
                    } else if let sp = piece["SpecialToken"] as? [String: Any], let name = sp["id"] as? String {
                        let ids = ((specials[name] as? [String: Any])?["ids"] as? [Any])?.compactMap { ($0 as? NSNumber)?.intValue }
                        let resolved = try ids ?? [idOf(name)]
                        if seenSequence { suffix += resolved } else { prefix += resolved }
                    } else {
                        throw TokenizerError.invalidFormat("template piece \(piece)")
                    }
                }
            case "BertProcessing":
                guard let cls = post["cls"] as? [Any], cls.count == 2, let clsId = (cls[1] as? NSNumber)?.intValue,
                      let sep = post["sep"] as? [Any], sep.count == 2, let sepId = (sep[1] as? NSNumber)?.intValue else {
                    throw TokenizerError.invalidFormat("BertProcessing needs cls and sep as [token, id]")
                }
                (prefix, suffix) = ([clsId], [sepId])
            case let other:
                throw TokenizerError.unsupported("post_processor \(other ?? "?") (WordPiece: TemplateProcessing, BertProcessing)")
            }
        }
        try self.init(tokens: tokens, unknownToken: model["unk_token"] as? String ?? "[UNK]",
                      continuingSubwordPrefix: model["continuing_subword_prefix"] as? String ?? "##",
                      maxInputCharsPerWord: (model["max_input_chars_per_word"] as? NSNumber)?.intValue ?? 100,
                      normalizer: normalizer, prefixIds: prefix, suffixIds: suffix, addedTokens: added,
                      specialTokenIds: special)
    }
}
