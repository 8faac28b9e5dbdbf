import Foundation

/// A SentencePiece-style tokenizer: words are marked with `▁` (U+2581) instead of a byte-level alphabet, pieces
/// are Unicode strings, and characters missing from the vocabulary fall back to byte tokens `<0xNN>`.
///
/// Three models, as the files describe them:
/// - ``Model/bpeMerges``: tokenizer.json `BPE` with `byte_fallback` (Llama, Mistral, Gemma): HF's BPE — initial
///   symbols are characters (a character not in the vocabulary becomes its UTF-8 byte tokens, or `unk`), then the
///   merge with the lowest rank is applied first.
/// - ``Model/bpeScores``: GGUF `tokenizer.ggml.model = "llama"` (tokens, scores, token types): llama.cpp's and
///   SentencePiece's BPE — the adjacent pair whose concatenation is a vocabulary piece with the highest score is
///   merged first (leftmost on ties); a final symbol that is not a piece is split back along its merges, then into
///   byte tokens.
/// - ``Model/unigram``: tokenizer.json `Unigram` (T5, ALBERT-style): Viterbi over piece scores (see
///   `Unigram.swift`).
///
/// Pipeline for tokenizer.json: added tokens are matched in the raw text (leftmost, longest), the text between them
/// goes through the ``Normalizer``, then the pre-tokenizer (`Metaspace`: spaces → `▁`, `▁` prepended per
/// `prepend_scheme`, optional split before each `▁`; `WhitespaceSplit`), then the model. For GGUF: control and
/// user-defined tokens are matched in the raw text; each text fragment gets a leading space (`add_space_prefix`) if
/// it is the first or follows a special token, spaces become `▁`, and the model runs on the whole fragment.
///
/// Decoding maps `▁` to a space and byte tokens to their byte, concatenates, drops the leading space the encoder
/// added (``leadingSpacesStripped``) and decodes UTF-8 (invalid sequences → U+FFFD).
public final class SentencePieceTokenizer: TextTokenizer {
    /// The segmentation algorithm.
    public enum Model: Sendable, Equatable {
        /// HF BPE with merge ranks (tokenizer.json).
        case bpeMerges
        /// SentencePiece / llama.cpp BPE by piece scores (GGUF).
        case bpeScores
        /// Unigram language model, best segmentation by Viterbi.
        case unigram
    }

    /// How HF's `Metaspace` pre-tokenizer prepends `▁`.
    public enum PrependScheme: String, Sendable {
        /// To every piece that does not start with `▁`.
        case always
        /// Only to the text at the very start of the input.
        case first
        /// Never.
        case never
    }

    /// One pre-tokenization step.
    public enum PreTokenizerStep: Sendable, Equatable {
        /// Split on whitespace, dropping it.
        case whitespaceSplit
        /// Spaces → `replacement`; prepend it per `prependScheme`; with `split`, cut before each `replacement`.
        case metaspace(replacement: Character, prependScheme: PrependScheme, split: Bool)
    }

    /// The segmentation algorithm.
    public let model: Model
    /// Number of token ids (pieces plus added tokens).
    public let vocabularySize: Int
    /// Beginning-of-sequence id, if any.
    public let bosTokenId: Int?
    /// End-of-sequence id, if any.
    public let eosTokenId: Int?
    /// The unknown-piece id, if any.
    public let unkTokenId: Int?
    /// Ids `encode(_, addSpecialTokens: true)` puts before / after the text (post-processor: BOS, T5's EOS).
    public let prefixIds: [Int]
    /// See ``prefixIds``.
    public let suffixIds: [Int]
    /// Applied to the text between added tokens (tokenizer.json only).
    public let normalizer: Normalizer?
    /// Applied after the normalizer, in order (tokenizer.json only).
    public let preTokenizer: [PreTokenizerStep]
    /// Leading spaces the decoder drops (1 for Llama-style `Strip` / `Metaspace` decoders and GGUF's
    /// `add_space_prefix`).
    public let leadingSpacesStripped: Int
    /// GGUF mode: prepend a space to the first text fragment and after special tokens.
    public let addSpacePrefix: Bool
    /// Ids of special (control) tokens.
    public let specialTokenIds: Set<Int>

