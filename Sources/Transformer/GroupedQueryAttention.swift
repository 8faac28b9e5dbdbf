/// Multi-head self-attention with `kvHeads ≤ heads` key/value heads: MHA (`kvHeads == heads`),
/// grouped-query (GQA) and multi-query (MQA, `kvHeads == 1`), with rotary positions and a KV cache.
///
///     qkv = x·[Wq; Wk; Wv]ᵀ            [n, (H + 2G)·D]   one GEMM
///     q, k ← RMSNorm per head (Qwen3 `q_norm` / `k_norm`, when present)
///     q, k ← RoPE(q, k) at positions p..<p+n
///     cache[p..<p+n] ← k, v            [G·D] per position
///     o = FlashAttention(q, cache[0..<p+n]), causal from position p (+ sliding window)
///     out = o·Woᵀ
///
/// Query head h reads kv head h / (H / G) straight from the cache; nothing is repeated.
public struct GroupedQueryAttention: TokenMixer {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    let qkv: Linear
    public let output: Linear
    public let rope: RoPE?
    /// Attention score multiplier (1/√D unless the model says otherwise).
    public let scale: Float
    /// Sliding-window width in positions (Mistral/Mixtral `sliding_window`): a query sees the last `window` keys.
    public let window: Int?
    /// Per-head RMSNorm of queries and keys before RoPE (Qwen3 `q_norm` / `k_norm`, weight `[headDim]`).
    public let queryNorm: RMSNorm?
    public let keyNorm: RMSNorm?
    /// Attention-score soft-cap (Gemma 2 `attn_logit_softcapping`), see ``Attention/Options/softcap``.
    public let softcap: Float?

    public init(query: Linear, key: Linear, value: Linear, output: Linear, heads: Int, kvHeads: Int, headDim: Int,
                rope: RoPE?, scale: Float? = nil, window: Int? = nil, queryNorm: RMSNorm? = nil, keyNorm: RMSNorm? = nil,
                softcap: Float? = nil) {
        precondition(heads % kvHeads == 0, "kv heads (\(kvHeads)) must divide heads (\(heads))")
        precondition(query.outFeatures == heads * headDim && key.outFeatures == kvHeads * headDim
                     && value.outFeatures == kvHeads * headDim && output.inFeatures == heads * headDim,
                     "attention projections disagree with \(heads) heads / \(kvHeads) kv heads of dim \(headDim)")
        qkv = Linear.fused([query, key, value])
        self.output = output
        (self.heads, self.kvHeads, self.headDim, self.rope, self.window) = (heads, kvHeads, headDim, rope, window)
        self.scale = scale ?? 1 / Float(headDim).squareRoot()
        for norm in [queryNorm, keyNorm].compactMap({ $0 }) {
            precondition(norm.weight.shape == [headDim], "per-head q/k norm weight must be [\(headDim)], got \(norm.weight.shape)")
        }
        (self.queryNorm, self.keyNorm, self.softcap) = (queryNorm, keyNorm, softcap)
    }

    /// RMS-normalises `heads` strided head vectors of each of `n` rows in place.
    static func normalizeHeads(_ x: UnsafeMutablePointer<Float>, rows n: Int, heads: Int, rowStride: Int, headDim D: Int,
                               norm: RMSNorm) {
        norm.weight.withUnsafeBufferPointer { w in
            for t in 0..<n {
                for h in 0..<heads {
                    let v = x + t * rowStride + h * D
                    let inv = Float(1 / (VectorMath.sumOfSquares(v, count: D) / Double(D) + Double(norm.eps)).squareRoot())
                    VectorMath.scale(v, by: inv, weights: w.baseAddress!, into: v, count: D)
                }
            }
        }
    }

    public var cacheWidths: (key: Int, value: Int) { (kvHeads * headDim, kvHeads * headDim) }

    public func callAsFunction(_ x: Tensor, cache: KVCache.Layer, position p: Int) -> Tensor {
        let n = x.shape[0]
        var proj = qkv(x)  // [n, (H + 2G)·D]
        var out = Tensor(uninitializedShape: [n, heads * headDim])
        proj.withUnsafeMutableBufferPointer { buf in
            out.withUnsafeMutableBufferPointer { o in
                attend(buf.baseAddress!, rows: n, cache: cache, position: p, into: o.baseAddress!)
            }
        }
        return output(out)
    }

    /// The part between the projections: `qkv` holds `rows` rows of `(H + 2G)·D` projected floats for positions
    /// `p..<p + rows`; rotates q and k in place, writes k and v to `cache`, and writes the attention output
    /// `[rows, H·D]` to `out`. (A batched decode step runs it once per sequence on that sequence's row.)
    func attend(_ qkv: UnsafeMutablePointer<Float>, rows n: Int, cache: KVCache.Layer, position p: Int,
                into out: UnsafeMutablePointer<Float>) {
        let (H, G, D) = (heads, kvHeads, headDim)
        let width = (H + 2 * G) * D
        let q = qkv, k = q + H * D, v = k + G * D
        if let queryNorm { Self.normalizeHeads(q, rows: n, heads: H, rowStride: width, headDim: D, norm: queryNorm) }
        if let keyNorm { Self.normalizeHeads(k, rows: n, heads: G, rowStride: width, headDim: D, norm: keyNorm) }
        if let rope {
            rope.apply(to: q, seq: n, heads: H, rowStride: width, headStride: D, positionOffset: p)
            rope.apply(to: k, seq: n, heads: G, rowStride: width, headStride: D, positionOffset: p)
        }
        cache.write(key: k, value: v, stride: width, count: n, at: p)
        // A window of w positions keeps keys with pos − j ≤ w − 1 (HF / Mistral convention).
        cache.attend(query: q, queryRowStride: width, queries: n, at: p, heads: H, kvHeads: G, headDim: D, valueDim: D,
                     output: out, options: Attention.Options(scale: scale, mask: AttentionMask(window: window.map { $0 - 1 }),
                                                             softcap: softcap))
    }
}
