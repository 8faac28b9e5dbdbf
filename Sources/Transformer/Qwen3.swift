/// Qwen3: the Qwen2 decoder without the q/k/v biases (`attention_bias`, default false, applies to all four
/// projections) and with an RMSNorm over each query and key head before RoPE (`q_norm`, `k_norm`, weight
/// `[head_dim]`). `head_dim` comes from the config (it need not be hidden / heads).
///
/// Qwen3-MoE (`qwen3_moe`) replaces the MLP of every `decoder_sparse_step`-th layer (except `mlp_only_layers`) by a
/// softmax top-`num_experts_per_tok` mixture of `num_experts` SwiGLU experts (`norm_topk_prob` renormalises the
/// chosen weights), run by ``MixtureOfExperts``.
///
/// HF weight names: as Qwen2, plus `model.layers.{i}.self_attn.{q,k}_norm.weight`; MoE layers
/// `model.layers.{i}.mlp.gate.weight` (router) and `model.layers.{i}.mlp.experts.{e}.{gate,up,down}_proj.weight`.
public enum Qwen3 {
    /// Builds a Qwen3 (dense) or Qwen3-MoE causal LM from its HF config and weights.
    public static func build(config c: ModelConfig, weights w: Weights) throws -> DecoderModel {
        let d = try Llama.Dimensions(c)
        let moe = c.modelType == "qwen3_moe"
        let intermediate = try c.require(c.intermediateSize ?? (moe ? 1 : nil), "intermediate_size")
        var sparse: (experts: Int, k: Int, size: Int, step: Int, dense: Set<Int>)?
        if moe {
            let experts = try c.require(c.numExperts ?? c.numLocalExperts, "num_experts")  // transformers 5 writes num_local_experts
            let k = try c.require(c.numExpertsPerTok, "num_experts_per_tok")
            try c.check(k <= experts, "num_experts_per_tok (\(k)) exceeds num_experts (\(experts))")
            sparse = (experts, k, try c.require(c.moeIntermediateSize, "moe_intermediate_size"),
                      try c.require(c.decoderSparseStep ?? 1, "decoder_sparse_step"), Set(c.mlpOnlyLayers ?? []))
        }
        return try Llama.decoder(config: c, dims: d, weights: w, qkNorm: true,
                                 window: try Qwen2.slidingWindows(c, defaultMaxWindowLayers: 28)) { i in
            let p = "model.layers.\(i).mlp"
            guard let s = sparse, !s.dense.contains(i), (i + 1) % s.step == 0 else {
                return try Llama.mlp(w, p, hidden: d.hidden, intermediate: intermediate)
            }
            return MixtureOfExperts(
                router: try w.linear("\(p).gate", out: s.experts, in: d.hidden),
                routing: .softmaxTopK(k: s.k, normalize: c.normTopkProb ?? false),
                experts: try (0..<s.experts).map { e in
                    try Llama.mlp(w, "\(p).experts.\(e)", hidden: d.hidden, intermediate: s.size)
                })
        }
    }
}
