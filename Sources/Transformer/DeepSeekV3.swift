/// DeepSeek-V3 (`model_type: deepseek_v3`, HF `DeepseekV3ForCausalLM`): multi-head latent attention
/// (``MultiHeadLatentAttention``) and, after the first `first_k_dense_replace` dense SwiGLU layers, a
/// ``MixtureOfExperts`` with sigmoid, group-limited, bias-corrected routing (`noaux_tc`) plus shared experts.
///
/// HF weight names (per layer `model.layers.{i}`):
/// - attention `self_attn.`: `q_proj` (no q LoRA) or `q_a_proj` + `q_a_layernorm` + `q_b_proj`;
///   `kv_a_proj_with_mqa`, `kv_a_layernorm`, `kv_b_proj`, `o_proj`;
/// - dense layers: `mlp.gate_proj/up_proj/down_proj` (`intermediate_size`);
/// - MoE layers: `mlp.gate.weight` `[n_routed_experts, hidden]`, `mlp.gate.e_score_correction_bias`,
///   `mlp.experts.{e}.gate_proj/up_proj/down_proj` (`moe_intermediate_size`; or transformers-5's fused
///   `mlp.experts.gate_up_proj` `[E, 2I, hidden]` + `mlp.experts.down_proj` `[E, hidden, I]`),
///   `mlp.shared_experts.*` (`moe_intermediate_size × n_shared_experts`);
/// - `input_layernorm`, `post_attention_layernorm`; `model.embed_tokens`, `model.norm`, `lm_head`.
/// Multi-token-prediction layers (`model.layers.{num_hidden_layers}…`) are ignored.
///
/// Matching HF details: `q_a_layernorm`/`kv_a_layernorm` use eps 1e-6 regardless of `rms_norm_eps`;
/// `attention_bias` adds biases to `q_a_proj`, `kv_a_proj_with_mqa` and `o_proj` only; RoPE covers
/// `qk_rope_head_dim` features (HF sets `head_dim = qk_rope_head_dim`), interleaved unless `rope_interleave` is
/// false; the score scale is `qk_head_dim^−½` times YaRN's `mscale_all_dim` factor squared.
/// Routing hyper-parameters missing from the config take HF's defaults (`n_group` 8, `topk_group` 4,
/// `num_experts_per_tok` 8, `first_k_dense_replace` 3, `routed_scaling_factor` 2.5, `norm_topk_prob` true,
/// `n_shared_experts` 1); sizes are required.
public enum DeepSeekV3 {
    /// Builds the model with absorbed MLA (the compact latent KV cache).
    public static func build(config c: ModelConfig, weights w: Weights) throws -> DecoderModel {
        try build(config: c, weights: w, attentionMode: .absorbed)
    }

    /// Sizes and routing read from the config, validated.
    struct Dimensions {
        let vocab, hidden, layers, heads, maxPositions, intermediate: Int
        let qLoraRank: Int?
        let kvLoraRank, nope, rope, value: Int
        let experts, moeIntermediate, sharedExperts, expertsPerToken, groups, topGroups, denseLayers: Int
        let scalingFactor: Double
        let normalize: Bool
        let eps: Double

        init(_ c: ModelConfig) throws {
            vocab = try c.require(c.vocabSize, "vocab_size")
            hidden = try c.require(c.hiddenSize, "hidden_size")
            layers = try c.require(c.numHiddenLayers, "num_hidden_layers")
            heads = try c.require(c.numAttentionHeads, "num_attention_heads")
            if let kv = c.numKeyValueHeads {
                // HF expands kv_b_proj to num_attention_heads heads and then repeats them by heads / kv heads.
                try c.check(kv == heads, "num_key_value_heads (\(kv)) must equal num_attention_heads (\(heads)) for MLA")
            }
            maxPositions = try c.require(c.maxPositionEmbeddings ?? 4096, "max_position_embeddings")
            intermediate = try c.require(c.intermediateSize, "intermediate_size")
            qLoraRank = try c.qLoraRank.map { try c.require($0, "q_lora_rank") }
            kvLoraRank = try c.require(c.kvLoraRank, "kv_lora_rank")
            nope = try c.require(c.qkNopeHeadDim, "qk_nope_head_dim")
            rope = try c.require(c.qkRopeHeadDim, "qk_rope_head_dim")
            try c.check(rope % 2 == 0, "qk_rope_head_dim (\(rope)) must be even")
            value = try c.require(c.vHeadDim, "v_head_dim")
            eps = c.rmsNormEps ?? 1e-6
            if let act = c.hiddenAct { try c.check(act == "silu", "hidden_act '\(act)' is not supported (silu)") }
            if let f = c.rope.partialRotaryFactor {
                try c.check(f == 1, "partial_rotary_factor \(f) is not supported (RoPE covers qk_rope_head_dim)")
            }

            experts = try c.require(c.nRoutedExperts ?? c.numLocalExperts, "n_routed_experts")
            moeIntermediate = try c.require(c.moeIntermediateSize, "moe_intermediate_size")
            sharedExperts = c.nSharedExperts ?? 1
            try c.check(sharedExperts >= 0, "n_shared_experts must be ≥ 0, got \(sharedExperts)")
            expertsPerToken = try c.require(c.numExpertsPerTok ?? 8, "num_experts_per_tok")
            groups = try c.require(c.nGroup ?? 8, "n_group")
            topGroups = try c.require(c.topkGroup ?? 4, "topk_group")
            denseLayers = c.firstKDenseReplace ?? 3
            try c.check(denseLayers >= 0, "first_k_dense_replace must be ≥ 0, got \(denseLayers)")
            scalingFactor = c.routedScalingFactor ?? 2.5
            normalize = c.normTopkProb ?? true
            let scoring = c.scoringFunc ?? "sigmoid"
            try c.check(scoring == "sigmoid",
                        "scoring_func '\(scoring)' is not supported (DeepSeek-V3 routes with sigmoid scores)")
            let method = c.topkMethod ?? "noaux_tc"
            try c.check(method == "noaux_tc",
                        "topk_method '\(method)' is not supported (DeepSeek-V3 selects experts with noaux_tc)")
            if denseLayers < layers {  // the routing matters only if some layer is MoE
                try c.check(experts % groups == 0, "n_group (\(groups)) does not divide n_routed_experts (\(experts))")
                try c.check(topGroups <= groups, "topk_group (\(topGroups)) exceeds n_group (\(groups))")
                try c.check(expertsPerToken <= experts,
                            "num_experts_per_tok (\(expertsPerToken)) exceeds n_routed_experts (\(experts))")
                let kept = topGroups * (experts / groups)
                try c.check(expertsPerToken <= kept,
                            "num_experts_per_tok (\(expertsPerToken)) exceeds the \(kept) experts of the topk_group (\(topGroups)) kept groups")
            }
        }
    }

