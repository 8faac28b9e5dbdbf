import CKernels

/// The memory-tiled FlashAttention kernel (Dao et al. 2022), for softmax and sigmoid scores and every
/// ``AttentionMask`` pattern.
///
/// Work is split into tasks of (batch, kv head, block of query rows[, key split]). A block's rows are the
/// `groupSize` query heads that share the kv head, for a run of consecutive tokens — so MQA/GQA reuse every K/V tile
/// across the heads of a group (and a one-token decode step still multiplies a `groupSize`-row matrix). Per task:
///
///     Qb = gather(Q rows)                         [R, D]   (R ≤ rowsPerBlock)
///     for each key tile Kt, Vt (tileKeys keys), skipping tiles the mask empties:     ck_flash_tile, in C:
///         pack Ktᵀ once; for each register block of 8 rows:
///             S  = scale · Qb · Ktᵀ               [8, T]   register-blocked, kept in L1
///             soft-cap; mask the tile if it is only partly allowed (−inf, or 0 for sigmoid)
///             softmax: m' = max(m, rowmax S); P = exp(S − m'); l = l·e^(m−m') + ΣP; α = e^(m−m')
///             sigmoid: P = σ(S + b), α = 1
///             O = α·O + P · Vt                    [8, Dv]  register-blocked, V read in place
///     out = O / l   (softmax; 0 for a row nothing was allowed to see)   — O for sigmoid
///
/// **Split-KV decode** (flash-decoding): when there are fewer tasks than workers (a decode step with one or few kv
/// heads, absorbed MLA), each block's key range is cut into `splits` chunks that run as separate tasks, each leaving
/// a partial (m, l, O); the partials merge exactly: m = max mᵢ, l = Σ lᵢ·e^(mᵢ−m), O = Σ Oᵢ·e^(mᵢ−m) (sigmoid: O = Σ Oᵢ).
///
/// The tile kernel (`Sources/CKernels/flash_attention.c`) has AVX-512, AVX2 and portable paths, chosen by
/// ``CPU/kernelPath``. Scratch per worker is R·(D + Dv + 2) + T·D + 8·T floats; nothing is N×N. Tasks run on
/// ``parallelFor(_:_:)``.
public enum FlashAttention {
    /// Bytes of scratch the kernel allocates for a call of geometry `g` (all workers together).
    public static func scratchBytes(_ g: Attention.Geometry, options: Attention.Options = Attention.Options()) -> Int {
        let plan = Plan(g, options)
        let partials = plan.splits > 1 ? plan.baseTasks * plan.splits * plan.maxRows * (g.valueDim + 2) : 0
        return (plan.workers * plan.perWorker + partials) * MemoryLayout<Float>.stride
    }

    /// Key splits per task that a call of geometry `g` uses (1: no split-KV).
    public static func keySplits(_ g: Attention.Geometry, options: Attention.Options) -> Int { Plan(g, options).splits }

    /// How a call is cut into tasks.
    struct Plan {
        let maxRows, tile, tokensPerBlock, blocks, baseTasks, splits, workers, perWorker: Int

        init(_ g: Attention.Geometry, _ options: Attention.Options) {
            let mask = options.mask
            let rows = options.rowsPerBlock ?? (mask.isDense && mask.globalTokens.isEmpty ? 256 : 128)
            let tokens = max(1, min(g.queries, max(1, rows / g.groupSize)))
            maxRows = tokens * g.groupSize
            tile = max(1, min(options.tileKeys ?? 256, g.keys))
            tokensPerBlock = tokens
            blocks = (g.queries + tokens - 1) / tokens
            baseTasks = g.batch * g.kvHeads * blocks
            // Split the keys when the tasks cannot keep every worker busy: enough chunks for ~2 per worker (for
            // balance), each at least one tile long.
            let threads = Threading.workers
            if let forced = options.keySplits {
                splits = max(1, min(forced, (g.keys + tile - 1) / tile))
            } else if baseTasks < threads && g.keys >= 2 * tile {
                let want = (2 * threads + baseTasks - 1) / baseTasks
                splits = max(1, min(want, g.keys / tile))
            } else {
                splits = 1
            }
            workers = min(threads, baseTasks * splits)
            perWorker = maxRows * (g.headDim + g.valueDim + 2) + Int(ck_flash_scratch_floats(tile, g.headDim))
                + maxRows * max(2, tile)  // per-tile row intervals (2 Int32 a row) or byte mask (1 byte a key)
        }
    }

    static func run(_ g: Attention.Geometry, _ ops: Attention.Operands, _ options: Attention.Options) {
        guard g.batch > 0, g.queries > 0 else { return }
        let plan = Plan(g, options)
        let (maxRows, tile, tokensPerBlock, blocks, splits) = (plan.maxRows, plan.tile, plan.tokensPerBlock, plan.blocks, plan.splits)
        let (D, Dv, G, H, rep) = (g.headDim, g.valueDim, g.kvHeads, g.heads, g.groupSize)
        let scale = Attention.resolvedScale(g, options)
        let mask = ResolvedMask(options.mask, queries: g.queries, keys: g.keys)
        let isSigmoid = options.score != .softmax
        let bias = Attention.sigmoidBias(g, options.score)
        let softcap = options.softcap ?? 0

        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: plan.workers * plan.perWorker)
        defer { scratch.deallocate() }
        // Split-KV partials: per (base task, split) the rows' O [R, Dv], then m [R], then l [R].
        let partialStride = maxRows * (Dv + 2)
        let partials = splits > 1 ? UnsafeMutablePointer<Float>.allocate(capacity: plan.baseTasks * splits * partialStride) : nil
        defer { partials?.deallocate() }

