/// Mixtral: Llama attention (GQA, half-split RoPE, optional sliding window) with a sparse mixture of SwiGLU experts
/// in place of the MLP: softmax router over `num_local_experts`, top `num_experts_per_tok`, weights renormalised.
///
/// HF weight names: as Llama for attention and norms; `model.layers.{i}.block_sparse_moe.gate` (router) and
/// `model.layers.{i}.block_sparse_moe.experts.{e}.w1/w3/w2` (gate / up / down).
public enum Mixtral {
    /// Builds a Mixtral causal LM from its HF config and weights.
    public static func build(config c: ModelConfig, weights w: Weights) throws -> DecoderModel {
        let d = try Llama.Dimensions(c)
        let intermediate = try c.require(c.intermediateSize, "intermediate_size")
        let experts = try c.require(c.numLocalExperts, "num_local_experts")
        let k = try c.require(c.numExpertsPerTok, "num_experts_per_tok")
        try c.check(k <= experts, "num_experts_per_tok (\(k)) exceeds num_local_experts (\(experts))")
        return try Llama.decoder(config: c, dims: d, weights: w) { i in
            let p = "model.layers.\(i).block_sparse_moe"
            return MixtureOfExperts(
                router: try w.linear("\(p).gate", out: experts, in: d.hidden),
                routing: .softmaxTopK(k: k, normalize: c.normTopkProb ?? true),
                experts: try (0..<experts).map { e in
                    SwiGLU(gate: try w.linear("\(p).experts.\(e).w1", out: intermediate, in: d.hidden),
                           up: try w.linear("\(p).experts.\(e).w3", out: intermediate, in: d.hidden),
                           down: try w.linear("\(p).experts.\(e).w2", out: d.hidden, in: intermediate))
                })
        }
    }
}
