import Foundation

/// Gemma 2 (`modeling_gemma2.py`): the Llama decoder with Gemma's changes.
///
///     x = embed(tokens) · √hidden                (√hidden rounded to float32, as HF casts it to the activation dtype)
///     per layer i:
///         h = x + postAttnNorm(attn(inputNorm(x)))      attention scores scaled by query_pre_attn_scalar^-½,
///                                                       soft-capped: s ← cap·tanh(s/cap) (attn_logit_softcapping),
///                                                       a sliding window on `sliding_attention` layers
///         x = h + postFFNorm(mlp(preFFNorm(h)))         mlp = down(gelu_tanh(gate(x)) ⊙ up(x))  (GeGLU)
///     logits = cap·tanh(lm_head(norm(x)) / cap)          final_logit_softcapping
///
/// Every RMSNorm multiplies by `(1 + w)` (HF `Gemma2RMSNorm`); the `1 +` is folded into the weights at load time
/// (in float32, as HF computes it), so ``RMSNorm`` runs unchanged. Layer types come from `layer_types`, or HF's
/// default: even layers (0, 2, …) slide, odd layers are global. The output head is tied to the embedding
/// unless the checkpoint has `lm_head.weight`.
///
/// HF weight names: `model.embed_tokens`, `model.layers.{i}.{input_layernorm, post_attention_layernorm,
/// pre_feedforward_layernorm, post_feedforward_layernorm}`, `model.layers.{i}.self_attn.{q,k,v,o}_proj`,
/// `model.layers.{i}.mlp.{gate,up,down}_proj`, `model.norm`, `lm_head` (optional).
public enum Gemma2 {
    /// Builds a Gemma 2 causal LM from its HF config and weights.
    public static func build(config c: ModelConfig, weights w: Weights) throws -> DecoderModel {
        var plain = c
        plain.hiddenAct = nil  // Llama.Dimensions insists on silu; Gemma's activation is checked below.
        let d = try Llama.Dimensions(plain)
        let act = c.hiddenActivation ?? c.hiddenAct ?? "gelu_pytorch_tanh"
        try c.check(["gelu_pytorch_tanh", "gelu_new", "gelu_fast"].contains(act),
                    "hidden_activation '\(act)' is not supported (gelu_pytorch_tanh)")
        let intermediate = try c.require(c.intermediateSize, "intermediate_size")
        let scalar = c.queryPreAttnScalar ?? Double(d.headDim)
        try c.check(scalar > 0 && scalar.isFinite, "query_pre_attn_scalar must be positive, got \(scalar)")
        func cap(_ v: Double?, _ name: String) throws -> Float? {
            guard let v else { return nil }
            try c.check(v > 0 && v.isFinite, "\(name) must be positive, got \(v)")
            return Float(v)
        }
        let attnCap = try cap(c.attnLogitSoftcapping, "attn_logit_softcapping")
        let logitCap = try cap(c.finalLogitSoftcapping, "final_logit_softcapping")
        let window = c.slidingWindow
        if let window { try c.check(window > 0, "sliding_window must be positive, got \(window)") }
        let rope = RoPE(rotaryDim: d.headDim, base: c.rope.ropeTheta ?? 10_000, maxPositions: d.maxPositions,
                        layout: .halfSplit, scaling: try c.rope.scaling(modelType: c.modelType))
        let bias = c.attentionBias ?? false

        func norm(_ prefix: String, _ size: Int) throws -> RMSNorm {
            RMSNorm(weight: try w("\(prefix).weight", [size]) + Tensor.ones([size]), eps: Float(d.eps))
        }
        return try DecoderModel.assemble(config: c, weights: w, vocab: d.vocab, hidden: d.hidden, layers: d.layers,
                                         maxPositions: d.maxPositions, tiedByDefault: true,
                                         embeddingScale: Float(Double(d.hidden).squareRoot()), logitSoftcap: logitCap,
                                         norm: { try norm($0, d.hidden) }) { i in
            let p = "model.layers.\(i)"
            let attention = GroupedQueryAttention(
                query: try w.linear("\(p).self_attn.q_proj", out: d.heads * d.headDim, in: d.hidden, bias: bias),
                key: try w.linear("\(p).self_attn.k_proj", out: d.kvHeads * d.headDim, in: d.hidden, bias: bias),
                value: try w.linear("\(p).self_attn.v_proj", out: d.kvHeads * d.headDim, in: d.hidden, bias: bias),
                output: try w.linear("\(p).self_attn.o_proj", out: d.hidden, in: d.heads * d.headDim, bias: bias),
                heads: d.heads, kvHeads: d.kvHeads, headDim: d.headDim, rope: rope,
                scale: Float(1 / scalar.squareRoot()),
                window: c.isSlidingLayer(i, fallback: i % 2 == 0) ? window : nil, softcap: attnCap)
            return DecoderLayer(
                attentionNorm: try norm("\(p).input_layernorm", d.hidden), attention: attention,
                feedForwardNorm: try norm("\(p).pre_feedforward_layernorm", d.hidden),
                feedForward: GeGLU(gate: try w.linear("\(p).mlp.gate_proj", out: intermediate, in: d.hidden),
                                   up: try w.linear("\(p).mlp.up_proj", out: intermediate, in: d.hidden),
                                   down: try w.linear("\(p).mlp.down_proj", out: d.hidden, in: intermediate)),
                postAttentionNorm: try norm("\(p).post_attention_layernorm", d.hidden),
                postFeedForwardNorm: try norm("\(p).post_feedforward_layernorm", d.hidden))
        }
    }
}

