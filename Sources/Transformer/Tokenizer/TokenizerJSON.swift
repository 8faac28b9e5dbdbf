import Foundation

/// Errors reading a tokenizer.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file is not a tokenizer.json of the expected shape.
    case invalidFormat(String)
    /// A valid tokenizer.json using a feature this implementation does not reproduce.
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalidFormat(let s): return "invalid tokenizer.json: \(s)"
        case .unsupported(let s): return "unsupported tokenizer: \(s)"
        }
    }
}

extension PreTokenizer {
    /// The regular expression this pre-tokenizer reproduces (for `.smollm`, the one applied between digits).
    public var regexPattern: String {
        switch self {
        case .gpt2, .smollm:
            return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llama3:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .qwen2:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }

    /// Recognises an HF tokenizer.json `pre_tokenizer`:
    /// - `ByteLevel(add_prefix_space: false, use_regex: true)` -> `.gpt2`
    /// - `Sequence[Digits(individual_digits: true), ByteLevel(add_prefix_space: false, use_regex: true)]` -> `.smollm`
    /// - `Sequence[Split(Regex(p), Isolated), ByteLevel(add_prefix_space: false, use_regex: false)]` with `p` one
    ///   of the ``regexPattern``s of `.gpt2`, `.llama3`, `.qwen2`.
    public init(tokenizerJSON node: Any?) throws {
        guard let node = node as? [String: Any] else {
            throw TokenizerError.unsupported("pre_tokenizer is missing (a byte-level BPE needs one)")
        }
        var steps = [node]
        if node["type"] as? String == "Sequence" {
            steps = node["pretokenizers"] as? [[String: Any]] ?? []
        }
        func describe() -> String {
            let d = try? JSONSerialization.data(withJSONObject: node, options: [.sortedKeys])
            return "pre_tokenizer " + (d.flatMap { String(data: $0, encoding: .utf8) } ?? "?")
        }
        func isByteLevel(_ s: [String: Any], useRegex: Bool) -> Bool {
            s["type"] as? String == "ByteLevel" && (s["add_prefix_space"] as? Bool ?? false) == false
                && (s["use_regex"] as? Bool ?? true) == useRegex
        }
        switch steps.count {
        case 1 where isByteLevel(steps[0], useRegex: true):
            self = .gpt2
        case 2 where steps[0]["type"] as? String == "Digits" && steps[0]["individual_digits"] as? Bool == true
                && isByteLevel(steps[1], useRegex: true):
            self = .smollm
        case 2 where steps[0]["type"] as? String == "Split" && isByteLevel(steps[1], useRegex: false):
            let split = steps[0]
            guard let pattern = (split["pattern"] as? [String: Any])?["Regex"] as? String,
                  (split["behavior"] as? String ?? "Isolated") == "Isolated",
                  (split["invert"] as? Bool ?? false) == false,
                  let match = [PreTokenizer.gpt2, .llama3, .qwen2].first(where: { $0.regexPattern == pattern })
            else { throw TokenizerError.unsupported(describe()) }
            self = match
        default:
            throw TokenizerError.unsupported(describe())
        }
    }
}

extension BPETokenizer {
    /// Reads an HF `tokenizer.json` (BPE model with a byte-level pre-tokenizer).
    ///
    /// Reads `model.vocab`, `model.merges` (`"a b"` strings or `["a", "b"]` pairs), `model.ignore_merges`,
    /// `added_tokens` (`special: true` -> control token, otherwise user-defined; all are matched whole;
    /// `lstrip`/`rstrip`/`single_word` are not applied) and `pre_tokenizer` (see ``PreTokenizer/init(tokenizerJSON:)``).
    /// BOS/EOS and whether BOS is added come from `tokenizerConfig` (default: a `tokenizer_config.json` next to
    /// `url`, if present: `bos_token`, `eos_token`, `add_bos_token`), else from a `TemplateProcessing`
    /// post-processor that starts with a special token (that token is BOS and is added); without either the EOS
    /// is `<|endoftext|>` if the vocabulary has it.
    public convenience init(tokenizerJSON url: URL, tokenizerConfig configURL: URL? = nil) throws {
        let data = try Data(contentsOf: url)
        var config: Data?
        if let configURL {
            config = try Data(contentsOf: configURL)
        } else {
            let sibling = url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
            config = try? Data(contentsOf: sibling)
        }
        try self.init(tokenizerJSONData: data, tokenizerConfigData: config)
    }

