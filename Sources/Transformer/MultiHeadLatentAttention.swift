/// Multi-head latent attention (MLA, DeepSeek-V2/V3): keys and values of all `H` heads are expanded from one
/// low-rank latent `c` per position (`kv_lora_rank` = r wide), plus one rotary key `k_pe` shared by every head.
///
/// Sizes: `dn` = `qk_nope_head_dim`, `dr` = `qk_rope_head_dim`, `dqk` = dn + dr, `dv` = `v_head_dim`, n new tokens
/// at positions p..<p+n.
///
///     a      = x·[W_qa | W_q ; W_kva]ᵀ                [n, Qw + r + dr]   one GEMM (Qw = q_lora_rank or H·dqk)
///     q      = W_qb·RMSNorm(a[:, :Qw])  (or a[:, :Qw])  [n, H, dqk] = [q_nope (dn) | q_pe (dr)] per head
///     c      = RMSNorm(a[:, Qw..<Qw+r])                [n, r]
///     k_pe   = a[:, Qw+r...]                           [n, dr]            one head, shared
///     q_pe, k_pe ← RoPE at positions p..<p+n
///     scale  = dqk^−½ · rope.softmaxScaleMultiplier    (YaRN mscale², HF `yarn_apply_mscale`)
///
/// ``Mode/naive`` (HF `DeepseekV3Attention`): expand the latent and run ordinary MHA.
///
///     kv     = c·W_kvbᵀ                                [n, H, dn + dv]
///     K      = [k_nope_h | k_pe]  → cache              [H·dqk] floats per position
///     V      = v_h                → cache              [H·dv]  floats per position
///     o      = Flash(q, K, V)  heads = kvHeads = H, D = dqk, Dv = dv       [n, H, dv]
///
/// ``Mode/absorbed`` (DeepSeek `inference/model.py`, `attn_impl = "absorb"`): W_UK is folded into the query and
/// W_UV applied after attention, so the cache holds only the latent and the rotary key, and attention is MQA over it.
///
///     q_lat_h = q_nope_h·W_UK[h]                       [n, r]    W_UK[h] = k_nope rows of W_kvb, [dn, r]
///     Q       = [q_lat_h | q_pe_h] per head            [n, H, r + dr]
///     cache  ← [c | k_pe]                              r + dr floats per position, no separate values
///     o       = Flash(Q, keys = cache, values = cache[:, :r])  kvHeads = 1, D = r + dr, Dv = r    [n, H, r]
///     out_h   = o_h·W_UV[h]ᵀ                           [n, dv]   W_UV[h] = v rows of W_kvb, [dv, r]
///
/// Scores are the same: q_nope·k_nope = q_nope·(W_UK c) = (q_nope W_UK)·c, and o·W_UVᵀ = Σ p·(W_UV c).
/// The values are read through the key pointer with the key row stride: nothing is copied.
/// Both modes finish with `out = o·W_oᵀ` (`o_proj`).
public struct MultiHeadLatentAttention: TokenMixer {
    /// How keys and values are materialised (both give the same output up to float rounding).
    public enum Mode: String, Sendable, CaseIterable {
        /// Expand the latent to per-head keys/values and cache those (H·(dqk + dv) floats per position).
        case naive
        /// Cache only `[c, k_pe]` (r + dr floats per position) and attend in latent space (MQA).
        case absorbed
    }

    /// The query path: one projection, or DeepSeek-V3's low-rank `q_a_proj` → RMSNorm → `q_b_proj`.
    public enum QueryProjection: Sendable {
        case direct(Linear)
        case lowRank(down: Linear, norm: RMSNorm, up: Linear)
    }

