import Foundation

/// A Hugging Face `config.json`, decoded with HF's field names. Every architecture reads the fields it needs and
/// validates them (``ModelError/invalidConfig(_:)``); unknown fields are ignored.
public struct ModelConfig: Decodable, Sendable {
    public var modelType: String
    public var vocabSize: Int?
    public var hiddenSize: Int?
    public var intermediateSize: Int?
    public var numHiddenLayers: Int?
    public var numAttentionHeads: Int?
    public var numKeyValueHeads: Int?
    public var headDim: Int?
    public var maxPositionEmbeddings: Int?
    public var rmsNormEps: Double?
    public var layerNormEps: Double?
    public var tieWordEmbeddings: Bool?
    public var attentionBias: Bool?
    public var mlpBias: Bool?
    public var slidingWindow: Int?
    public var hiddenAct: String?
    public var bosTokenId: [Int]?
    public var eosTokenId: [Int]?
    public var padTokenId: Int?
    /// `rope_parameters` (transformers ≥ 5) or `rope_theta` + `rope_scaling` (older checkpoints), merged.
    public var rope: RopeParameters
    // Mixture of experts.
    public var numLocalExperts: Int?
    public var numExpertsPerTok: Int?
    public var nRoutedExperts: Int?
    public var nSharedExperts: Int?
    public var moeIntermediateSize: Int?
    public var nGroup: Int?
    public var topkGroup: Int?
    public var routedScalingFactor: Double?
    public var normTopkProb: Bool?
    public var firstKDenseReplace: Int?
    public var scoringFunc: String?
    /// DeepSeek expert selection (`topk_method`, original release configs): only `noaux_tc` is DeepSeek-V3's.
    public var topkMethod: String?
    // DeepSeek multi-head latent attention.
    public var qLoraRank: Int?
    public var kvLoraRank: Int?
    public var qkNopeHeadDim: Int?
    public var qkRopeHeadDim: Int?
    public var vHeadDim: Int?
    public var ropeInterleave: Bool?
    // Encoders (RoFormer).
    public var typeVocabSize: Int?
    public var embeddingSize: Int?
    public var rotaryValue: Bool?
    public var numLabels: Int?
    // Model families (Qwen2/3, Gemma 2, Phi-3, BERT).
    /// `architectures` (e.g. `BertForSequenceClassification`).
    public var architectures: [String]?
    /// Per-layer attention kind, `sliding_attention` / `full_attention` (transformers ≥ 4.53 configs).
    public var layerTypes: [String]?
    /// Qwen2/Qwen3: `sliding_window` only applies when this is true (from layer `max_window_layers` on).
    public var useSlidingWindow: Bool?
    public var maxWindowLayers: Int?
    /// Gemma 2: queries scaled by `query_pre_attn_scalar^-0.5`.
    public var queryPreAttnScalar: Double?
    /// Gemma 2: attention scores → cap·tanh(s/cap).
    public var attnLogitSoftcapping: Double?
    /// Gemma 2: logits → cap·tanh(z/cap).
    public var finalLogitSoftcapping: Double?
    /// Gemma 2's MLP activation (`hidden_activation`, preferred over `hidden_act`).
    public var hiddenActivation: String?
    /// Qwen3-MoE: `num_experts`, `decoder_sparse_step`, `mlp_only_layers`.
    public var numExperts: Int?
    public var decoderSparseStep: Int?
    public var mlpOnlyLayers: [Int]?
    /// BERT: `position_embedding_type` (only `absolute` is supported).
    public var positionEmbeddingType: String?

    /// A config with only `model_type` set (every other field absent): fill in the fields a source provides, e.g.
    /// the GGUF metadata mapping of ``GGUFCheckpoint/config()``.
    public init(modelType: String) {
        self.modelType = modelType
        rope = RopeParameters()
    }