    /// Like ``init(tokenizerJSON:tokenizerConfig:)``, from the files' contents.
    public convenience init(tokenizerJSONData data: Data, tokenizerConfigData: Data? = nil) throws {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TokenizerError.invalidFormat("not a JSON object")
        }
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError.invalidFormat("no model") }
        if let type = model["type"] as? String, type != "BPE" {
            throw TokenizerError.unsupported("model type \(type)")
        }
        if model["byte_fallback"] as? Bool == true { throw TokenizerError.unsupported("byte_fallback") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw TokenizerError.unsupported("\(key) \(s)") }
        }
        if let normalizer = root["normalizer"], !(normalizer is NSNull) {
            throw TokenizerError.unsupported("normalizer \(normalizer)")
        }
        let preTokenizer = try PreTokenizer(tokenizerJSON: root["pre_tokenizer"])

        guard let vocab = model["vocab"] as? [String: Any] else { throw TokenizerError.invalidFormat("no vocab") }
        // Ids index the token table, so they must be non-negative integers, and (against a hostile file allocating
        // a huge table) at most a fixed bound above the number of tokens.
        let idLimit = vocab.count + ((root["added_tokens"] as? [Any])?.count ?? 0) + (1 << 20)
        func tokenId(_ value: Any?) -> Int? {
            guard let n = value as? NSNumber, let d = Double(exactly: n.doubleValue), d == d.rounded(),
                  d >= 0, d <= Double(idLimit) else { return nil }
            return Int(d)
        }
        var byId = [Int: String](minimumCapacity: vocab.count)
        for (token, value) in vocab {
            guard let id = tokenId(value) else {
                throw TokenizerError.invalidFormat("model.vocab entry \(token.debugDescription): id \(value) is not an integer in 0...\(idLimit)")
            }
            byId[id] = token
        }
        var types = [Int: Int]()
        for entry in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = tokenId(entry["id"]), let content = entry["content"] as? String else {
                throw TokenizerError.invalidFormat("added_tokens entry \(entry): needs an integer id in 0...\(idLimit) and a content string")
            }
            byId[id] = content
            types[id] = (entry["special"] as? Bool ?? false) ? 3 : 4
        }
        let size = (byId.keys.max() ?? -1) + 1
        var tokens = [String](repeating: "", count: size)
        var tokenTypes = [Int](repeating: 1, count: size)
        for (id, t) in byId { tokens[id] = t }
        for id in 0..<size where byId[id] == nil { tokenTypes[id] = 5 }  // unused hole
        for (id, t) in types { tokenTypes[id] = t }

        var pairs = [(String, String)]()
        let rawMerges = model["merges"] as? [Any] ?? []
        pairs.reserveCapacity(rawMerges.count)
        for m in rawMerges {
            if let s = m as? String {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw TokenizerError.invalidFormat("merge \(s)") }
                pairs.append((String(parts[0]), String(parts[1])))
            } else if let p = m as? [String], p.count == 2 {
                pairs.append((p[0], p[1]))
            } else {
                throw TokenizerError.invalidFormat("merge \(m)")
            }
        }

        // BOS / EOS
        var bos: Int?
        var eos: Int?
        var addBOS = false
        func idOf(_ v: Any?) -> Int? {
            let s = (v as? String) ?? ((v as? [String: Any])?["content"] as? String)
            return s.flatMap { s in byId.first(where: { $0.value == s })?.key }
        }
        if let post = root["post_processor"] as? [String: Any] {
            let processors = post["type"] as? String == "Sequence"
                ? (post["processors"] as? [[String: Any]] ?? []) : [post]
            for p in processors where p["type"] as? String == "TemplateProcessing" {
                if let first = (p["single"] as? [[String: Any]])?.first,
                   let special = first["SpecialToken"] as? [String: Any], let name = special["id"] as? String {
                    let ids = ((p["special_tokens"] as? [String: Any])?[name] as? [String: Any])?["ids"] as? [Any]
                    bos = (ids?.first as? NSNumber)?.intValue ?? idOf(name)
                    addBOS = bos != nil
                }
            }
        }
        if let configData = tokenizerConfigData,
           let config = try JSONSerialization.jsonObject(with: configData) as? [String: Any] {
            if let b = idOf(config["bos_token"]) { bos = b }
            if let e = idOf(config["eos_token"]) { eos = e }
            if let add = config["add_bos_token"] as? Bool { addBOS = add && bos != nil }
        }
        if eos == nil { eos = idOf("<|endoftext|>") }

        self.init(tokens: tokens, mergePairs: pairs, tokenTypes: tokenTypes, preTokenizer: preTokenizer,
                  bosTokenId: bos, eosTokenId: eos, addBOS: addBOS,
                  ignoreMerges: model["ignore_merges"] as? Bool ?? false)
    }
}
