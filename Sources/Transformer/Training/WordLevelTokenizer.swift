import Foundation

/// A word-level tokenizer built from a training split and saved as a Hugging Face `tokenizer.json`
/// (`tokenizers` `WordLevel` model) that `AutoTokenizer.from_pretrained` loads as a `PreTrainedTokenizerFast`.
///
/// Pipeline (the same as the saved JSON describes, so HF produces identical ids):
/// 1. normalizer `Lowercase`: every Unicode scalar replaced by its full lowercase mapping (Rust `char::to_lowercase`);
/// 2. pre-tokenizer `BertPreTokenizer`: split on Unicode white space (removed), and every punctuation scalar
///    (ASCII punctuation, or Unicode general category P*) is a token of its own;
/// 3. `WordLevel` lookup, unknown words → `[UNK]`;
/// 4. post-processor `TemplateProcessing`: `[CLS] $A [SEP]` (pairs: `[CLS] $A [SEP] $B:1 [SEP]:1`); truncation keeps
///    the first `maxLength − 2` words (HF `truncation=True` with `model_max_length`).
///
/// Special tokens: `[PAD]` 0, `[UNK]` 1, `[CLS]` 2, `[SEP]` 3, `[MASK]` 4, then words by descending training
/// frequency (ties alphabetical), those seen at least `minFrequency` times, at most `maxVocabulary` in total.
/// Limitation: the literal strings `[CLS]` etc. inside raw text are tokenized as words here, while HF matches them
/// as added tokens.
public struct WordLevelTokenizer: Sendable {
    public static let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    public static let (padID, unkID, clsID, sepID) = (0, 1, 2, 3)

    public let vocabulary: [String]
    let index: [String: Int]

    public init(vocabulary: [String]) throws {
        guard Array(vocabulary.prefix(4)) == Array(Self.specials.prefix(4)) else {
            throw TrainingError.invalidData("word-level vocabulary must start with [PAD] [UNK] [CLS] [SEP]")
        }
        var index: [String: Int] = [:]
        for (i, w) in vocabulary.enumerated() {
            if index[w] != nil { throw TrainingError.invalidData("duplicate vocabulary entry '\(w)'") }
            index[w] = i
        }
        self.vocabulary = vocabulary
        self.index = index
    }

    public var count: Int { vocabulary.count }

    /// Builds the vocabulary from `texts`.
    public static func build(from texts: [String], minFrequency: Int = 2, maxVocabulary: Int = 30_000) throws -> WordLevelTokenizer {
        var counts: [String: Int] = [:]
        for t in texts { for w in words(t) { counts[w, default: 0] += 1 } }
        let specialSet = Set(specials)
        let sorted = counts.filter { $0.value >= minFrequency && !specialSet.contains($0.key) }
            .sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        let room = max(0, maxVocabulary - specials.count)
        return try WordLevelTokenizer(vocabulary: specials + sorted.prefix(room).map(\.key))
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
             .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// Normalised, pre-tokenized words of `text`.
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var cur = String.UnicodeScalarView()
        func flush() { if !cur.isEmpty { out.append(String(cur)); cur = String.UnicodeScalarView() } }
        for s in text.unicodeScalars {
            for l in s.properties.lowercaseMapping.unicodeScalars {
                if l.properties.isWhitespace {
                    flush()
                } else if isPunctuation(l) {
                    flush(); out.append(String(l))
                } else {
                    cur.append(l)
                }
            }
        }
        flush()
        return out
    }

    /// `[CLS] ids… [SEP]`, at most `maxLength` ids.
    public func encode(_ text: String, maxLength: Int) -> [Int] {
        let ws = Self.words(text)
        let keep = max(0, min(ws.count, maxLength - 2))
        return [Self.clsID] + ws.prefix(keep).map { index[$0] ?? Self.unkID } + [Self.sepID]
    }

    // MARK: Hugging Face files