    public let mode: Mode
    public let heads: Int
    /// `qk_nope_head_dim`.
    public let nopeDim: Int
    /// `qk_rope_head_dim`.
    public let ropeDim: Int
    /// `v_head_dim`.
    public let valueDim: Int
    /// `kv_lora_rank`.
    public let latentDim: Int
    /// Query and latent down-projections fused (rows: query part, then `kv_a_proj_with_mqa`).
    let input: Linear
    /// Leading output columns of ``input`` that belong to the query path.
    let queryWidth: Int
    let queryNorm: RMSNorm?
    let queryUp: Linear?
    public let latentNorm: RMSNorm
    /// `kv_b_proj` `[H·(dn + dv), r]` (naive mode only).
    let kvUp: Linear?
    /// Per-head W_UK `[H, dn, r]` and W_UV `[H, dv, r]` split from `kv_b_proj` at load (absorbed mode only).
    let absorbedKey: Tensor?
    let absorbedValue: Tensor?
    public let output: Linear
    public let rope: RoPE
    /// Attention score multiplier.
    public let scale: Float
    /// Weights as the checkpoint stores them.
    public let parameterCount: Int

    public var qkHeadDim: Int { nopeDim + ropeDim }

    /// - Parameters:
    ///   - query: `q_proj` `[H·dqk, hidden]`, or `q_a_proj` `[q_lora, hidden]` + `q_a_layernorm` + `q_b_proj`
    ///     `[H·dqk, q_lora]`.
    ///   - latent: `kv_a_proj_with_mqa` `[r + dr, hidden]`.
    ///   - latentNorm: `kv_a_layernorm` `[r]`.
    ///   - kvUp: `kv_b_proj` `[H·(dn + dv), r]`, rows per head: dn key rows then dv value rows.
    ///   - output: `o_proj` `[hidden, H·dv]`.
    ///   - rope: rotary embedding of `ropeDim` features (its ``RoPE/softmaxScaleMultiplier`` enters the scale).
    ///   - scale: score multiplier; default `dqk^−½ · rope.softmaxScaleMultiplier`.
    public init(query: QueryProjection, latent: Linear, latentNorm: RMSNorm, kvUp: Linear, output: Linear,
                heads: Int, nopeDim: Int, ropeDim: Int, valueDim: Int, rope: RoPE, scale: Float? = nil,
                mode: Mode = .absorbed) {
        precondition(heads > 0 && nopeDim > 0 && ropeDim > 0 && valueDim > 0, "MLA: sizes must be positive")
        let qk = nopeDim + ropeDim
        let r = latentNorm.weight.count
        precondition(r > 0 && latent.outFeatures == r + ropeDim,
                     "MLA: kv_a_proj_with_mqa has \(latent.outFeatures) outputs, expected kv_lora_rank \(r) + rope \(ropeDim)")
        precondition(kvUp.inFeatures == r && kvUp.outFeatures == heads * (nopeDim + valueDim),
                     "MLA: kv_b_proj \(kvUp.weight.shape) disagrees with \(heads) heads × (\(nopeDim) + \(valueDim)) from \(r)")
        precondition(output.inFeatures == heads * valueDim, "MLA: o_proj \(output.weight.shape) expects \(heads)×\(valueDim) inputs")
        precondition(rope.rotaryDim == ropeDim, "MLA: RoPE rotates \(rope.rotaryDim) features, qk_rope_head_dim is \(ropeDim)")
        precondition(kvUp.bias == nil, "MLA: kv_b_proj has no bias in DeepSeek")
        var count = latent.parameterCount + latentNorm.weight.count + kvUp.parameterCount + output.parameterCount
        switch query {
        case .direct(let q):
            count += q.parameterCount
            precondition(q.outFeatures == heads * qk && q.inFeatures == latent.inFeatures,
                         "MLA: q_proj \(q.weight.shape) expects [\(heads * qk), \(latent.inFeatures)]")
            input = Linear.fused([q, latent])
            queryWidth = q.outFeatures
            (queryNorm, queryUp) = (nil, nil)
        case let .lowRank(down, norm, up):
            count += down.parameterCount + norm.weight.count + up.parameterCount
            precondition(down.inFeatures == latent.inFeatures && norm.weight.count == down.outFeatures
                         && up.inFeatures == down.outFeatures && up.outFeatures == heads * qk,
                         "MLA: q_a_proj \(down.weight.shape) / q_b_proj \(up.weight.shape) disagree with \(heads) heads × \(qk)")
            input = Linear.fused([down, latent])
            queryWidth = down.outFeatures
            (queryNorm, queryUp) = (norm, up)
        }
        parameterCount = count
        self.latentNorm = latentNorm
        self.output = output
        self.rope = rope
        (self.mode, self.heads, self.nopeDim, self.ropeDim, self.valueDim, self.latentDim) =
            (mode, heads, nopeDim, ropeDim, valueDim, r)
        self.scale = scale ?? Float(1 / Double(qk).squareRoot() * rope.softmaxScaleMultiplier)
        switch mode {
        case .naive:
            self.kvUp = kvUp
            (absorbedKey, absorbedValue) = (nil, nil)
        case .absorbed:
            // kv_b_proj rows are [head 0: dn key rows, dv value rows | head 1: … ]; split them per head.
            let perHead = kvUp.weight.reshaped([heads, nopeDim + valueDim, r])
            self.kvUp = nil
            absorbedKey = perHead.sliced(axis: 1, 0..<nopeDim)                        // [H, dn, r]
            absorbedValue = perHead.sliced(axis: 1, nopeDim..<(nopeDim + valueDim))   // [H, dv, r]
        }
    }