        /// Normalises rows and scatters them back to [B, Nq, H, Dv].
        func writeOut(acc: UnsafePointer<Float>, l: UnsafePointer<Float>, t0: Int, t1: Int, b: Int, hkv: Int) {
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

        parallelFor(plan.baseTasks * splits) { worker, task in
            let split = task % splits
            let base = task / splits
            let blk = base % blocks
            let hkv = (base / blocks) % G
            let b = base / (blocks * G)
            let t0 = blk * tokensPerBlock, t1 = min(g.queries, t0 + tokensPerBlock)
            let rows = (t1 - t0) * rep
            let qs = scratch + worker * plan.perWorker
            let tileScratch = qs + maxRows * D
            let lohi = tileScratch + Int(ck_flash_scratch_floats(tile, D))
            var acc = lohi + maxRows * max(2, tile)
            var m = acc + maxRows * Dv
            var l = m + maxRows
            if let partials {
                acc = partials + task * partialStride
                m = acc + maxRows * Dv
                l = m + maxRows
            }

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
            var bounds = mask.keyBounds(positions: p0, p1, keyLength: keyLength)
            if splits > 1 {  // this split's share of the block's keys, in whole tiles
                let tiles = (bounds.count + tile - 1) / tile
                let per = (tiles + splits - 1) / splits
                let lo = min(bounds.upperBound, bounds.lowerBound + split * per * tile)
                bounds = lo..<min(bounds.upperBound, lo + per * tile)
            }
            let kBase = ops.key + b * ops.keyBatchStride + hkv * D
            let vBase = ops.value + b * ops.valueBatchStride + hkv * Dv
            var args = ck_flash_tile_args()
            args.q = UnsafePointer(qs); args.ldq = D; args.scale = scale
            args.ldk = ops.keyRowStride; args.ldv = ops.valueRowStride
            args.rows = Int32(rows); args.d = Int32(D); args.dv = Int32(Dv)
            args.sigmoid = isSigmoid ? 1 : 0; args.bias = bias; args.softcap = softcap
            args.m = m; args.l = l; args.o = acc; args.scratch = tileScratch
            let lo = UnsafeMutableRawPointer(lohi).bindMemory(to: Int32.self, capacity: 2 * maxRows)
            let hi = lo + maxRows
            let bytes = UnsafeMutableRawPointer(lohi).bindMemory(to: UInt8.self, capacity: maxRows * tile)
            var j0 = bounds.lowerBound
            while j0 < bounds.upperBound {
                let j1 = min(j0 + tile, bounds.upperBound)
                defer { j0 = j1 }
                let cover = mask.coverage(positions: p0, p1, keys: j0, j1)
                if cover == .empty { continue }
                let n = j1 - j0
                args.k = kBase + j0 * ops.keyRowStride
                args.v = vBase + j0 * ops.valueRowStride
                args.keys = Int32(n)
                args.lo = nil; args.hi = nil; args.allowed = nil
                if cover == .partial {
                    if mask.allowedInterval(position: p0, keyLength: keyLength) != nil {
                        // Interval-shaped masks (causal, window, padding): one [lo, hi) per row.
                        for r in 0..<rows {
                            let allowed = mask.allowedInterval(position: p0 + r / rep, keyLength: keyLength)!
                            lo[r] = Int32(min(max(allowed.lowerBound - j0, 0), n))
                            hi[r] = Int32(max(min(allowed.upperBound - j0, n), Int(lo[r])))
                        }
                        args.lo = UnsafePointer(lo); args.hi = UnsafePointer(hi)
                    } else {
                        for r in 0..<rows {
                            let pos = p0 + r / rep
                            for j in 0..<n { bytes[r * n + j] = mask.allows(position: pos, key: j0 + j) ? 1 : 0 }
                        }
                        args.allowed = UnsafePointer(bytes)
                    }
                }
                ck_flash_tile(&args)
            }
            if splits == 1 { writeOut(acc: acc, l: l, t0: t0, t1: t1, b: b, hkv: hkv) }
        }

        // Merge the split partials of each base task exactly, then write out.
        guard let partials else { return }
        parallelFor(plan.baseTasks) { worker, base in
            let blk = base % blocks
            let hkv = (base / blocks) % G
            let b = base / (blocks * G)
            let t0 = blk * tokensPerBlock, t1 = min(g.queries, t0 + tokensPerBlock)
            let rows = (t1 - t0) * rep
            let first = partials + base * splits * partialStride
            let acc = scratch + worker * plan.perWorker
            let l = acc + maxRows * Dv
            for r in 0..<rows {
                var mMax = -Float.infinity
                if !isSigmoid {
                    for s in 0..<splits { mMax = max(mMax, (first + s * partialStride + maxRows * Dv)[r]) }
                }
                let out = acc + r * Dv
                out.update(repeating: 0, count: Dv)
                var lSum: Float = 0
                for s in 0..<splits {
                    let part = first + s * partialStride
                    let mS = (part + maxRows * Dv)[r], lS = (part + maxRows * Dv + maxRows)[r]
                    let w: Float
                    if isSigmoid { w = 1 } else {
                        if mS == -.infinity { continue }  // this split saw nothing for the row
                        w = VectorMath.exp(mS - mMax)
                    }
                    lSum += lS * w
                    let src = part + r * Dv
                    for d in 0..<Dv { out[d] += w * src[d] }
                }
                l[r] = lSum
            }
            writeOut(acc: acc, l: l, t0: t0, t1: t1, b: b, hkv: hkv)
        }
    }
}