    /// Writes `tokenizer.json` and `tokenizer_config.json` (`model_max_length = maxLength`) into `directory`.
    public func save(to directory: URL, maxLength: Int) throws {
        var vocab: [String: Int] = [:]
        for (i, w) in vocabulary.enumerated() { vocab[w] = i }
        let added: [[String: Any]] = Self.specials.enumerated().compactMap { i, s in
            guard i < vocabulary.count, vocabulary[i] == s else { return nil }
            return ["id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false,
                    "special": true]
        }
        func special(_ s: String, _ type: Int) -> [String: Any] { ["SpecialToken": ["id": s, "type_id": type]] }
        func seq(_ s: String, _ type: Int) -> [String: Any] { ["Sequence": ["id": s, "type_id": type]] }
        let json: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": ["type": "Lowercase"],
            "pre_tokenizer": ["type": "BertPreTokenizer"],
            "post_processor": [
                "type": "TemplateProcessing",
                "single": [special("[CLS]", 0), seq("A", 0), special("[SEP]", 0)],
                "pair": [special("[CLS]", 0), seq("A", 0), special("[SEP]", 0), seq("B", 1), special("[SEP]", 1)],
                "special_tokens": [
                    "[CLS]": ["id": "[CLS]", "ids": [Self.clsID], "tokens": ["[CLS]"]],
                    "[SEP]": ["id": "[SEP]", "ids": [Self.sepID], "tokens": ["[SEP]"]],
                ],
            ],
            "decoder": NSNull(),
            "model": ["type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"],
        ]
        let config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": maxLength,
            "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
            "padding_side": "right", "truncation_side": "right", "clean_up_tokenization_spaces": false,
            "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        ]
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
                .write(to: directory.appendingPathComponent("tokenizer.json"))
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
                .write(to: directory.appendingPathComponent("tokenizer_config.json"))
        } catch {
            throw TrainingError.io("cannot write the tokenizer into \(directory.path): \(error)")
        }
    }

    /// Reads a `tokenizer.json` with a `WordLevel` model (as ``save(to:maxLength:)`` writes it) and the
    /// `model_max_length` of `tokenizer_config.json` (nil when absent).
    public static func load(directory: URL) throws -> (tokenizer: WordLevelTokenizer, maxLength: Int?) {
        let url = directory.appendingPathComponent("tokenizer.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let j = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TrainingError.invalidCheckpoint("cannot read \(url.path) as a JSON object")
        }
        guard let model = j["model"] as? [String: Any], model["type"] as? String == "WordLevel",
              let vocab = model["vocab"] as? [String: Int] else {
            throw TrainingError.invalidCheckpoint("\(url.path): only WordLevel tokenizers are supported by the training engine")
        }
        if let n = j["normalizer"] as? [String: Any], n["type"] as? String != "Lowercase" {
            throw TrainingError.invalidCheckpoint("\(url.path): normalizer \(n["type"] ?? "?") is not supported (Lowercase only)")
        }
        if let p = j["pre_tokenizer"] as? [String: Any], p["type"] as? String != "BertPreTokenizer" {
            throw TrainingError.invalidCheckpoint("\(url.path): pre_tokenizer \(p["type"] ?? "?") is not supported (BertPreTokenizer only)")
        }
        var words = [String](repeating: "", count: vocab.count)
        for (w, i) in vocab {
            guard i >= 0 && i < words.count && words[i].isEmpty else {
                throw TrainingError.invalidCheckpoint("\(url.path): vocabulary ids are not 0..<\(vocab.count) without gaps")
            }
            words[i] = w
        }
        var maxLength: Int? = nil
        if let cd = FileManager.default.contents(atPath: directory.appendingPathComponent("tokenizer_config.json").path),
           let c = (try? JSONSerialization.jsonObject(with: cd)) as? [String: Any] {
            maxLength = c["model_max_length"] as? Int
        }
        return (try WordLevelTokenizer(vocabulary: words), maxLength)
    }
}