    /// Builds the model with the given MLA mode (``MultiHeadLatentAttention/Mode``).
    public static func build(config c: ModelConfig, weights w: Weights,
                             attentionMode: MultiHeadLatentAttention.Mode) throws -> DecoderModel {
        let d = try Dimensions(c)
        let rope = RoPE(rotaryDim: d.rope, base: c.rope.ropeTheta ?? 10_000, maxPositions: d.maxPositions,
                        layout: (c.ropeInterleave ?? true) ? .interleaved : .halfSplit,
                        scaling: try c.rope.scaling(modelType: c.modelType))
        let bias = c.attentionBias ?? false
        let qk = d.nope + d.rope
        let norm = { (prefix: String) in try w.rmsNorm(prefix, size: d.hidden, eps: d.eps) }
        return try DecoderModel.assemble(config: c, weights: w, vocab: d.vocab, hidden: d.hidden, layers: d.layers,
                                         maxPositions: d.maxPositions, norm: norm) { i in
            let p = "model.layers.\(i)"
            let a = "\(p).self_attn"
            let query: MultiHeadLatentAttention.QueryProjection
            if let rank = d.qLoraRank {
                query = .lowRank(down: try w.linear("\(a).q_a_proj", out: rank, in: d.hidden, bias: bias),
                                 norm: try w.rmsNorm("\(a).q_a_layernorm", size: rank, eps: 1e-6),
                                 up: try w.linear("\(a).q_b_proj", out: d.heads * qk, in: rank))
            } else {
                query = .direct(try w.linear("\(a).q_proj", out: d.heads * qk, in: d.hidden))
            }
            let attention = MultiHeadLatentAttention(
                query: query,
                latent: try w.linear("\(a).kv_a_proj_with_mqa", out: d.kvLoraRank + d.rope, in: d.hidden, bias: bias),
                latentNorm: try w.rmsNorm("\(a).kv_a_layernorm", size: d.kvLoraRank, eps: 1e-6),
                kvUp: try w.linear("\(a).kv_b_proj", out: d.heads * (d.nope + d.value), in: d.kvLoraRank),
                output: try w.linear("\(a).o_proj", out: d.hidden, in: d.heads * d.value, bias: bias),
                heads: d.heads, nopeDim: d.nope, ropeDim: d.rope, valueDim: d.value, rope: rope, mode: attentionMode)
            let feedForward: any FeedForward = i < d.denseLayers
                ? try Llama.mlp(w, "\(p).mlp", hidden: d.hidden, intermediate: d.intermediate)
                : try moe(w, "\(p).mlp", d)
            return DecoderLayer(attentionNorm: try norm("\(p).input_layernorm"), attention: attention,
                                feedForwardNorm: try norm("\(p).post_attention_layernorm"), feedForward: feedForward)
        }
    }

    static func moe(_ w: Weights, _ p: String, _ d: Dimensions) throws -> MixtureOfExperts {
        let (E, I, hidden) = (d.experts, d.moeIntermediate, d.hidden)
        let experts: [SwiGLU]
        if w.contains("\(p).experts.gate_up_proj") && !w.contains("\(p).experts.0.gate_proj.weight") {
            // transformers-5 fused layout: gate_up_proj [E, 2I, hidden] (gate rows, then up), down_proj [E, hidden, I].
            let gateUp = try w("\(p).experts.gate_up_proj", [E, 2 * I, hidden])
            let down = try w("\(p).experts.down_proj", [E, hidden, I])
            experts = (0..<E).map { e in
                let gu = gateUp.sliced(axis: 0, e..<(e + 1)).reshaped([2 * I, hidden])
                return SwiGLU(gate: Linear(weight: gu.sliced(axis: 0, 0..<I)),
                              up: Linear(weight: gu.sliced(axis: 0, I..<(2 * I))),
                              down: Linear(weight: down.sliced(axis: 0, e..<(e + 1)).reshaped([hidden, I])))
            }
        } else {
            experts = try (0..<E).map { e in try Llama.mlp(w, "\(p).experts.\(e)", hidden: hidden, intermediate: I) }
        }
        let shared = d.sharedExperts > 0
            ? try Llama.mlp(w, "\(p).shared_experts", hidden: hidden, intermediate: I * d.sharedExperts) : nil
        return MixtureOfExperts(
            router: try w.linear("\(p).gate", out: E, in: hidden),
            routing: .deepSeek(k: d.expertsPerToken, bias: try w("\(p).gate.e_score_correction_bias", [E]),
                               groups: d.groups, topGroups: d.topGroups, normalize: d.normalize,
                               scale: Float(d.scalingFactor)),
            experts: experts, shared: shared)
    }
}
