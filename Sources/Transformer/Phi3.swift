/// Phi-3 (`modeling_phi3.py`): the Llama decoder with fused projections and LongRoPE.
///
/// - `self_attn.qkv_proj.weight` `[(H + 2G)·D, hidden]` holds q | k | v rows and `mlp.gate_up_proj.weight`
///   `[2·I, hidden]` holds gate | up rows; they are split at load time into the Llama names (`q_proj`, `k_proj`,
///   `v_proj`, `gate_proj`, `up_proj`) by a ``WeightSource`` view, so the Llama builder runs unchanged (it fuses
///   them again into its own one-GEMM layout).
/// - `rope_parameters` / `rope_scaling` of type `longrope` (older configs: `su`, `yarn`): per-pair frequency
///   divisors `short_factor` / `long_factor`, `original_max_position_embeddings`, and cos/sin scaled by
///   `attention_factor` (default √(1 + ln(s)/ln(original)) with s = max_position_embeddings / original); see
///   ``RoPE/Scaling/longrope(shortFactor:longFactor:originalMaxPositions:attentionFactor:)``.
/// - `partial_rotary_factor` and `sliding_window` (every layer) as in Llama.
///
/// HF weight names: `model.embed_tokens`, `model.layers.{i}.{input_layernorm, post_attention_layernorm}`,
/// `model.layers.{i}.self_attn.{qkv_proj, o_proj}`, `model.layers.{i}.mlp.{gate_up_proj, down_proj}`,
/// `model.norm`, `lm_head`.
public enum Phi3 {
    /// Builds a Phi-3 causal LM from its HF config and weights.
    public static func build(config c: ModelConfig, weights w: Weights) throws -> DecoderModel {
        let d = try Llama.Dimensions(c)
        let intermediate = try c.require(c.intermediateSize, "intermediate_size")
        var split = w
        if case .source(let source) = w.backing {
            split = Weights(FusedSplit(base: source, qkv: [d.heads * d.headDim, d.kvHeads * d.headDim, d.kvHeads * d.headDim],
                                       gateUp: [intermediate, intermediate]))
        }
        let weights = split
        return try Llama.decoder(config: c, dims: d, weights: weights) { i in
            try Llama.mlp(weights, "model.layers.\(i).mlp", hidden: d.hidden, intermediate: intermediate)
        }
    }

    /// Serves `q_proj` / `k_proj` / `v_proj` and `gate_proj` / `up_proj` weights as row blocks of the checkpoint's
    /// fused `qkv_proj` and `gate_up_proj`; every other name passes through.
    struct FusedSplit: WeightSource {
        let base: any WeightSource
        let qkv: [Int]     // rows of q, k, v
        let gateUp: [Int]  // rows of gate, up

        /// (fused name, row range) for a split name.
        func locate(_ name: String) -> (String, Range<Int>)? {
            let parts: [(String, String, [Int], Int)] = [
                (".self_attn.q_proj.", ".self_attn.qkv_proj.", qkv, 0), (".self_attn.k_proj.", ".self_attn.qkv_proj.", qkv, 1),
                (".self_attn.v_proj.", ".self_attn.qkv_proj.", qkv, 2), (".mlp.gate_proj.", ".mlp.gate_up_proj.", gateUp, 0),
                (".mlp.up_proj.", ".mlp.gate_up_proj.", gateUp, 1),
            ]
            for (piece, fused, rows, k) in parts where name.contains(piece) {
                let start = rows[..<k].reduce(0, +)
                return (name.replacingOccurrences(of: piece, with: fused), start..<(start + rows[k]))
            }
            return nil
        }

        func contains(_ name: String) -> Bool {
            guard let (fused, _) = locate(name) else { return base.contains(name) }
            return base.contains(fused)
        }

        func describe(_ name: String) -> String {
            guard let (fused, rows) = locate(name) else { return base.describe(name) }
            return "\(name) (rows \(rows.lowerBound)..<\(rows.upperBound) of \(base.describe(fused)))"
        }

        func tensor(_ name: String) throws -> Tensor {
            guard let (fused, rows) = locate(name) else { return try base.tensor(name) }
            let t = try base.tensor(fused)
            let total = (fused.contains("qkv_proj") ? qkv : gateUp).reduce(0, +)
            guard t.rank >= 1, t.shape[0] == total else {
                throw ModelError.shapeMismatch(tensor: fused, expected: [total] + t.shape.dropFirst(), found: t.shape)
            }
            return t.sliced(axis: 0, rows)
        }

        /// A stored (GGUF) fused matrix is split by rows in place, nothing copied.
        func quantized(_ name: String) throws -> QuantizedMatrix? {
            guard let (fused, rows) = locate(name) else { return try base.quantized(name) }
            guard let q = try base.quantized(fused) else { return nil }
            let total = (fused.contains("qkv_proj") ? qkv : gateUp).reduce(0, +)
            guard q.rows == total else {
                throw ModelError.shapeMismatch(tensor: fused, expected: [total, q.cols], found: [q.rows, q.cols])
            }
            return q.slicingRows(rows)
        }
    }
}