    public var cacheWidths: (key: Int, value: Int) {
        switch mode {
        case .naive: return (heads * qkHeadDim, heads * valueDim)
        case .absorbed: return (latentDim + ropeDim, 0)
        }
    }

    public func callAsFunction(_ x: Tensor, cache: KVCache.Layer, position p: Int) -> Tensor {
        let n = x.shape[0]
        let (r, dr) = (latentDim, ropeDim)
        let a = input(x)  // [n, Qw + r + dr]
        let width = a.shape[1]
        let qDown = a.sliced(axis: 1, 0..<queryWidth)
        var q = queryUp.map { $0(queryNorm!(qDown)) } ?? qDown       // [n, H·dqk]
        let c = latentNorm(a.sliced(axis: 1, queryWidth..<(queryWidth + r)))  // [n, r]
        var kPe = a.sliced(axis: 1, (queryWidth + r)..<width)               // [n, dr]
        q.withUnsafeMutableBufferPointer { qb in
            rope.apply(to: qb.baseAddress! + nopeDim, seq: n, heads: heads, rowStride: heads * qkHeadDim,
                       headStride: qkHeadDim, positionOffset: p)
        }
        kPe.withUnsafeMutableBufferPointer { kb in
            rope.apply(to: kb.baseAddress!, seq: n, heads: 1, rowStride: dr, headStride: dr, positionOffset: p)
        }
        let o: Tensor
        switch mode {
        case .naive: o = attendNaive(q: q, latent: c, kPe: kPe, cache: cache, position: p)
        case .absorbed: o = attendAbsorbed(q: q, latent: c, kPe: kPe, cache: cache, position: p)
        }
        return output(o)
    }

    /// Expanded keys/values: ordinary MHA with D = dqk, Dv = dv. Returns `[n, H·dv]`.
    private func attendNaive(q: Tensor, latent c: Tensor, kPe: Tensor, cache: KVCache.Layer, position p: Int) -> Tensor {
        let n = q.shape[0]
        let (H, dn, dv, dqk, dr) = (heads, nopeDim, valueDim, qkHeadDim, ropeDim)
        let kv = kvUp!(c)  // [n, H·(dn + dv)]
        var out = Tensor(uninitializedShape: [n, H * dv])
        kv.withUnsafeBufferPointer { kvb in
            kPe.withUnsafeBufferPointer { peb in
                cache.write(at: p, count: n) { t, kRow, vRow in
                    let src = kvb.baseAddress! + t * H * (dn + dv), pe = peb.baseAddress! + t * dr
                    for h in 0..<H {
                        (kRow.baseAddress! + h * dqk).update(from: src + h * (dn + dv), count: dn)
                        (kRow.baseAddress! + h * dqk + dn).update(from: pe, count: dr)
                        (vRow!.baseAddress! + h * dv).update(from: src + h * (dn + dv) + dn, count: dv)
                    }
                }
            }
        }
        q.withUnsafeBufferPointer { qb in
            out.withUnsafeMutableBufferPointer { ob in
                cache.attend(query: qb.baseAddress!, queryRowStride: H * dqk, queries: n, at: p, heads: H, kvHeads: H,
                             headDim: dqk, valueDim: dv, output: ob.baseAddress!, options: Attention.Options(scale: scale))
            }
        }
        return out
    }

