import Foundation

/// Where weights come from: a safetensors checkpoint, or a GGUF file mapped onto HF names.
public protocol WeightSource: Sendable {
    func contains(_ name: String) -> Bool
    func tensor(_ name: String) throws -> Tensor
    /// `name` as stored in a block-quantised format (a 2-D GGUF tensor in Q8_0 / Q4_0 / Q4_1), laid out like
    /// ``tensor(_:)``; nil when it is not stored that way (the default).
    func quantized(_ name: String) throws -> QuantizedMatrix?
    /// How errors name `name`: the HF name, plus where it lives when the source stores it under another (a GGUF
    /// tensor). Default: `name`.
    func describe(_ name: String) -> String
}

extension WeightSource {
    public func quantized(_ name: String) throws -> QuantizedMatrix? { nil }
    public func describe(_ name: String) -> String { name }
}

extension SafeTensorsCheckpoint: WeightSource {}

/// Reads named weights and checks their shapes against what the config implies.
///
/// ``random(seed:std:)`` instead makes every requested tensor up (normal(0, std); norm weights 1): models of any
/// size for benchmarks, with no checkpoint.
public struct Weights: Sendable {
    enum Backing: Sendable {
        case source(any WeightSource)
        case random(seed: UInt64, std: Float)
    }

    let backing: Backing

    /// Weights read from `source`.
    public init(_ source: any WeightSource) { backing = .source(source) }

    /// Random weights of whatever shape is asked for.
    public static func random(seed: UInt64 = 0, std: Float = 0.02) -> Weights { Weights(backing: .random(seed: seed, std: std)) }

    private init(backing: Backing) { self.backing = backing }

    /// Whether a tensor called `name` exists (always true for random weights).
    public func contains(_ name: String) -> Bool {
        switch backing {
        case .source(let s): return s.contains(name)
        case .random: return true
        }
    }

    /// The tensor `name`, which must have `shape`.
    public func callAsFunction(_ name: String, _ shape: [Int]) throws -> Tensor {
        switch backing {
        case .random(let seed, let std):
            if name.hasSuffix("norm.weight") { return Tensor.ones(shape) }
            if name.hasSuffix(".bias") { return Tensor.zeros(shape) }
            return Tensor.randomNormal(shape, std: std, seed: seed &+ UInt64(truncatingIfNeeded: name.utf8.reduce(5381) { ($0 &* 33) &+ Int($1) }))
        case .source(let source):
            guard source.contains(name) else { throw ModelError.missingTensor(source.describe(name)) }
            let t = try source.tensor(name)
            guard t.shape == shape else {
                throw ModelError.shapeMismatch(tensor: source.describe(name), expected: shape, found: t.shape)
            }
            return t
        }
    }

    /// `name` if the checkpoint has it.
    public func optional(_ name: String, _ shape: [Int]) throws -> Tensor? {
        contains(name) ? try self(name, shape) : nil
    }

    /// The quantised form of `name` (see ``WeightSource/quantized(_:)``), which must have `shape`; nil when the
    /// checkpoint does not store it quantised (and always for random weights).
    public func quantized(_ name: String, _ shape: [Int]) throws -> QuantizedMatrix? {
        guard case .source(let source) = backing, let q = try source.quantized(name) else { return nil }
        guard [q.rows, q.cols] == shape else {
            throw ModelError.shapeMismatch(tensor: source.describe(name), expected: shape, found: [q.rows, q.cols])
        }
        return q
    }

    /// A `Linear` from `prefix.weight` `[out, in]` (and `prefix.bias` when `bias`): the stored blocks when the
    /// checkpoint keeps them in a format with kernels (no float copy), else float weights.
    public func linear(_ prefix: String, out: Int, in inFeatures: Int, bias: Bool = false) throws -> Linear {
        // The weight is read (and its shape checked) before the bias, so a wrong size is reported on the weight.
        if let q = try quantized("\(prefix).weight", [out, inFeatures]) {
            return Linear(quantized: q, bias: bias ? try self("\(prefix).bias", [out]) : nil)
        }
        let w = try self("\(prefix).weight", [out, inFeatures])
        return Linear(weight: w, bias: bias ? try self("\(prefix).bias", [out]) : nil)
    }

    /// A `[rows, cols]` table (token embeddings) as a `Linear` (rows looked up with ``Linear/weightRows(_:)``), stored
    /// blocks when the checkpoint has them.
    public func table(_ name: String, _ shape: [Int]) throws -> Linear {
        if let q = try quantized(name, shape) { return Linear(quantized: q) }
        return Linear(weight: try self(name, shape))
    }

    /// An `RMSNorm` from `prefix.weight` `[size]`.
    public func rmsNorm(_ prefix: String, size: Int, eps: Double) throws -> RMSNorm {
        RMSNorm(weight: try self("\(prefix).weight", [size]), eps: Float(eps))
    }
}