    let pieces: [String]
    let pieceToId: [String: Int]
    let scores: [Float]
    let byteFallback: Bool
    let fuseUnk: Bool
    /// Id of `<0xNN>` for each byte, -1 if absent.
    let byteTokenId: [Int]
    /// For ``Model/bpeMerges``: (left << 32 | right) -> (rank << 32 | merged).
    let merges: [UInt64: UInt64]
    /// For ``Model/bpeScores``: merged id -> (left id, right id), to split back non-pieces.
    let reverseMerges: [String: (String, String)]
    let isSpecial: [Bool]
    let tokenBytes: [[UInt8]]
    let addedByFirstByte: [[(bytes: [UInt8], id: Int)]]
    /// Added tokens that swallow the whitespace on their left / right (HF `AddedToken(lstrip:, rstrip:)`).
    let lstripIds: Set<Int>
    let rstripIds: Set<Int>
    /// For ``Model/unigram``: piece UTF-8 -> id, the longest piece in bytes, the lowest score.
    let unigramPieces: [[UInt8]: Int]
    let maxPieceBytes: Int
    let minScore: Float
    /// Whether a normal piece may be matched (false for control / unused pieces, which never come from text).
    let matchable: [Bool]

    init(model: Model, pieces: [String], scores: [Float], merges: [(String, String)], special: [Bool],
         added: [Int], matchable: [Bool], unk: Int?, bos: Int?, eos: Int?, prefixIds: [Int], suffixIds: [Int],
         normalizer: Normalizer?, preTokenizer: [PreTokenizerStep], byteFallback: Bool, fuseUnk: Bool,
         decodeBytes: Bool, replaceMetaspace: Bool, leadingSpacesStripped: Int, addSpacePrefix: Bool,
         lstripIds: Set<Int> = [], rstripIds: Set<Int> = []) {
        self.lstripIds = lstripIds
        self.rstripIds = rstripIds
        self.model = model
        self.pieces = pieces
        self.vocabularySize = pieces.count
        self.scores = scores
        self.unkTokenId = unk
        self.bosTokenId = bos
        self.eosTokenId = eos
        self.prefixIds = prefixIds
        self.suffixIds = suffixIds
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.byteFallback = byteFallback
        self.fuseUnk = fuseUnk
        self.leadingSpacesStripped = leadingSpacesStripped
        self.addSpacePrefix = addSpacePrefix
        self.isSpecial = special
        self.specialTokenIds = Set(pieces.indices.filter { special[$0] })
        self.matchable = matchable

        var p2i = [String: Int](minimumCapacity: pieces.count)
        for (i, p) in pieces.enumerated() where p2i[p] == nil { p2i[p] = i }
        self.pieceToId = p2i

        var bytesIds = [Int](repeating: -1, count: 256)
        for b in 0..<256 { if let id = p2i[String(format: "<0x%02X>", b)] { bytesIds[b] = id } }
        self.byteTokenId = bytesIds

        var m = [UInt64: UInt64](minimumCapacity: merges.count)
        var rev = [String: (String, String)]()
        for (rank, (a, b)) in merges.enumerated() {
            guard let l = p2i[a], let r = p2i[b], let id = p2i[a + b] else { continue }
            let key = UInt64(l) << 32 | UInt64(r)
            if m[key] == nil { m[key] = UInt64(rank) << 32 | UInt64(id) }
            if rev[a + b] == nil { rev[a + b] = (a, b) }
        }
        self.merges = m
        self.reverseMerges = rev

        let addedSet = Set(added)
        var buckets = [[(bytes: [UInt8], id: Int)]](repeating: [], count: 256)
        for id in added where !pieces[id].isEmpty {
            let b = Array(pieces[id].utf8)
            buckets[Int(b[0])].append((b, id))
        }
        for i in 0..<256 { buckets[i].sort { $0.bytes.count > $1.bytes.count } }
        self.addedByFirstByte = buckets

        var tb = [[UInt8]]()
        tb.reserveCapacity(pieces.count)
        for (id, p) in pieces.enumerated() {
            if addedSet.contains(id) || special[id] {
                tb.append(Array(p.utf8))
            } else if decodeBytes, p.count == 6, p.hasPrefix("<0x"), p.hasSuffix(">"),
                      let v = UInt8(p.dropFirst(3).dropLast(), radix: 16) {
                tb.append([v])
            } else if replaceMetaspace {
                tb.append(Array(p.replacingOccurrences(of: "\u{2581}", with: " ").utf8))
            } else {
                tb.append(Array(p.utf8))
            }
        }
        self.tokenBytes = tb

        var up = [[UInt8]: Int]()
        var maxLen = 0
        var minS = Float.infinity
        if model == .unigram {
            for (i, p) in pieces.enumerated() where matchable[i] && !p.isEmpty {
                let b = Array(p.utf8)
                if up[b] == nil { up[b] = i }
                maxLen = max(maxLen, b.count)
            }
            for s in scores { minS = min(minS, s) }
        }
        self.unigramPieces = up
        self.maxPieceBytes = maxLen
        self.minScore = minS.isFinite ? minS : 0
    }