    /// Reads and decodes `config.json` in `directory`.
    public static func load(directory: URL) throws -> ModelConfig {
        let url = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ModelError.io("cannot read \(url.path)")
        }
        do {
            return try JSONDecoder().decode(ModelConfig.self, from: data)
        } catch let error as ModelError {
            throw error
        } catch {
            throw ModelError.invalidConfig("\(url.path): \(error)")
        }
    }

    enum Key: String, CodingKey {
        case modelType = "model_type", vocabSize = "vocab_size", hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", numKeyValueHeads = "num_key_value_heads", headDim = "head_dim"
        case maxPositionEmbeddings = "max_position_embeddings", rmsNormEps = "rms_norm_eps", layerNormEps = "layer_norm_eps"
        case tieWordEmbeddings = "tie_word_embeddings", attentionBias = "attention_bias", mlpBias = "mlp_bias"
        case slidingWindow = "sliding_window", hiddenAct = "hidden_act", bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id", padTokenId = "pad_token_id"
        case ropeTheta = "rope_theta", ropeScaling = "rope_scaling", ropeParameters = "rope_parameters"
        case partialRotaryFactor = "partial_rotary_factor"
        case numLocalExperts = "num_local_experts", numExpertsPerTok = "num_experts_per_tok"
        case nRoutedExperts = "n_routed_experts", nSharedExperts = "n_shared_experts"
        case moeIntermediateSize = "moe_intermediate_size", nGroup = "n_group", topkGroup = "topk_group"
        case routedScalingFactor = "routed_scaling_factor", normTopkProb = "norm_topk_prob"
        case firstKDenseReplace = "first_k_dense_replace", scoringFunc = "scoring_func", topkMethod = "topk_method"
        case qLoraRank = "q_lora_rank", kvLoraRank = "kv_lora_rank", qkNopeHeadDim = "qk_nope_head_dim"
        case qkRopeHeadDim = "qk_rope_head_dim", vHeadDim = "v_head_dim", ropeInterleave = "rope_interleave"
        case typeVocabSize = "type_vocab_size", embeddingSize = "embedding_size", rotaryValue = "rotary_value"
        case numLabels = "num_labels", id2label
        case architectures, layerTypes = "layer_types", useSlidingWindow = "use_sliding_window"
        case maxWindowLayers = "max_window_layers", queryPreAttnScalar = "query_pre_attn_scalar"
        case attnLogitSoftcapping = "attn_logit_softcapping", finalLogitSoftcapping = "final_logit_softcapping"
        case hiddenActivation = "hidden_activation", numExperts = "num_experts"
        case decoderSparseStep = "decoder_sparse_step", mlpOnlyLayers = "mlp_only_layers"
        case positionEmbeddingType = "position_embedding_type"
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        modelType = try c.decode(String.self, forKey: .modelType)
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize)
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize)
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers)
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads)
        numKeyValueHeads = try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads)
        headDim = try c.decodeIfPresent(Int.self, forKey: .headDim)
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings)
        rmsNormEps = try c.decodeIfPresent(Double.self, forKey: .rmsNormEps)
        layerNormEps = try c.decodeIfPresent(Double.self, forKey: .layerNormEps)
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings)
        attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias)
        mlpBias = try c.decodeIfPresent(Bool.self, forKey: .mlpBias)
        slidingWindow = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct)
        bosTokenId = try Self.intOrList(c, .bosTokenId)
        eosTokenId = try Self.intOrList(c, .eosTokenId)
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId)
        // RoPE: rope_parameters wins; otherwise rope_theta + rope_scaling.
        var rope = try c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
            ?? c.decodeIfPresent(RopeParameters.self, forKey: .ropeScaling) ?? RopeParameters()
        if rope.ropeTheta == nil { rope.ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) }
        if rope.partialRotaryFactor == nil {
            rope.partialRotaryFactor = try c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor)
        }
        // Phi-3 keeps original_max_position_embeddings at the top level (HF gives it priority).
        if let original = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings) {
            rope.originalMaxPositionEmbeddings = original
        }
        self.rope = rope
        numLocalExperts = try c.decodeIfPresent(Int.self, forKey: .numLocalExperts)
        numExpertsPerTok = try c.decodeIfPresent(Int.self, forKey: .numExpertsPerTok)
        nRoutedExperts = try c.decodeIfPresent(Int.self, forKey: .nRoutedExperts)
        nSharedExperts = try c.decodeIfPresent(Int.self, forKey: .nSharedExperts)
        moeIntermediateSize = try c.decodeIfPresent(Int.self, forKey: .moeIntermediateSize)
        nGroup = try c.decodeIfPresent(Int.self, forKey: .nGroup)
        topkGroup = try c.decodeIfPresent(Int.self, forKey: .topkGroup)
        routedScalingFactor = try c.decodeIfPresent(Double.self, forKey: .routedScalingFactor)
        normTopkProb = try c.decodeIfPresent(Bool.self, forKey: .normTopkProb)
        firstKDenseReplace = try c.decodeIfPresent(Int.self, forKey: .firstKDenseReplace)
        scoringFunc = try c.decodeIfPresent(String.self, forKey: .scoringFunc)
        topkMethod = try c.decodeIfPresent(String.self, forKey: .topkMethod)
        qLoraRank = try c.decodeIfPresent(Int.self, forKey: .qLoraRank)
        kvLoraRank = try c.decodeIfPresent(Int.self, forKey: .kvLoraRank)
        qkNopeHeadDim = try c.decodeIfPresent(Int.self, forKey: .qkNopeHeadDim)
        qkRopeHeadDim = try c.decodeIfPresent(Int.self, forKey: .qkRopeHeadDim)
        vHeadDim = try c.decodeIfPresent(Int.self, forKey: .vHeadDim)
        ropeInterleave = try c.decodeIfPresent(Bool.self, forKey: .ropeInterleave)
        typeVocabSize = try c.decodeIfPresent(Int.self, forKey: .typeVocabSize)
        embeddingSize = try c.decodeIfPresent(Int.self, forKey: .embeddingSize)
        rotaryValue = try c.decodeIfPresent(Bool.self, forKey: .rotaryValue)
        numLabels = try c.decodeIfPresent(Int.self, forKey: .numLabels)
        if numLabels == nil, let labels = try c.decodeIfPresent([String: String].self, forKey: .id2label) {
            numLabels = labels.count
        }
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        layerTypes = try c.decodeIfPresent([String].self, forKey: .layerTypes)
        useSlidingWindow = try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow)
        maxWindowLayers = try c.decodeIfPresent(Int.self, forKey: .maxWindowLayers)
        queryPreAttnScalar = try c.decodeIfPresent(Double.self, forKey: .queryPreAttnScalar)
        attnLogitSoftcapping = try c.decodeIfPresent(Double.self, forKey: .attnLogitSoftcapping)
        finalLogitSoftcapping = try c.decodeIfPresent(Double.self, forKey: .finalLogitSoftcapping)
        hiddenActivation = try c.decodeIfPresent(String.self, forKey: .hiddenActivation)
        numExperts = try c.decodeIfPresent(Int.self, forKey: .numExperts)
        decoderSparseStep = try c.decodeIfPresent(Int.self, forKey: .decoderSparseStep)
        mlpOnlyLayers = try c.decodeIfPresent([Int].self, forKey: .mlpOnlyLayers)
        positionEmbeddingType = try c.decodeIfPresent(String.self, forKey: .positionEmbeddingType)
    }

    /// Whether layer `i` uses sliding-window attention: `layer_types[i]` when the config lists them, else `fallback`.
    public func isSlidingLayer(_ i: Int, fallback: Bool) -> Bool {
        guard let types = layerTypes, i < types.count else { return fallback }
        return types[i] == "sliding_attention"
    }

    private static func intOrList(_ c: KeyedDecodingContainer<Key>, _ key: Key) throws -> [Int]? {
        if let one = try? c.decodeIfPresent(Int.self, forKey: key) { return [one] }
        return try? c.decodeIfPresent([Int].self, forKey: key)
    }

    /// A required positive integer field, or a thrown error naming it.
    public func require(_ value: Int?, _ name: String) throws -> Int {
        guard let value else { throw ModelError.invalidConfig("\(modelType): config.json has no \(name)") }
        guard value > 0 else { throw ModelError.invalidConfig("\(modelType): \(name) must be positive, got \(value)") }
        return value
    }

    /// Throws `message` unless `condition` holds.
    public func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
        if !condition { throw ModelError.invalidConfig("\(modelType): \(message())") }
    }

    /// Largest value any size field may take (2^26 ≈ 67 M: far above any real vocabulary, width, layer count or
    /// context, yet small enough that products of two sizes cannot overflow and nothing absurd is allocated).
    public static let maxSize = 1 << 26

    /// Checks every field that is present, before anything is built or allocated from it, and throws
    /// ``ModelError/invalidConfig(_:)`` naming the first bad one (HF spelling): sizes positive and at most
    /// ``maxSize``, `num_attention_heads` dividing `hidden_size` when there is no `head_dim`, `num_key_value_heads`
    /// dividing `num_attention_heads`, epsilons finite and positive, RoPE
    /// parameters sane (`rope_theta` > 1, scaling factor > 0, YaRN's original context > 0, finite betas and mscales,
    /// `partial_rotary_factor` in (0, 1]). Architecture builders still check what only they know (which fields are
    /// required, how sizes combine). ``ModelLoader/build(config:weights:)`` calls this first.
    public func validate() throws {
        let sizes: [(String, Int?)] = [
            ("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim),
            ("max_position_embeddings", maxPositionEmbeddings), ("sliding_window", slidingWindow),
            ("num_local_experts", numLocalExperts), ("num_experts_per_tok", numExpertsPerTok),
            ("n_routed_experts", nRoutedExperts), ("moe_intermediate_size", moeIntermediateSize), ("n_group", nGroup),
            ("topk_group", topkGroup), ("q_lora_rank", qLoraRank), ("kv_lora_rank", kvLoraRank),
            ("qk_nope_head_dim", qkNopeHeadDim), ("qk_rope_head_dim", qkRopeHeadDim), ("v_head_dim", vHeadDim),
            ("type_vocab_size", typeVocabSize), ("embedding_size", embeddingSize), ("num_labels", numLabels),
            ("rope_scaling.original_max_position_embeddings", rope.originalMaxPositionEmbeddings),
        ]
        for case let (name, value?) in sizes {
            try check(value > 0, "\(name) must be positive, got \(value)")
            try check(value <= Self.maxSize, "\(name) = \(value) is absurdly large (at most \(Self.maxSize))")
        }
        for case let (name, value?) in [("n_shared_experts", nSharedExperts), ("first_k_dense_replace", firstKDenseReplace)] {
            try check(value >= 0 && value <= Self.maxSize, "\(name) must be in 0...\(Self.maxSize), got \(value)")
        }
        if headDim == nil, modelType != "deepseek_v3", let hidden = hiddenSize, let heads = numAttentionHeads {
            // Without head_dim the head size is hidden_size / num_attention_heads (DeepSeek's MLA sizes its heads
            // with qk_nope_head_dim / qk_rope_head_dim / v_head_dim instead).
            try check(hidden % heads == 0, "num_attention_heads (\(heads)) does not divide hidden_size (\(hidden))")
        }
        if let heads = numAttentionHeads, let kv = numKeyValueHeads {
            try check(heads % kv == 0, "num_key_value_heads (\(kv)) does not divide num_attention_heads (\(heads))")
        }
        if let eps = rmsNormEps { try check(eps.isFinite && eps > 0, "rms_norm_eps must be finite and positive, got \(eps)") }
        if let eps = layerNormEps {
            try check(eps.isFinite && eps >= 0, "layer_norm_eps must be finite and non-negative, got \(eps)")
        }
        if let f = routedScalingFactor { try check(f.isFinite, "routed_scaling_factor must be finite, got \(f)") }
        try rope.validate(modelType: modelType)
    }
}

