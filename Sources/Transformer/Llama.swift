/// Llama (and Mistral): RMSNorm, half-split RoPE, MHA / GQA / MQA from `num_key_value_heads`, SwiGLU MLP.
///
/// HF weight names: `model.embed_tokens`, `model.layers.{i}.input_layernorm`,
/// `model.layers.{i}.self_attn.{q,k,v,o}_proj`, `model.layers.{i}.post_attention_layernorm`,
/// `model.layers.{i}.mlp.{gate,up,down}_proj`, `model.norm`, `lm_head` (absent with `tie_word_embeddings`).
public enum Llama {
    /// Sizes shared by Llama-style attention (also used by Mixtral).
    struct Dimensions {
        let vocab, hidden, layers, heads, kvHeads, headDim, maxPositions: Int
        let eps: Double

        init(_ c: ModelConfig) throws {
            vocab = try c.require(c.vocabSize, "vocab_size")
            hidden = try c.require(c.hiddenSize, "hidden_size")
            layers = try c.require(c.numHiddenLayers, "num_hidden_layers")
            heads = try c.require(c.numAttentionHeads, "num_attention_heads")
            kvHeads = try c.require(c.numKeyValueHeads ?? heads, "num_key_value_heads")
            if let d = c.headDim { headDim = try c.require(d, "head_dim") } else {
                try c.check(hidden % heads == 0, "num_attention_heads (\(heads)) does not divide hidden_size (\(hidden))")
                headDim = hidden / heads
            }
            try c.check(heads % kvHeads == 0, "num_key_value_heads (\(kvHeads)) does not divide num_attention_heads (\(heads))")
            maxPositions = try c.require(c.maxPositionEmbeddings ?? 2048, "max_position_embeddings")
            eps = c.rmsNormEps ?? 1e-6
            if let act = c.hiddenAct { try c.check(act == "silu", "hidden_act '\(act)' is not supported (silu)") }
        }
    }

    /// The SwiGLU MLP at `prefix` (`gate_proj`, `up_proj`, `down_proj`).
    static func mlp(_ w: Weights, _ prefix: String, hidden: Int, intermediate: Int, bias: Bool = false) throws -> SwiGLU {
        SwiGLU(gate: try w.linear("\(prefix).gate_proj", out: intermediate, in: hidden, bias: bias),
               up: try w.linear("\(prefix).up_proj", out: intermediate, in: hidden, bias: bias),
               down: try w.linear("\(prefix).down_proj", out: hidden, in: intermediate, bias: bias))
    }

    /// Builds a Llama/Mistral causal LM.
    public static func build(config c: ModelConfig, weights w: Weights) throws -> DecoderModel {
        let d = try Dimensions(c)
        let intermediate = try c.require(c.intermediateSize, "intermediate_size")
        let mlpBias = c.mlpBias ?? false
        return try decoder(config: c, dims: d, weights: w) { i in
            try mlp(w, "model.layers.\(i).mlp", hidden: d.hidden, intermediate: intermediate, bias: mlpBias)
        }
    }

    /// The Llama skeleton with a caller-chosen feed-forward per layer (Mixtral plugs in its MoE). Qwen2/Qwen3 set
    /// the attention variations: q/k/v vs output biases (default: `attention_bias` for all four), per-head q/k
    /// RMSNorm (`self_attn.q_norm` / `k_norm`), and the sliding window per layer (default: `sliding_window` everywhere).
    static func decoder(config c: ModelConfig, dims d: Dimensions, weights w: Weights,
                        qkvBias: Bool? = nil, outputBias: Bool? = nil, qkNorm: Bool = false,
                        window: ((Int) -> Int?)? = nil,
                        feedForward: (Int) throws -> any FeedForward) throws -> DecoderModel {
        let rotaryDim = Int((Double(d.headDim) * (c.rope.partialRotaryFactor ?? 1)).rounded())
        try c.check(rotaryDim % 2 == 0 && rotaryDim > 0, "rotary dimension \(rotaryDim) must be even and positive")
        let rope = RoPE(rotaryDim: rotaryDim, base: c.rope.ropeTheta ?? 10_000, maxPositions: d.maxPositions,
                        layout: .halfSplit, scaling: try c.rope.scaling(modelType: c.modelType, maxPositions: d.maxPositions,
                                                                          rotaryDim: rotaryDim))
        if let window = c.slidingWindow { try c.check(window > 0, "sliding_window must be positive, got \(window)") }
        let bias = qkvBias ?? c.attentionBias ?? false, oBias = outputBias ?? c.attentionBias ?? false
        let norm = { (prefix: String) in try w.rmsNorm(prefix, size: d.hidden, eps: d.eps) }
        return try DecoderModel.assemble(config: c, weights: w, vocab: d.vocab, hidden: d.hidden, layers: d.layers,
                                         maxPositions: d.maxPositions, norm: norm) { i in
            let p = "model.layers.\(i)"
            let attention = GroupedQueryAttention(
                query: try w.linear("\(p).self_attn.q_proj", out: d.heads * d.headDim, in: d.hidden, bias: bias),
                key: try w.linear("\(p).self_attn.k_proj", out: d.kvHeads * d.headDim, in: d.hidden, bias: bias),
                value: try w.linear("\(p).self_attn.v_proj", out: d.kvHeads * d.headDim, in: d.hidden, bias: bias),
                output: try w.linear("\(p).self_attn.o_proj", out: d.hidden, in: d.heads * d.headDim, bias: oBias),
                heads: d.heads, kvHeads: d.kvHeads, headDim: d.headDim, rope: rope,
                window: window != nil ? window!(i) : c.slidingWindow,
                queryNorm: qkNorm ? try w.rmsNorm("\(p).self_attn.q_norm", size: d.headDim, eps: d.eps) : nil,
                keyNorm: qkNorm ? try w.rmsNorm("\(p).self_attn.k_norm", size: d.headDim, eps: d.eps) : nil)
            return DecoderLayer(attentionNorm: try norm("\(p).input_layernorm"), attention: attention,
                                feedForwardNorm: try norm("\(p).post_attention_layernorm"), feedForward: try feedForward(i))
        }
    }
}