    // MARK: Loading

    /// Ids at or above this are rejected as corrupt (the largest real vocabularies are a few hundred thousand).
    static let maxVocabularySize = 1 << 24

    /// Reads an HF `tokenizer.json` whose model is `BPE` with SentencePiece conventions (byte fallback or `▁`
    /// word boundaries) or `Unigram`. `tokenizerConfigData` (tokenizer_config.json) may override whether BOS/EOS are
    /// added (`add_bos_token`, `add_eos_token`).
    public convenience init(tokenizerJSONData data: Data, tokenizerConfigData: Data? = nil) throws {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TokenizerError.invalidFormat("not a JSON object")
        }
        guard let m = root["model"] as? [String: Any], let type = m["type"] as? String else {
            throw TokenizerError.invalidFormat("no model")
        }
        var pieces: [String] = []
        var scores: [Float] = []
        var merges: [(String, String)] = []
        var unk: Int?
        let model: Model
        switch type {
        case "BPE":
            model = .bpeMerges
            guard let vocab = m["vocab"] as? [String: Any] else { throw TokenizerError.invalidFormat("no vocab") }
            var byId = [Int: String]()
            for (t, v) in vocab {
                guard let id = (v as? NSNumber)?.intValue, id >= 0, id < Self.maxVocabularySize else {
                    throw TokenizerError.invalidFormat("vocab entry \(t)")
                }
                byId[id] = t
            }
            pieces = [String](repeating: "", count: (byId.keys.max() ?? -1) + 1)
            for (id, t) in byId { pieces[id] = t }
            scores = [Float](repeating: 0, count: pieces.count)
            for x in m["merges"] as? [Any] ?? [] {
                if let s = x as? String {
                    let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                    guard parts.count == 2 else { throw TokenizerError.invalidFormat("merge \(s)") }
                    merges.append((String(parts[0]), String(parts[1])))
                } else if let p = x as? [String], p.count == 2 {
                    merges.append((p[0], p[1]))
                } else {
                    throw TokenizerError.invalidFormat("merge \(x)")
                }
            }
            for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
                if let s = m[key] as? String, !s.isEmpty { throw TokenizerError.unsupported("\(key) \(s)") }
            }
            if let d = m["dropout"] as? NSNumber, d.doubleValue > 0 { throw TokenizerError.unsupported("BPE dropout") }
            if m["ignore_merges"] as? Bool == true { throw TokenizerError.unsupported("ignore_merges with byte fallback") }
            if let u = m["unk_token"] as? String { unk = byId.first { $0.value == u }?.key }
        case "Unigram":
            model = .unigram
            guard let vocab = m["vocab"] as? [[Any]] else { throw TokenizerError.invalidFormat("no Unigram vocab") }
            for entry in vocab {
                guard entry.count == 2, let p = entry[0] as? String, let s = (entry[1] as? NSNumber)?.floatValue else {
                    throw TokenizerError.invalidFormat("Unigram vocab entry \(entry)")
                }
                pieces.append(p)
                scores.append(s)
            }
            unk = (m["unk_id"] as? NSNumber)?.intValue
        default:
            throw TokenizerError.unsupported("model type \(type) (SentencePiece tokenizers are BPE or Unigram)")
        }
        let byteFallback = m["byte_fallback"] as? Bool ?? false
        let fuseUnk = type == "Unigram" ? true : (m["fuse_unk"] as? Bool ?? false)

        var special = [Bool](repeating: false, count: pieces.count)
        var added: [Int] = []
        var lstrip = Set<Int>(), rstrip = Set<Int>()
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = (entry["id"] as? NSNumber)?.intValue, id >= 0, id < Self.maxVocabularySize,
                  let content = entry["content"] as? String else {
                throw TokenizerError.invalidFormat("added token \(entry)")
            }
            if id >= pieces.count {
                pieces += [String](repeating: "", count: id + 1 - pieces.count)
                scores += [Float](repeating: 0, count: id + 1 - scores.count)
                special += [Bool](repeating: false, count: id + 1 - special.count)
            }
            pieces[id] = content
            special[id] = entry["special"] as? Bool ?? false
            added.append(id)
            if entry["lstrip"] as? Bool == true { lstrip.insert(id) }
            if entry["rstrip"] as? Bool == true { rstrip.insert(id) }
            if entry["single_word"] as? Bool == true { throw TokenizerError.unsupported("single_word added token \(content)") }
            if entry["normalized"] as? Bool == true && !(special[id]) && Self.normalizerChangesText(root["normalizer"]) {
                throw TokenizerError.unsupported("normalized added token \(content) behind a normalizer")
            }
        }
        let matchable = pieces.indices.map { !special[$0] }

        let normalizer = try Normalizer(tokenizerJSON: root["normalizer"])
        var steps: [PreTokenizerStep] = []
        if let pre = root["pre_tokenizer"] as? [String: Any] {
            let list = pre["type"] as? String == "Sequence" ? (pre["pretokenizers"] as? [[String: Any]] ?? []) : [pre]
            for p in list {
                switch p["type"] as? String {
                case "Metaspace":
                    let rep = (p["replacement"] as? String)?.first ?? "\u{2581}"
                    var scheme = PrependScheme(rawValue: p["prepend_scheme"] as? String ?? "") ?? .always
                    if p["prepend_scheme"] == nil, let add = p["add_prefix_space"] as? Bool { scheme = add ? .always : .never }
                    steps.append(.metaspace(replacement: rep, prependScheme: scheme, split: p["split"] as? Bool ?? true))
                case "WhitespaceSplit":
                    steps.append(.whitespaceSplit)
                default:
                    throw TokenizerError.unsupported("pre_tokenizer \(p["type"] ?? "?") in a SentencePiece tokenizer")
                }
            }
        } else if let pre = root["pre_tokenizer"], !(pre is NSNull) {
            throw TokenizerError.invalidFormat("pre_tokenizer \(pre)")
        }

        // Decoder: which byte tokens and ▁ are decoded, and how many leading spaces are stripped.
        var decodeBytes = false, replaceMetaspace = false, strip = 0
        if let dec = root["decoder"] as? [String: Any] {
            let list = dec["type"] as? String == "Sequence" ? (dec["decoders"] as? [[String: Any]] ?? []) : [dec]
            for d in list {
                switch d["type"] as? String {
                case "ByteFallback": decodeBytes = true
                case "Fuse": break
                case "Replace":
                    let pattern = (d["pattern"] as? [String: Any])?["String"] as? String
                    guard pattern == "\u{2581}", d["content"] as? String == " " else {
                        throw TokenizerError.unsupported("decoder Replace \(d)")
                    }
                    replaceMetaspace = true
                case "Strip":
                    guard d["content"] as? String == " ", (d["stop"] as? Int ?? 0) == 0 else {
                        throw TokenizerError.unsupported("decoder Strip \(d)")
                    }
                    strip = d["start"] as? Int ?? 0
                case "Metaspace":
                    replaceMetaspace = true
                    let scheme = d["prepend_scheme"] as? String ?? ((d["add_prefix_space"] as? Bool ?? true) ? "always" : "never")
                    strip = scheme == "never" ? 0 : 1
                default:
                    throw TokenizerError.unsupported("decoder \(d["type"] ?? "?") in a SentencePiece tokenizer")
                }
            }
        }

        // Post-processor: special tokens around the text.
        func idOf(_ v: Any?) -> Int? {
            let s = (v as? String) ?? ((v as? [String: Any])?["content"] as? String)
            return s.flatMap { s in pieces.firstIndex(of: s) }
        }
        var prefix: [Int] = [], suffix: [Int] = []
        if let post = root["post_processor"] as? [String: Any] {
            let processors = post["type"] as? String == "Sequence" ? (post["processors"] as? [[String: Any]] ?? []) : [post]
            for p in processors {
                guard p["type"] as? String == "TemplateProcessing" else {
                    throw TokenizerError.unsupported("post_processor \(p["type"] ?? "?")")
                }
                var seenSequence = false
                for item in p["single"] as? [[String: Any]] ?? [] {
                    if item["Sequence"] != nil { seenSequence = true; continue }
                    guard let sp = item["SpecialToken"] as? [String: Any], let name = sp["id"] as? String else { continue }
                    let ids = ((p["special_tokens"] as? [String: Any])?[name] as? [String: Any])?["ids"] as? [Any]
                    let resolved = ids?.compactMap { ($0 as? NSNumber)?.intValue } ?? idOf(name).map { [$0] } ?? []
                    if seenSequence { suffix += resolved } else { prefix += resolved }
                }
            }
        }
        var bos: Int? = prefix.first, eos: Int? = suffix.last
        if let cfgData = tokenizerConfigData,
           let cfg = try JSONSerialization.jsonObject(with: cfgData) as? [String: Any] {
            if let b = idOf(cfg["bos_token"]) { bos = b }
            if let e = idOf(cfg["eos_token"]) { eos = e }
            if let addBOS = cfg["add_bos_token"] as? Bool { prefix = addBOS ? bos.map { [$0] } ?? [] : [] }
            if let addEOS = cfg["add_eos_token"] as? Bool { suffix = addEOS ? eos.map { [$0] } ?? [] : [] }
        }
        if bos == nil { bos = pieces.firstIndex(of: "<s>") }
        if eos == nil { eos = pieces.firstIndex(of: "</s>") }

        self.init(model: model, pieces: pieces, scores: scores, merges: merges, special: special, added: added,
                  matchable: matchable, unk: unk, bos: bos, eos: eos, prefixIds: prefix, suffixIds: suffix,
                  normalizer: normalizer, preTokenizer: steps, byteFallback: byteFallback, fuseUnk: fuseUnk,
                  decodeBytes: decodeBytes, replaceMetaspace: replaceMetaspace, leadingSpacesStripped: strip,
                  addSpacePrefix: false, lstripIds: lstrip, rstripIds: rstrip)
    }

    /// Whether a tokenizer.json normalizer can change added-token text (then `normalized: true` added tokens would
    /// have to be matched after normalization, which is not implemented).
    static func normalizerChangesText(_ node: Any?) -> Bool {
        guard let o = node as? [String: Any] else { return false }
        return !o.isEmpty
    }

    /// Builds the tokenizer of a GGUF file with `tokenizer.ggml.model = "llama"` (SentencePiece BPE by scores).
    ///
    /// - Parameters:
    ///   - tokens: `tokenizer.ggml.tokens` (pieces with `▁`, byte tokens `<0xNN>`).
    ///   - scores: `tokenizer.ggml.scores`.
    ///   - tokenTypes: `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    ///     6 byte. Control and user-defined tokens are matched whole in the text; control tokens are special.
    ///   - bosTokenId, eosTokenId, unknownTokenId: the `tokenizer.ggml.*_token_id` values.
    ///   - addBOS, addEOS: `tokenizer.ggml.add_bos_token` (default true), `add_eos_token` (default false).
    ///   - addSpacePrefix: `tokenizer.ggml.add_space_prefix` (default true).
    public convenience init(ggufTokens tokens: [String], scores: [Float], tokenTypes: [Int]?, bosTokenId: Int?,
                            eosTokenId: Int?, unknownTokenId: Int?, addBOS: Bool = true, addEOS: Bool = false,
                            addSpacePrefix: Bool = true) throws {
        guard scores.count == tokens.count else {
            throw TokenizerError.invalidFormat("\(scores.count) scores for \(tokens.count) tokens")
        }
        let types = tokenTypes ?? [Int](repeating: 1, count: tokens.count)
        guard types.count == tokens.count else {
            throw TokenizerError.invalidFormat("\(types.count) token types for \(tokens.count) tokens")
        }
        for id in [bosTokenId, eosTokenId, unknownTokenId].compactMap({ $0 }) where id < 0 || id >= tokens.count {
            throw TokenizerError.invalidFormat("special token id \(id) out of range")
        }
        let special = types.map { $0 == 3 }
        let added = tokens.indices.filter { types[$0] == 3 || types[$0] == 4 }
        // Normal and user-defined pieces take part in merges; control, unknown, unused and byte tokens do not.
        let matchable = types.map { $0 == 1 || $0 == 4 }
        self.init(model: .bpeScores, pieces: tokens, scores: scores, merges: [], special: special, added: added,
                  matchable: matchable, unk: unknownTokenId, bos: bosTokenId, eos: eosTokenId,
                  prefixIds: addBOS ? bosTokenId.map { [$0] } ?? [] : [],
                  suffixIds: addEOS ? eosTokenId.map { [$0] } ?? [] : [],
                  normalizer: nil, preTokenizer: [], byteFallback: true, fuseUnk: false, decodeBytes: true,
                  replaceMetaspace: true, leadingSpacesStripped: addSpacePrefix ? 1 : 0, addSpacePrefix: addSpacePrefix)
    }

    // MARK: Vocabulary

    /// The id of a piece or added token.
    public func id(for token: String) -> Int? { lookup(token) }

    /// The id of a piece, compared byte for byte (Swift's `String` equality would also match other Unicode
    /// normalization forms, which HF and SentencePiece treat as different pieces).
    @inline(__always)
    func lookup(_ s: String) -> Int? {
        guard let id = pieceToId[s], pieces[id].utf8.elementsEqual(s.utf8) else { return nil }
        return id
    }
    /// The piece (with `▁`) or added token of an id.
    public func token(for id: Int) -> String? { id >= 0 && id < pieces.count ? pieces[id] : nil }
    /// The bytes an id decodes to: `▁` as a space, `<0xNN>` as byte NN.
    public func bytes(for id: Int) -> [UInt8]? { id >= 0 && id < tokenBytes.count ? tokenBytes[id] : nil }
    /// Whether `id` is a special (control) token.
    public func isSpecialToken(_ id: Int) -> Bool { id >= 0 && id < isSpecial.count && isSpecial[id] }
    /// The score of a piece (0 for BPE-with-merges vocabularies).
    public func score(for id: Int) -> Float? { id >= 0 && id < scores.count ? scores[id] : nil }

    // MARK: Encoding

    /// Encodes text: added tokens are matched in the raw text; `addSpecialTokens` adds ``prefixIds`` and
    /// ``suffixIds``.
    public func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var out: [Int] = addSpecialTokens ? prefixIds : []
        let bytes = Array(text.utf8)
        var segmentStart = 0
        var i = 0
        var previousWasSpecial = true
        func flush(_ end: Int) {
            if segmentStart < end {
                let seg = String(decoding: bytes[segmentStart..<end], as: UTF8.self)
                encodeSegment(seg, atStart: segmentStart == 0, afterSpecial: previousWasSpecial, into: &out)
                previousWasSpecial = false
            }
        }
        while i < bytes.count {
            var matched: (Int, Int)?
            for c in addedByFirstByte[Int(bytes[i])] where c.bytes.count <= bytes.count - i {
                if bytes[i..<(i + c.bytes.count)].elementsEqual(c.bytes) { matched = (c.id, c.bytes.count); break }
            }
            if let (id, len) = matched {
                var end = i
                if lstripIds.contains(id) {
                    // the whitespace before the token belongs to it
                    while end > segmentStart, let last = Self.lastScalar(bytes, segmentStart, end),
                          last.scalar.properties.isWhitespace { end -= last.length }
                }
                flush(end)
                out.append(id)
                previousWasSpecial = true
                i += len
                if rstripIds.contains(id) {
                    while i < bytes.count, let next = Self.scalar(bytes, i), next.scalar.properties.isWhitespace { i += next.length }
                }
                segmentStart = i
            } else {
                i += 1
            }
        }
        flush(bytes.count)
        if addSpecialTokens { out += suffixIds }
        return out
    }

    /// The scalar starting at byte `i` of valid UTF-8, with its length.
    static func scalar(_ b: [UInt8], _ i: Int) -> (scalar: Unicode.Scalar, length: Int)? {
        let n = min(SentencePieceTokenizer.utf8Length(b[i]), b.count - i)
        guard let u = String(decoding: b[i..<(i + n)], as: UTF8.self).unicodeScalars.first else { return nil }
        return (u, n)
    }

    /// The scalar ending at byte `end` (after `start`) of valid UTF-8, with its length.
    static func lastScalar(_ b: [UInt8], _ start: Int, _ end: Int) -> (scalar: Unicode.Scalar, length: Int)? {
        var k = end - 1
        while k > start && b[k] & 0xC0 == 0x80 { k -= 1 }
        guard k >= start else { return nil }
        return scalar(b, k).map { ($0.scalar, end - k) }
    }

    func encodeSegment(_ text: String, atStart: Bool, afterSpecial: Bool, into out: inout [Int]) {
        if model == .bpeScores {
            var t = String.UnicodeScalarView()
            if addSpacePrefix && afterSpecial { t.append("\u{2581}") }
            for c in text.unicodeScalars { t.append(c == " " ? "\u{2581}" : c) }
            encodeByScores(String(t), into: &out)
            return
        }
        let normalized = normalizer?.apply(text) ?? text
        var words: [(text: String, atStart: Bool)] = [(normalized, atStart)]
        for step in preTokenizer {
            var next: [(text: String, atStart: Bool)] = []
            for (w, first) in words {
                switch step {
                case .whitespaceSplit:
                    // Rust `char::is_whitespace` runs separate pieces and are dropped.
                    var cur = String.UnicodeScalarView()
                    var startsText = first
                    for u in w.unicodeScalars {
                        if u.properties.isWhitespace {
                            if !cur.isEmpty { next.append((String(cur), startsText)); cur = String.UnicodeScalarView() }
                            startsText = false
                        } else {
                            cur.append(u)
                        }
                    }
                    if !cur.isEmpty { next.append((String(cur), startsText)) }
                case .metaspace(let rep, let scheme, let split):
                    let r = rep.unicodeScalars.first!
                    var u = String.UnicodeScalarView()
                    for c in w.unicodeScalars { u.append(c == " " ? r : c) }
                    let prepend: Bool
                    switch scheme {
                    case .always: prepend = true
                    case .first: prepend = first
                    case .never: prepend = false
                    }
                    if prepend && u.first != r { u.insert(r, at: u.startIndex) }
                    if split {
                        var cur = String.UnicodeScalarView()
                        for c in u {
                            if c == r && !cur.isEmpty { next.append((String(cur), false)); cur = String.UnicodeScalarView() }
                            cur.append(c)
                        }
                        if !cur.isEmpty { next.append((String(cur), false)) }
                    } else {
                        next.append((String(u), first))
                    }
                }
            }
            words = next
        }
        for (w, _) in words where !w.isEmpty {
            switch model {
            case .unigram: encodeUnigram(w, into: &out)
            default: encodeByMerges(w, into: &out)
            }
        }
    }

    /// The byte tokens of one character, or nil if the vocabulary lacks one of them.
    func byteTokens(_ ch: Substring) -> [Int]? {
        var ids: [Int] = []
        for b in ch.utf8 {
            let id = byteTokenId[Int(b)]
            guard id >= 0 else { return nil }
            ids.append(id)
        }
        return ids
    }

    /// HF BPE on one word: characters (byte fallback / unk for unknown ones), then merges by rank.
    func encodeByMerges(_ word: String, into out: inout [Int]) {
        var symbols: [Int32] = []
        var pendingUnk = false
        func flushUnk() {
            if pendingUnk, let u = unkTokenId { symbols.append(Int32(u)) }
            pendingUnk = false
        }
        for ch in word.unicodeScalars {
            let s = String(ch)
            if let id = lookup(s), matchable[id] {
                flushUnk()
                symbols.append(Int32(id))
            } else if byteFallback, let ids = byteTokens(Substring(s)) {
                flushUnk()
                symbols.append(contentsOf: ids.map(Int32.init))
            } else if unkTokenId != nil {
                if fuseUnk {
                    pendingUnk = true
                } else {
                    symbols.append(Int32(unkTokenId!))
                }
            }
        }
        flushUnk()
        out.append(contentsOf: BPETokenizer.applyMerges(symbols, merges))
    }

    /// SentencePiece / llama.cpp BPE: merge the best-scoring adjacent pair first, then resegment.
    func encodeByScores(_ text: String, into out: inout [Int]) {
        var sym = text.unicodeScalars.map { String($0) }
        guard !sym.isEmpty else { return }
        let n = sym.count
        var prev = (0..<n).map { $0 - 1 }
        var next = (0..<n).map { $0 + 1 }
        next[n - 1] = -1
        var alive = [Bool](repeating: true, count: n)
        // Heap of (score, left position, right position, merged length); best score first, then leftmost.
        var heap = ScoredPairHeap()
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let merged = sym[l] + sym[r]
            guard let id = lookup(merged), matchable[id] else { return }
            heap.push(.init(score: scores[id], left: l, right: r, length: merged.utf8.count))
        }
        for i in 0..<(n - 1) { tryAdd(i, i + 1) }
        while let top = heap.pop() {
            let l = top.left, r = top.right
            guard alive[l], alive[r], next[l] == r, sym[l].utf8.count + sym[r].utf8.count == top.length else { continue }
            sym[l] += sym[r]
            alive[r] = false
            next[l] = next[r]
            if next[r] >= 0 { prev[next[r]] = l }
            tryAdd(prev[l], l)
            tryAdd(l, next[l])
        }
        var i = 0
        while i >= 0 {
            resegment(sym[i], into: &out)
            i = next[i]
        }
    }

    func resegment(_ s: String, into out: inout [Int]) {
        if let id = lookup(s), matchable[id] || isUnknownPiece(id) {
            out.append(id)
            return
        }
        if let (a, b) = reverseMerges[s] ?? splitByPieces(s) {
            resegment(a, into: &out)
            resegment(b, into: &out)
            return
        }
        for ch in s.unicodeScalars {
            if let ids = byteTokens(Substring(String(ch))) {
                out.append(contentsOf: ids)
            } else if let u = unkTokenId {
                out.append(u)
            }
        }
    }

    func isUnknownPiece(_ id: Int) -> Bool { id == unkTokenId }

    /// For scores-BPE (no merge list): a non-piece symbol was built from two pieces; find the split whose halves
    /// are both pieces (llama.cpp keeps the pair in `rev_merge`; any split into two pieces re-yields the same
    /// final tokens because each half is itself a piece).
    func splitByPieces(_ s: String) -> (String, String)? {
        guard model == .bpeScores else { return nil }
        let u = Array(s.unicodeScalars)
        guard u.count > 1 else { return nil }
        for k in 1..<u.count {
            var a = String.UnicodeScalarView(), b = String.UnicodeScalarView()
            a.append(contentsOf: u[..<k])
            b.append(contentsOf: u[k...])
            let sa = String(a), sb = String(b)
            if let ia = lookup(sa), let ib = lookup(sb), matchable[ia], matchable[ib] { return (sa, sb) }
        }
        return nil
    }

    // MARK: Decoding

    /// Decodes ids (see the type's documentation); ids out of range are ignored.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var bytes = [UInt8]()
        var first = true
        for id in ids where id >= 0 && id < tokenBytes.count {
            if skipSpecialTokens && isSpecial[id] { continue }
            var b = tokenBytes[id]
            if first {
                var k = 0
                while k < b.count && k < leadingSpacesStripped && b[k] == 0x20 { k += 1 }
                b.removeFirst(k)
                first = false
            }
            bytes.append(contentsOf: b)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A max-heap of candidate merges for scores-BPE: higher score first, then smaller left position.
struct ScoredPairHeap {
    struct Entry {
        let score: Float
        let left: Int
        let right: Int
        let length: Int
        func before(_ o: Entry) -> Bool { score > o.score || (score == o.score && left < o.left) }
    }
    private var a: [Entry] = []

    mutating func push(_ x: Entry) {
        a.append(x)
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if !x.before(a[p]) { break }
            a[i] = a[p]
            i = p
        }
        a[i] = x
    }

    mutating func pop() -> Entry? {
        guard let last = a.popLast() else { return nil }
        guard !a.isEmpty else { return last }
        let top = a[0]
        let n = a.count
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && a[l + 1].before(a[l]) { c = l + 1 }
            if !a[c].before(last) { break }
            a[i] = a[c]
            i = c
        }
        a[i] = last
        return top
    }
}
