/// The memory-tiled FlashAttention kernel (Dao et al. 2022), for softmax and sigmoid scores and every
/// ``AttentionMask`` pattern.
///
/// Work is split into tasks of (batch, kv head, block of query rows). A block's rows are the `groupSize` query
/// heads that share the kv head, for a run of consecutive tokens — so MQA/GQA reuse every K/V tile across the heads
/// of a group (and a one-token decode step still multiplies a `groupSize`-row matrix). Per task:
///
///     Qb = gather(Q rows)                         [R, D]   (R ≤ rowsPerBlock)
///     for each key tile Kt, Vt (tileKeys keys), skipping tiles the mask empties:
///         S  = scale · Qb · Ktᵀ                   [R, T]   sgemm
///         mask the tile if it is only partly allowed (−inf, or 0 for sigmoid)
///         softmax: m' = max(m, rowmax S); P = exp(S − m'); l = l·e^(m−m') + ΣP; O = O·e^(m−m')
///         sigmoid: P = σ(S + b)
///         O += P · Vt                             [R, Dv]  sgemm
///     out = O / l   (softmax; 0 for a row nothing was allowed to see)   — O for sigmoid
///
/// Scratch per worker is R·(D + T + Dv + 2) floats; nothing is N×N. Tasks run on ``parallelFor(_:_:)`` with
/// single-threaded sgemm inside (see ``Threading``).
public enum FlashAttention {
    /// Query rows (tokens × group heads) per task; nil picks 256 for dense attention and 128 under a mask that can
    /// empty tiles (smaller blocks follow a causal diagonal or a window more closely). Measured at N = 2048, H = 8:
    /// dense D64 197 → 204 GFLOP/s with 256 rows, causal D64 177 vs 170 with 128.
    nonisolated(unsafe) public static var rowsPerBlock: Int?
    /// Keys per tile.
    nonisolated(unsafe) public static var tileKeys = 256

    /// Bytes of scratch the kernel allocates for a call of geometry `g` (all workers together).
    public static func scratchBytes(_ g: Attention.Geometry, mask: AttentionMask = .none) -> Int {
        let (rows, tile) = blockShape(g, mask)
        let workers = min(Threading.workers, taskCount(g, tokensPerBlock: rows / g.groupSize))
        return workers * rows * (g.headDim + tile + g.valueDim + 2) * MemoryLayout<Float>.stride
    }

    static func blockShape(_ g: Attention.Geometry, _ mask: AttentionMask) -> (rows: Int, tile: Int) {
        let rows = rowsPerBlock ?? (mask.isDense && mask.globalTokens.isEmpty ? 256 : 128)
        let tokens = max(1, min(g.queries, rows / g.groupSize))
        return (tokens * g.groupSize, max(1, min(tileKeys, g.keys)))
    }

    static func taskCount(_ g: Attention.Geometry, tokensPerBlock: Int) -> Int {
        g.batch * g.kvHeads * ((g.queries + tokensPerBlock - 1) / tokensPerBlock)
    }

    static func run(_ g: Attention.Geometry, _ ops: Attention.Operands, _ options: Attention.Options) {
        guard g.batch > 0, g.queries > 0 else { return }
        let (maxRows, tile) = blockShape(g, options.mask)
        let tokensPerBlock = maxRows / g.groupSize
        let blocks = (g.queries + tokensPerBlock - 1) / tokensPerBlock
        let tasks = taskCount(g, tokensPerBlock: tokensPerBlock)
        let workers = min(Threading.workers, tasks)
        let (D, Dv, G, H, rep) = (g.headDim, g.valueDim, g.kvHeads, g.heads, g.groupSize)
        let scale = Attention.resolvedScale(g, options)
        let mask = ResolvedMask(options.mask, queries: g.queries, keys: g.keys)
        let isSigmoid = options.score != .softmax
        let bias = Attention.sigmoidBias(g, options.score)
        let masked: Float = isSigmoid ? 0 : -.infinity  // what a disallowed score becomes

        let perWorker = maxRows * (D + tile + Dv + 2)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: workers * perWorker)
        defer { scratch.deallocate() }