/// The gated feed-forward with a tanh-approximated GELU gate (Gemma: `down(gelu_tanh(gate(x)) ⊙ up(x))`), gate
/// and up fused in one GEMM like ``SwiGLU``.
public struct GeGLU: FeedForward, ParameterCounting {
    let gateUp: Linear  // [2·I, hidden]: gate rows then up rows
    public let down: Linear

    public init(gate: Linear, up: Linear, down: Linear) {
        precondition(gate.outFeatures == up.outFeatures && down.inFeatures == gate.outFeatures,
                     "GeGLU: gate \(gate.weight.shape), up \(up.weight.shape), down \(down.weight.shape) disagree")
        gateUp = Linear.fused([gate, up])
        self.down = down
    }

    public var parameterCount: Int { gateUp.parameterCount + down.parameterCount }

    /// `out[i] = gelu_tanh(gate[i]) · up[i]`, eight lanes at a time. gelu_tanh(x) = ½x(1 + tanh u) with
    /// u = √(2/π)(x + 0.044715x³) is computed as x·σ(2u) = x / (1 + e^{−2u}) (the same function, no cancellation).
    static func geluTanhMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count n: Int) {
        typealias V = VectorMath.V
        let c = Float((2 / Double.pi).squareRoot())
        var i = 0
        while i + V.scalarCount <= n {
            let x = UnsafeRawPointer(gate + i).loadUnaligned(as: V.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: V.self)
            let e = VectorMath.exp(-2 * c * (x + 0.044715 * x * x * x))
            UnsafeMutableRawPointer(out + i).storeBytes(of: x / (1 + e) * u, as: V.self)
            i += V.scalarCount
        }
        while i < n {
            let x = gate[i]
            out[i] = 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x))) * up[i]
            i += 1
        }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor { down(GeGLU.activate(gateUp(x), intermediate: down.inFeatures)) }

    public func rowwise(_ x: Tensor) -> Tensor {
        down.rowwise(GeGLU.activate(gateUp.rowwise(x), intermediate: down.inFeatures))
    }

    /// `[tokens, 2I]` (gate | up) → `[tokens, I]` = gelu_tanh(gate) ⊙ up.
    static func activate(_ gu: Tensor, intermediate n: Int) -> Tensor {
        let rows = gu.count / (2 * n)
        var out = Tensor(uninitializedShape: [rows, n])
        gu.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    let g = src.baseAddress! + r * 2 * n
                    GeGLU.geluTanhMul(gate: g, up: g + n, out: dst.baseAddress! + r * n, count: n)
                }
            }
        }
        return out
    }
}
