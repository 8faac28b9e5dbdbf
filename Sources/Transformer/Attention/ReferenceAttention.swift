/// Attention the textbook way: materialise every score, mask, normalise, multiply by V.
///
///     S = scale · Q·Kᵀ        [B, H, Nq, Nk]   (all heads at once: Nq·Nk floats per head)
///     S = cap · tanh(S / cap)  with a soft-cap (Gemma 2)
///     S[i, j] = −inf where the mask forbids (i, j)        (0 after σ for sigmoid)
///     P = softmax(S) row-wise, or σ(S + b)
///     out = P · V
///
/// Products run on sgemm, one (batch, head) per ``parallelFor(_:_:)`` item. This is the baseline FlashAttention
/// is measured against and an independent second opinion in the tests; models never call it.
enum ReferenceAttention {
    /// Bytes of scores the reference allocates for geometry `g`.
    static func scoreBytes(_ g: Attention.Geometry) -> Int {
        g.batch * g.heads * g.queries * g.keys * MemoryLayout<Float>.stride
    }

    static func run(_ g: Attention.Geometry, _ ops: Attention.Operands, _ options: Attention.Options) {
        let (D, Dv, H, Nq, Nk) = (g.headDim, g.valueDim, g.heads, g.queries, g.keys)
        let scale = Attention.resolvedScale(g, options)
        let mask = ResolvedMask(options.mask, queries: Nq, keys: Nk)
        let bias = Attention.sigmoidBias(g, options.score)
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: max(1, g.batch * H * Nq * Nk))
        defer { scores.deallocate() }

        parallelFor(g.batch * H) { bh in
            let b = bh / H, h = bh % H, hkv = h / g.groupSize
            let s = scores + bh * Nq * Nk
            GEMM.sgemm(transA: false, transB: true, m: Nq, n: Nk, k: D, alpha: scale,
                       a: ops.query + b * ops.queryBatchStride + h * D, lda: ops.queryRowStride,
                       b: ops.key + b * ops.keyBatchStride + hkv * D, ldb: ops.keyRowStride, c: s, ldc: Nk)
            if let cap = options.softcap { Attention.softcap(s, count: Nq * Nk, cap: cap) }
            let keyLength = mask.keyLength(batch: b, keys: Nk)
            for i in 0..<Nq {
                let row = s + i * Nk
                let pos = options.mask.queryOffset + i
                for j in 0..<Nk where j >= keyLength || !mask.allows(position: pos, key: j) { row[j] = -.infinity }
                if options.score == .softmax {
                    let mx = VectorMath.max(row, count: Nk)
                    if mx == -.infinity { row.update(repeating: 0, count: Nk); continue }
                    let sum = VectorMath.expShiftSum(row, count: Nk, shift: mx)
                    VectorMath.scale(row, count: Nk, by: 1 / sum)
                } else {
                    for j in 0..<Nk { row[j] = row[j] == -.infinity ? 0 : 1 / (1 + VectorMath.exp(-(row[j] + bias))) }
                }
            }
            GEMM.sgemm(transA: false, transB: false, m: Nq, n: Dv, k: Nk, a: s, lda: Nk,
                       b: ops.value + b * ops.valueBatchStride + hkv * Dv, ldb: ops.valueRowStride,
                       c: ops.output + (b * Nq * H + h) * Dv, ldc: H * Dv)
        }
    }
}
