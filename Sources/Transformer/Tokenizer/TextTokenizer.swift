import Foundation

/// What every tokenizer offers: text → ids, ids → text, and the per-token bytes streaming decoding needs.
/// Implemented by ``BPETokenizer`` (GPT-2 style byte-level BPE) and ``SentencePieceTokenizer`` (`▁` word
/// boundaries: BPE with merges or by scores, and Unigram). ``TextGenerator`` and the CLI use this protocol, and
/// ``loadTokenizer(path:)`` picks the implementation a file asks for.
public protocol TextTokenizer: AnyObject, Sendable {
    /// Number of token ids (`0..<vocabularySize`).
    var vocabularySize: Int { get }
    /// Beginning-of-sequence id, if any.
    var bosTokenId: Int? { get }
    /// End-of-sequence id, if any.
    var eosTokenId: Int? { get }
    /// Encodes text; special tokens written in the text are recognised; `addSpecialTokens` adds what the
    /// tokenizer's post-processor adds (e.g. BOS).
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    /// Decodes ids to text (invalid UTF-8 becomes U+FFFD).
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// The id of a token string (as stored in the vocabulary), if any.
    func id(for token: String) -> Int?
    /// The vocabulary string of an id.
    func token(for id: Int) -> String?
    /// The bytes one token contributes to decoded text (before ``leadingSpacesStripped`` is applied).
    func bytes(for id: Int) -> [UInt8]?
    /// Whether `id` is a special (control) token, dropped by `skipSpecialTokens`.
    func isSpecialToken(_ id: Int) -> Bool
    /// How many leading spaces the decoder removes from the start of the decoded text (SentencePiece decoders
    /// remove the space of the `▁` prefix the encoder added).
    var leadingSpacesStripped: Int { get }
}

extension TextTokenizer {
    public var leadingSpacesStripped: Int { 0 }

    /// Encodes with special tokens added (`addSpecialTokens: true`).
    public func encode(_ text: String) -> [Int] { encode(text, addSpecialTokens: true) }

    /// Decodes without skipping special tokens.
    public func decode(_ ids: [Int]) -> String { decode(ids, skipSpecialTokens: false) }

    /// A streaming decoder over this tokenizer.
    public func streamingDecoder(skipSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

/// Picks and builds the tokenizer a file describes.
public enum TokenizerLoader {
    /// Loads from a GGUF file (`tokenizer.ggml.*`), a Hugging Face folder (tokenizer.json, with
    /// tokenizer_config.json if present) or a tokenizer.json file.
    public static func load(path: String) throws -> any TextTokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError.invalidFormat("no such file or directory: \(path)")
        }
        let url = URL(fileURLWithPath: path)
        if isDirectory.boolValue {
            let json = url.appendingPathComponent("tokenizer.json")
            guard let data = FileManager.default.contents(atPath: json.path) else {
                throw TokenizerError.invalidFormat("\(path) has no tokenizer.json")
            }
            let config = FileManager.default.contents(atPath: url.appendingPathComponent("tokenizer_config.json").path)
            return try load(tokenizerJSONData: data, tokenizerConfigData: config)
        }
        if url.pathExtension.lowercased() == "json" {
            let data = try Data(contentsOf: url)
            let config = FileManager.default.contents(
                atPath: url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json").path)
            return try load(tokenizerJSONData: data, tokenizerConfigData: config)
        }
        return try load(gguf: try GGUFFile(url: url))
    }

    /// A tokenizer.json: byte-level BPE (a `ByteLevel` pre-tokenizer) → ``BPETokenizer``; BPE with SentencePiece
    /// conventions or Unigram → ``SentencePieceTokenizer``.
    public static func load(tokenizerJSONData data: Data, tokenizerConfigData: Data? = nil) throws -> any TextTokenizer {
        guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let model = root["model"] as? [String: Any] else {
            throw TokenizerError.invalidFormat("not a tokenizer.json (no model)")
        }
        switch model["type"] as? String {
        case "BPE":
            if mentionsByteLevel(root["pre_tokenizer"]) || mentionsByteLevel(root["decoder"]) {
                return try BPETokenizer(tokenizerJSONData: data, tokenizerConfigData: tokenizerConfigData)
            }
            return try SentencePieceTokenizer(tokenizerJSONData: data, tokenizerConfigData: tokenizerConfigData)
        case "Unigram":
            return try SentencePieceTokenizer(tokenizerJSONData: data, tokenizerConfigData: tokenizerConfigData)
        case let t:
            throw TokenizerError.unsupported("model type \(t ?? "missing")")
        }
    }

    static func mentionsByteLevel(_ node: Any?) -> Bool {
        guard let o = node as? [String: Any] else { return false }
        if o["type"] as? String == "ByteLevel" { return true }
        for key in ["pretokenizers", "decoders"] {
            if let list = o[key] as? [Any], list.contains(where: mentionsByteLevel) { return true }
        }
        return false
    }

    /// The tokenizer in GGUF metadata: `tokenizer.ggml.model` `gpt2` (byte-level BPE) or `llama` (SentencePiece BPE
    /// by scores).
    public static func load(gguf f: GGUFFile) throws -> any TextTokenizer {
        guard let tokens = f["tokenizer.ggml.tokens"]?.strings else {
            throw TokenizerError.invalidFormat("GGUF has no tokenizer.ggml.tokens")
        }
        let kind = f["tokenizer.ggml.model"]?.string ?? "gpt2"
        switch kind {
        case "gpt2":
            let preName = f["tokenizer.ggml.pre"]?.string ?? "default"
            let pre = PreTokenizer(ggmlName: preName) ?? .gpt2
            if PreTokenizer(ggmlName: preName) == nil {
                FileHandle.standardError.write(Data("warning: pre-tokenizer '\(preName)' unknown, using GPT-2's split\n".utf8))
            }
            return BPETokenizer(tokens: tokens, merges: f["tokenizer.ggml.merges"]?.strings ?? [],
                                tokenTypes: f["tokenizer.ggml.token_type"]?.ints, preTokenizer: pre,
                                bosTokenId: f["tokenizer.ggml.bos_token_id"]?.int,
                                eosTokenId: f["tokenizer.ggml.eos_token_id"]?.int,
                                addBOS: f["tokenizer.ggml.add_bos_token"]?.bool ?? false)
        case "llama":
            guard let scores = f["tokenizer.ggml.scores"]?.floats else {
                throw TokenizerError.invalidFormat("GGUF llama tokenizer has no tokenizer.ggml.scores")
            }
            return try SentencePieceTokenizer(
                ggufTokens: tokens, scores: scores, tokenTypes: f["tokenizer.ggml.token_type"]?.ints,
                bosTokenId: f["tokenizer.ggml.bos_token_id"]?.int, eosTokenId: f["tokenizer.ggml.eos_token_id"]?.int,
                unknownTokenId: f["tokenizer.ggml.unknown_token_id"]?.int,
                addBOS: f["tokenizer.ggml.add_bos_token"]?.bool ?? true,
                addEOS: f["tokenizer.ggml.add_eos_token"]?.bool ?? false,
                addSpacePrefix: f["tokenizer.ggml.add_space_prefix"]?.bool ?? true)
        default:
            throw TokenizerError.unsupported("GGUF tokenizer model '\(kind)' (supported: gpt2, llama)")
        }
    }
}