/// Opens models: the one way in, for a GGUF file and a Hugging Face folder alike.
///
/// ```swift
/// let opened = try ModelLoader.open("models/SmolLM2-135M-Instruct.Q4_K_M.gguf")   // or an HF folder
/// let llm = try opened.textGenerator()        // model + tokenizer + chat template + stop tokens
/// ```
///
/// Both formats end in the same two steps: a ``ModelConfig`` (HF `config.json`, or the GGUF metadata read field by
/// field by ``GGUFCheckpoint/config()``) and a ``Weights`` source (safetensors, or the mapped GGUF seen under HF
/// names), from which ``build(config:weights:)`` makes the architecture `model_type` names. Decoders share one
/// skeleton (embedding, layers, final norm, tied or separate head), assembled in ``DecoderModel``.
public enum ModelLoader {
    /// `model_type` values this loader builds.
    public static let supportedTypes = ["llama", "mistral", "mixtral", "deepseek_v3", "roformer", "qwen2", "qwen3",
                                        "qwen3_moe", "gemma2", "phi3", "bert"]

    /// A loaded network: a causal LM, a sequence classifier, or a BERT encoder.
    public enum LoadedModel: Sendable {
        case causalLM(any CausalLanguageModel)
        case sequenceClassifier(RoFormerForSequenceClassification)
        /// `model_type: bert` without a task head (`BertModel`; sentence-embedding folders).
        case encoder(BertModel)
        /// `model_type: bert` whose `architectures` name `BertForSequenceClassification`.
        case bertClassifier(BertForSequenceClassification)
    }

    /// Opens `path`: a GGUF file (architectures ``GGUFCheckpoint/supportedArchitectures``) or a Hugging Face folder
    /// (`config.json` + `model.safetensors` or a sharded index). For a causal LM it also reads the tokenizer (the
    /// GGUF's `tokenizer.ggml.*`, or the folder's `tokenizer.json` + `tokenizer_config.json`), the chat template
    /// and the stop tokens; a model without a tokenizer still opens (it runs on token ids). Every problem —
    /// missing path, bad config or metadata, missing or misshapen tensor, unreadable tokenizer — is a thrown
    /// ``ModelError`` naming it.
    public static func open(_ path: String) throws -> OpenedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError.io("no such file or directory: \(path)")
        }
        let url = URL(fileURLWithPath: path)
        return isDirectory.boolValue ? try openFolder(url) : try openGGUF(url)
    }

    /// ``open(_:)`` for a file URL.
    public static func open(_ url: URL) throws -> OpenedModel { try open(url.path) }

    /// Builds the architecture `config.modelType` from `weights`, after ``ModelConfig/validate()``: what
    /// ``open(_:)`` does once it has both, and the way to a model with ``Weights/random(seed:std:)`` weights.
    public static func build(config: ModelConfig, weights: Weights) throws -> LoadedModel {
        try config.validate()
        switch config.modelType {
        case "llama", "mistral": return .causalLM(try Llama.build(config: config, weights: weights))
        case "mixtral": return .causalLM(try Mixtral.build(config: config, weights: weights))
        case "qwen2": return .causalLM(try Qwen2.build(config: config, weights: weights))
        case "qwen3", "qwen3_moe": return .causalLM(try Qwen3.build(config: config, weights: weights))
        case "gemma2": return .causalLM(try Gemma2.build(config: config, weights: weights))
        case "phi3": return .causalLM(try Phi3.build(config: config, weights: weights))
        case "deepseek_v3": return .causalLM(try DeepSeekV3.build(config: config, weights: weights))
        case "bert" where config.architectures?.contains("BertForSequenceClassification") ?? false:
            return .bertClassifier(try BertForSequenceClassification.build(config: config, weights: weights))
        case "bert": return .encoder(try BertModel.build(config: config, weights: weights))
        case "roformer": return .sequenceClassifier(try RoFormerForSequenceClassification.build(config: config, weights: weights))
        default: throw ModelError.unsupportedModelType(config.modelType)
        }
    }

    /// The safetensors weights in `directory` (`model.safetensors` or a sharded index).
    static func weights(directory: URL) throws -> Weights {
        do {
            return Weights(try SafeTensorsCheckpoint(directory: directory))
        } catch {
            throw ModelError.io("\(error)")
        }
    }

    static func openGGUF(_ url: URL) throws -> OpenedModel {
        let checkpoint = try GGUFCheckpoint(url: url)
        let config = try checkpoint.config()
        let model = try build(config: config, weights: Weights(checkpoint))
        let f = checkpoint.file
        var tokenizer: (any TextTokenizer)?
        var template: (ChatTemplate?, String?) = (nil, nil)
        if f["tokenizer.ggml.tokens"] != nil {
            do {
                tokenizer = try TokenizerLoader.load(gguf: f)
            } catch {
                throw ModelError.invalidConfig("\(url.lastPathComponent): \(error)")
            }
            if let source = f["tokenizer.chat_template"]?.string {
                template = chatTemplate(source, specialTokens: ChatTemplate.specialTokens(gguf: f))
            }
        }
        return OpenedModel(source: .gguf(f), config: config, model: model, tokenizer: tokenizer,
                           chatTemplate: template.0, chatTemplateError: template.1)
    }

    static func openFolder(_ url: URL) throws -> OpenedModel {
        let config = try ModelConfig.load(directory: url)
        let model = try build(config: config, weights: try weights(directory: url))
        var tokenizer: (any TextTokenizer)?
        var template: (ChatTemplate?, String?) = (nil, nil)
        // Encoders (BERT's WordPiece, the trainer's word-level vocabulary) read their tokenizers themselves:
        // ``SentenceEmbedder``, ``WordLevelTokenizer``.
        if case .causalLM = model, FileManager.default.fileExists(atPath: url.appendingPathComponent("tokenizer.json").path) {
            do {
                tokenizer = try TokenizerLoader.load(path: url.path)
            } catch {
                throw ModelError.invalidConfig("\(url.appendingPathComponent("tokenizer.json").path): \(error)")
            }
            let configURL = url.appendingPathComponent("tokenizer_config.json")
            if let data = FileManager.default.contents(atPath: configURL.path),
               let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
               let jinja = json["chat_template"] as? String {
                template = chatTemplate(jinja, specialTokens: ChatTemplate.specialTokens(tokenizerConfig: json))
            }
        }
        return OpenedModel(source: .huggingFace(url), config: config, model: model, tokenizer: tokenizer,
                           chatTemplate: template.0, chatTemplateError: template.1)
    }

    /// A parsed chat template, or why it cannot be used (a model with an unusable template still opens).
    static func chatTemplate(_ source: String, specialTokens: [String: String]) -> (ChatTemplate?, String?) {
        do { return (try ChatTemplate(jinja: source, specialTokens: specialTokens), nil) } catch { return (nil, "\(error)") }
    }
}