/// RoPE settings in either HF spelling: `rope_parameters` (transformers ≥ 5) or the older `rope_scaling` dictionary
/// next to a top-level `rope_theta`.
public struct RopeParameters: Decodable, Sendable, Equatable {
    public var ropeType: String?
    public var ropeTheta: Double?
    public var factor: Double?
    public var originalMaxPositionEmbeddings: Int?
    public var betaFast: Double?
    public var betaSlow: Double?
    public var mscale: Double?
    public var mscaleAllDim: Double?
    public var partialRotaryFactor: Double?
    /// LongRoPE (Phi-3 `longrope`, formerly `su`): per-pair frequency divisors and the attention factor.
    public var shortFactor: [Double]?
    public var longFactor: [Double]?
    public var attentionFactor: Double?

    public init() {}

    enum Key: String, CodingKey {
        case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case betaFast = "beta_fast", betaSlow = "beta_slow", mscale, mscaleAllDim = "mscale_all_dim"
        case partialRotaryFactor = "partial_rotary_factor"
        case shortFactor = "short_factor", longFactor = "long_factor", attentionFactor = "attention_factor"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        ropeType = try c.decodeIfPresent(String.self, forKey: .ropeType) ?? c.decodeIfPresent(String.self, forKey: .type)
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        factor = try c.decodeIfPresent(Double.self, forKey: .factor)
        originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings)
        betaFast = try c.decodeIfPresent(Double.self, forKey: .betaFast)
        betaSlow = try c.decodeIfPresent(Double.self, forKey: .betaSlow)
        mscale = try c.decodeIfPresent(Double.self, forKey: .mscale)
        mscaleAllDim = try c.decodeIfPresent(Double.self, forKey: .mscaleAllDim)
        partialRotaryFactor = try c.decodeIfPresent(Double.self, forKey: .partialRotaryFactor)
        shortFactor = try c.decodeIfPresent([Double].self, forKey: .shortFactor)
        longFactor = try c.decodeIfPresent([Double].self, forKey: .longFactor)
        attentionFactor = try c.decodeIfPresent(Double.self, forKey: .attentionFactor)
    }

    /// Throws ``ModelError/invalidConfig(_:)`` naming the first present parameter outside what ``RoPE`` accepts.
    public func validate(modelType: String) throws {
        func check(_ ok: Bool, _ message: String) throws {
            if !ok { throw ModelError.invalidConfig("\(modelType): \(message)") }
        }
        if let theta = ropeTheta { try check(theta.isFinite && theta > 1, "rope_theta must be a finite number > 1, got \(theta)") }
        if let f = factor { try check(f.isFinite && f > 0, "rope_scaling.factor must be finite and positive, got \(f)") }
        if let n = originalMaxPositionEmbeddings {
            try check(n > 0, "rope_scaling.original_max_position_embeddings must be positive, got \(n)")
        }
        for case let (name, value?) in [("beta_fast", betaFast), ("beta_slow", betaSlow)] {
            try check(value.isFinite && value > 0, "rope_scaling.\(name) must be finite and positive, got \(value)")
        }
        for case let (name, value?) in [("mscale", mscale), ("mscale_all_dim", mscaleAllDim)] {
            try check(value.isFinite, "rope_scaling.\(name) must be finite, got \(value)")
        }
        if let p = partialRotaryFactor {
            try check(p.isFinite && p > 0 && p <= 1, "partial_rotary_factor must be in (0, 1], got \(p)")
        }
    }

    /// The scaling these parameters describe (nil for default RoPE); unsupported types are an error.
    /// LongRoPE needs the model's `maxPositions` (its default factor is `max_position_embeddings /
    /// original_max_position_embeddings`) and `rotaryDim` (each factor list has `rotaryDim / 2` entries).
    public func scaling(modelType: String, maxPositions: Int? = nil, rotaryDim: Int? = nil) throws -> RoPE.Scaling? {
        try validate(modelType: modelType)
        switch ropeType ?? "default" {
        case "default": return nil
        case "linear":
            guard let factor else { throw ModelError.invalidConfig("\(modelType): linear rope scaling needs a factor") }
            return .linear(factor: factor)
        case "yarn" where modelType != "phi3":
            guard let factor, let original = originalMaxPositionEmbeddings else {
                throw ModelError.invalidConfig("\(modelType): yarn rope scaling needs factor and original_max_position_embeddings")
            }
            return .yarn(factor: factor, originalMaxPositions: original, betaFast: betaFast ?? 32, betaSlow: betaSlow ?? 1,
                         mscale: mscale, mscaleAllDim: mscaleAllDim)
        case "longrope", "su", "yarn":  // Phi-3's older configs say "su" or "yarn" for LongRoPE (HF renames them)
            guard let shortFactor, let longFactor, let original = originalMaxPositionEmbeddings, original > 0 else {
                throw ModelError.invalidConfig(
                    "\(modelType): longrope scaling needs short_factor, long_factor and original_max_position_embeddings")
            }
            if let rotaryDim, shortFactor.count != rotaryDim / 2 || longFactor.count != rotaryDim / 2 {
                throw ModelError.invalidConfig("\(modelType): longrope short_factor (\(shortFactor.count)) and long_factor "
                                               + "(\(longFactor.count)) must have rotary dim / 2 = \(rotaryDim / 2) entries")
            }
            guard (shortFactor + longFactor).allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw ModelError.invalidConfig("\(modelType): longrope factors must be positive and finite")
            }
            let f = factor ?? Double(maxPositions ?? original) / Double(original)
            let attention = attentionFactor ?? (f <= 1 ? 1 : (1 + Foundation.log(f) / Foundation.log(Double(original))).squareRoot())
            return .longrope(shortFactor: shortFactor, longFactor: longFactor, originalMaxPositions: original,
                             attentionFactor: attention)
        case let other:
            throw ModelError.invalidConfig("\(modelType): rope type '\(other)' is not supported (default, linear, yarn, longrope)")
        }
    }
}

/// Problems loading a model: each names the file, field or tensor concerned.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case io(String)
    case invalidConfig(String)
    case unsupportedModelType(String)
    case missingTensor(String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])

    public var description: String {
        switch self {
        case .io(let s): return "I/O error: \(s)"
        case .invalidConfig(let s): return "invalid config: \(s)"
        case .unsupportedModelType(let t):
            return "unsupported model_type '\(t)' (supported: \(ModelLoader.supportedTypes.joined(separator: ", ")))"
        case .missingTensor(let n): return "missing tensor '\(n)' in the checkpoint"
        case .shapeMismatch(let n, let e, let f): return "tensor '\(n)' has shape \(f), the config implies \(e)"
        }
    }
}