        parallelFor(tasks) { worker, task in
            let blk = task % blocks
            let hkv = (task / blocks) % G
            let b = task / (blocks * G)
            let t0 = blk * tokensPerBlock, t1 = min(g.queries, t0 + tokensPerBlock)
            let rows = (t1 - t0) * rep
            let qs = scratch + worker * perWorker
            let s = qs + maxRows * D
            let acc = s + maxRows * tile
            let m = acc + maxRows * Dv
            let l = m + maxRows

            // Gather the block's query rows: row (t, r) is head hkv·rep + r of token t.
            for t in t0..<t1 {
                (qs + (t - t0) * rep * D).update(
                    from: ops.query + b * ops.queryBatchStride + t * ops.queryRowStride + hkv * rep * D, count: rep * D)
            }
            acc.update(repeating: 0, count: rows * Dv)
            m.update(repeating: -.infinity, count: rows)
            l.update(repeating: 0, count: rows)

            let p0 = options.mask.queryOffset + t0, p1 = options.mask.queryOffset + t1 - 1
            let keyLength = mask.keyLength(batch: b, keys: g.keys)
            let bounds = mask.keyBounds(positions: p0, p1, keyLength: keyLength)
            let kBase = ops.key + b * ops.keyBatchStride + hkv * D
            let vBase = ops.value + b * ops.valueBatchStride + hkv * Dv
            var j0 = bounds.lowerBound
            while j0 < bounds.upperBound {
                let j1 = min(j0 + tile, bounds.upperBound)
                defer { j0 = j1 }
                let cover = mask.coverage(positions: p0, p1, keys: j0, j1)
                if cover == .empty { continue }
                let n = j1 - j0
                GEMM.sgemm(transA: false, transB: true, m: rows, n: n, k: D, alpha: scale, a: qs, lda: D,
                           b: kBase + j0 * ops.keyRowStride, ldb: ops.keyRowStride, c: s, ldc: n)
                // Score soft-capping hook (Gemma 2): s ← cap·tanh(s/cap), right where the scores are scaled.
                if let cap = options.softcap { Attention.softcap(s, count: rows * n, cap: cap) }
                for r in 0..<rows {
                    let row = s + r * n
                    if isSigmoid { VectorMath.sigmoid(row, count: n, bias: bias) }
                    if cover == .partial {
                        let pos = p0 + r / rep
                        if let allowed = mask.allowedInterval(position: pos, keyLength: keyLength) {
                            // Interval-shaped masks (causal, window): fill the two disallowed ends.
                            let lo = min(max(allowed.lowerBound - j0, 0), n), hi = max(min(allowed.upperBound - j0, n), lo)
                            row.update(repeating: masked, count: lo)
                            (row + hi).update(repeating: masked, count: n - hi)
                        } else {
                            for j in 0..<n where !mask.allows(position: pos, key: j0 + j) { row[j] = masked }
                        }
                    }
                    if isSigmoid { continue }
                    // Online softmax update of row r.
                    let tileMax = VectorMath.max(row, count: n)
                    let newMax = max(m[r], tileMax)
                    if newMax == -.infinity {  // nothing visible yet in this row
                        row.update(repeating: 0, count: n)
                        continue
                    }
                    let sum = VectorMath.expShiftSum(row, count: n, shift: newMax)
                    if m[r] != newMax {
                        let alpha = m[r] == -.infinity ? 0 : VectorMath.exp(m[r] - newMax)
                        if l[r] != 0 { VectorMath.scale(acc + r * Dv, count: Dv, by: alpha) }
                        l[r] = l[r] * alpha + sum
                        m[r] = newMax
                    } else {
                        l[r] += sum
                    }
                }
                GEMM.sgemm(transA: false, transB: false, m: rows, n: Dv, k: n, a: s, lda: n,
                           b: vBase + j0 * ops.valueRowStride, ldb: ops.valueRowStride, beta: 1, c: acc, ldc: Dv)
            }

            // Normalise and scatter rows back to [B, Nq, H, Dv].
            for t in t0..<t1 {
                for r in 0..<rep {
                    let row = (t - t0) * rep + r
                    let dst = ops.output + ((b * g.queries + t) * H + hkv * rep + r) * Dv
                    let src = acc + row * Dv
                    if isSigmoid {
                        dst.update(from: src, count: Dv)
                    } else {
                        let inv: Float = l[row] > 0 ? 1 / l[row] : 0
                        for d in 0..<Dv { dst[d] = src[d] * inv }
                    }
                }
            }
        }
    }
}
