/// Qwen2 / Qwen2.5: the Llama decoder with biases on the q/k/v projections (none on `o_proj` or the MLP), GQA,
/// half-split RoPE, SwiGLU, and an input embedding tied to the output head or not (`tie_word_embeddings`).
///
/// Sliding-window attention applies only with `use_sliding_window: true`, and then only to the layers HF marks
/// `sliding_attention` (`layer_types`, or by default layers `max_window_layers…`), as `modeling_qwen2.py` does.
///
/// HF weight names: as Llama (`model.layers.{i}.self_attn.{q,k,v}_proj.{weight,bias}`, `o_proj.weight`,
/// `mlp.{gate,up,down}_proj.weight`, `input_layernorm`, `post_attention_layernorm`, `model.norm`, `lm_head`).
public enum Qwen2 {
    /// Builds a Qwen2 / Qwen2.5 causal LM from its HF config and weights.
    public static func build(config c: ModelConfig, weights w: Weights) throws -> DecoderModel {
        let d = try Llama.Dimensions(c)
        let intermediate = try c.require(c.intermediateSize, "intermediate_size")
        return try Llama.decoder(config: c, dims: d, weights: w, qkvBias: true, outputBias: false,
                                 window: try slidingWindows(c, defaultMaxWindowLayers: 28)) { i in
            try Llama.mlp(w, "model.layers.\(i).mlp", hidden: d.hidden, intermediate: intermediate)
        }
    }

    /// The sliding window of each layer for the Qwen family's config convention (see the type's note).
    static func slidingWindows(_ c: ModelConfig, defaultMaxWindowLayers: Int) throws -> (Int) -> Int? {
        guard c.useSlidingWindow ?? false, let window = c.slidingWindow else { return { _ in nil } }
        try c.check(window > 0, "sliding_window must be positive, got \(window)")
        let firstSliding = c.maxWindowLayers ?? defaultMaxWindowLayers
        return { i in c.isSlidingLayer(i, fallback: i >= firstSliding) ? window : nil }
    }
}