/// A model opened by ``ModelLoader/open(_:)``: the network, the config it was built from, where it came from and —
/// for a causal LM with a tokenizer — what turns it into a text or chat model.
public struct OpenedModel: Sendable {
    /// Where the weights live.
    public enum Source: Sendable {
        /// A GGUF file (mapped; its metadata and tensor table stay readable, e.g. for `info`).
        case gguf(GGUFFile)
        /// A Hugging Face folder.
        case huggingFace(URL)
    }

    public let source: Source
    /// The config the model was built from (for a GGUF file: read from its metadata).
    public let config: ModelConfig
    public let model: ModelLoader.LoadedModel
    /// The tokenizer, when the file or folder has one and the model is a causal LM.
    public let tokenizer: (any TextTokenizer)?
    /// The chat template, when the model declares one that parses.
    public let chatTemplate: ChatTemplate?
    /// Why the declared chat template cannot be used (it does not parse, or uses unsupported Jinja), if so.
    public let chatTemplateError: String?
    /// Tokens that end a turn or the text: the config's EOS ids, the tokenizer's EOS and the end-of-turn tokens
    /// `<|im_end|>`, `<|endoftext|>`, `<|eot_id|>` when the vocabulary has them.
    public let stopTokens: Set<Int>

    init(source: Source, config: ModelConfig, model: ModelLoader.LoadedModel, tokenizer: (any TextTokenizer)?,
         chatTemplate: ChatTemplate?, chatTemplateError: String?) {
        (self.source, self.config, self.model, self.tokenizer) = (source, config, model, tokenizer)
        (self.chatTemplate, self.chatTemplateError) = (chatTemplate, chatTemplateError)
        var stops = Set(config.eosTokenId ?? [])
        if let tokenizer {
            if let eos = tokenizer.eosTokenId { stops.insert(eos) }
            for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] { if let id = tokenizer.id(for: name) { stops.insert(id) } }
        }
        stopTokens = stops
    }

    /// The path it was opened from.
    public var path: String {
        switch source {
        case .gguf(let f): return f.url.path
        case .huggingFace(let url): return url.path
        }
    }

    /// The model as a causal LM, or an error saying what it is instead.
    public func causalLM() throws -> any CausalLanguageModel {
        guard case .causalLM(let m) = model else {
            throw ModelError.invalidConfig("\(path) is not a causal language model (model_type \(config.modelType))")
        }
        return m
    }

    /// The causal LM with its tokenizer, chat template and stop tokens; an error when it is not a causal LM or has
    /// no tokenizer.
    public func textGenerator() throws -> TextGenerator {
        let lm = try causalLM()
        guard let tokenizer else {
            let missing: String
            switch source {
            case .gguf: missing = "no tokenizer.ggml.tokens"
            case .huggingFace: missing = "no tokenizer.json"
            }
            throw ModelError.io("\(path) has \(missing) (text generation needs a tokenizer; use token ids instead)")
        }
        return TextGenerator(model: lm, tokenizer: tokenizer, chatTemplate: chatTemplate, stopTokens: stopTokens,
                             chatTemplateError: chatTemplateError)
    }
}
