import Foundation

/// Where weights come from: a safetensors checkpoint, or a GGUF file mapped onto HF names.
public protocol WeightSource: Sendable {
    func contains(_ name: String) -> Bool
    func tensor(_ name: String) throws -> Tensor
    /// `name` as stored in a block-quantised format (a 2-D GGUF tensor in Q8_0 / Q4_0 / Q4_1), laid out like
    /// ``tensor(_:)``; nil when it is not stored that way (the default).
    func quantized(_ name: String) throws -> QuantizedMatrix?
}

extension WeightSource {
    public func quantized(_ name: String) throws -> QuantizedMatrix? { nil }
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
            guard source.contains(name) else { throw ModelError.missingTensor(name) }
            let t = try source.tensor(name)
            guard t.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, found: t.shape) }
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
        guard [q.rows, q.cols] == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, found: [q.rows, q.cols]) }
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

/// Opens a model directory as Hugging Face publishes it (`config.json` + `model.safetensors` or a sharded index) and
/// builds the architecture its `model_type` names.
public enum ModelLoader {
    /// `model_type` values this loader builds.
    public static let supportedTypes = ["llama", "mistral", "mixtral", "deepseek_v3", "roformer", "qwen2", "qwen3",
                                        "qwen3_moe", "gemma2", "phi3", "bert"]

    /// A loaded model: a causal LM, a sequence classifier, or a BERT encoder.
    public enum LoadedModel: Sendable {
        case causalLM(any CausalLanguageModel)
        case sequenceClassifier(RoFormerForSequenceClassification)
        /// `model_type: bert` without a task head (`BertModel`; sentence-embedding folders).
        case encoder(BertModel)
        /// `model_type: bert` whose `architectures` name `BertForSequenceClassification`.
        case bertClassifier(BertForSequenceClassification)
    }

    /// The safetensors weights in `directory` (`model.safetensors` or a sharded index).
    public static func weights(directory: URL) throws -> Weights {
        do {
            return Weights(try SafeTensorsCheckpoint(directory: directory))
        } catch {
            throw ModelError.io("\(error)")
        }
    }

    /// Loads the model in `directory`.
    public static func load(directory: URL) throws -> LoadedModel {
        let config = try ModelConfig.load(directory: directory)
        return try build(config: config, weights: try weights(directory: directory))
    }

    /// Builds the architecture `config.modelType` from `weights`, after ``ModelConfig/validate()``.
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

    /// Loads a causal language model, or throws if the directory holds something else.
    public static func loadCausalLM(directory: URL) throws -> any CausalLanguageModel {
        guard case .causalLM(let m) = try load(directory: directory) else {
            throw ModelError.invalidConfig("\(directory.path) is not a causal language model")
        }
        return m
    }
}