    /// Latent-space MQA over the `[c | k_pe]` cache. Returns `[n, H·dv]`.
    private func attendAbsorbed(q: Tensor, latent c: Tensor, kPe: Tensor, cache: KVCache.Layer, position p: Int) -> Tensor {
        let n = q.shape[0]
        let (H, dn, dv, dqk, dr, r) = (heads, nopeDim, valueDim, qkHeadDim, ropeDim, latentDim)
        let row = r + dr  // cache row and per-head query width
        // 1. Cache rows [c | k_pe].
        c.withUnsafeBufferPointer { cb in
            kPe.withUnsafeBufferPointer { peb in
                cache.write(at: p, count: n) { t, dst, _ in
                    dst.baseAddress!.update(from: cb.baseAddress! + t * r, count: r)
                    (dst.baseAddress! + r).update(from: peb.baseAddress! + t * dr, count: dr)
                }
            }
        }
        // 2. Absorbed query Q[t, h] = [q_nope[t, h]·W_UK[h] | q_pe[t, h]]   [n, H, r + dr]
        var query = Tensor(uninitializedShape: [n, H * row])
        q.withUnsafeBufferPointer { qb in
            absorbedKey!.withUnsafeBufferPointer { wk in
                query.withUnsafeMutableBufferPointer { Qb in
                    let qs = qb.baseAddress!, Q = Qb.baseAddress!, W = wk.baseAddress!
                    Self.perHead(H, work: n * dn * r) { h in
                        GEMM.sgemm(transA: false, transB: false, m: n, n: r, k: dn, a: qs + h * dqk, lda: H * dqk,
                                   b: W + h * dn * r, ldb: r, c: Q + h * row, ldc: H * row)
                        for t in 0..<n {
                            (Q + t * H * row + h * row + r).update(from: qs + t * H * dqk + h * dqk + dn, count: dr)
                        }
                    }
                }
            }
        }
        // 3. MQA: keys = cache rows, values = their first r floats (same pointer, key row stride).
        var latentOut = Tensor(uninitializedShape: [n, H * r])
        query.withUnsafeBufferPointer { Qb in
            latentOut.withUnsafeMutableBufferPointer { ob in
                cache.attend(query: Qb.baseAddress!, queryRowStride: H * row, queries: n, at: p, heads: H, kvHeads: 1,
                             headDim: row, valueDim: r, output: ob.baseAddress!, options: Attention.Options(scale: scale))
            }
        }
        // 4. out[t, h] = o[t, h]·W_UV[h]ᵀ   [n, H, dv]
        var out = Tensor(uninitializedShape: [n, H * dv])
        latentOut.withUnsafeBufferPointer { ob in
            absorbedValue!.withUnsafeBufferPointer { wv in
                out.withUnsafeMutableBufferPointer { ub in
                    let O = ob.baseAddress!, W = wv.baseAddress!, U = ub.baseAddress!
                    Self.perHead(H, work: n * dv * r) { h in
                        GEMM.sgemm(transA: false, transB: true, m: n, n: dv, k: r, a: O + h * r, lda: H * r,
                                   b: W + h * dv * r, ldb: r, c: U + h * dv, ldc: H * dv)
                    }
                }
            }
        }
        return out
    }

    /// Runs `body(h)` for every head: across workers when the heads together are worth it (each a single-threaded
    /// strided sgemm), else inline.
    private static func perHead(_ heads: Int, work perHeadWork: Int, _ body: (Int) -> Void) {
        if heads > 1 && heads * perHeadWork >= GEMM.parallelThreshold && !Threading.isInsideParallelRegion {
            parallelFor(heads, body)
        } else {
            for h in 0..<heads { body(h) }
        }
    }
}

extension MultiHeadLatentAttention: ParameterCounting {}
