/// Batched decoding: one forward pass advances k independent sequences by one token each.
///
///     x = embed(tokens)                          [k, hidden]   one row per sequence (× Gemma's scale)
///     for layer (the same residual structure and norms as a lone step, ``DecoderLayer``):
///         qkv = norm(x)·Wqkvᵀ                    [k, …]        one product over all k rows
///         per sequence i: RoPE at its own position, append k/v to ITS cache, attend over ITS prefix
///         x += o·Woᵀ;  x += ffn(norm(x))         one product each over all k rows (``FeedForward/rowwise(_:)``)
///     logits = lmHead(norm(x))                   [k, vocab]    (soft-capped like a lone step)
///
/// The sequences share every weight matrix and nothing else: each has its own KV cache and position. Decode is bound
/// by reading the weights, so reading them once per step for k sequences instead of k times is where continuous
/// batching (``BatchScheduler``) gets its throughput.
///
/// Each sequence gets the logits it would get decoded alone: attention runs per sequence with the same kernel, and
/// a quantised ``Linear`` multiplies every row with the same per-row arithmetic as a lone decode step
/// (``Linear/rowwise(_:)``), so the results are bit-identical on quantised models; float weights go through one
/// GEMM whose rounding may differ from a lone GEMV in the last bits.
extension DecoderModel {
    /// Advances each sequence `i` by `tokens[i]` at position `caches[i].length` and returns the logits `[k, vocab]`
    /// (row i for sequence i). The caches must be distinct.
    ///
    /// - Throws: ``GenerationError`` for an empty batch, a token outside the vocabulary, or a full cache (nothing is
    ///   written then).
    public func decodeStep(_ tokens: [Int], caches: [KVCache]) throws -> Tensor {
        guard !tokens.isEmpty, tokens.count == caches.count else { throw GenerationError.emptyInput }
        try checkTokens(tokens)
        for c in caches { try c.reserve(1) }
        let positions = caches.map(\.length)
        var x = embed(tokens)  // [k, hidden]
        for (l, layer) in layers.enumerated() {
            let stores = caches.map { $0.layers[l] }
            x = layer.forward(x, mix: { mix(layer.attention, $0, caches: stores, positions: positions) },
                              feedForward: { layer.feedForward.rowwise($0) })
        }
        for c in caches { c.advance(by: 1) }
        return capped(lmHead.rowwise(norm(x)))
    }

    /// Attention for one row per sequence.
    private func mix(_ mixer: any TokenMixer, _ x: Tensor, caches: [KVCache.Layer], positions: [Int]) -> Tensor {
        let k = x.shape[0]
        guard let gqa = mixer as? GroupedQueryAttention else {
            // Any other mixer: one call per sequence (correct, unbatched).
            return Tensor.concatenate((0..<k).map { i in
                mixer(x.sliced(axis: 0, i..<(i + 1)), cache: caches[i], position: positions[i])
            }, axis: 0)
        }
        var proj = gqa.qkv.rowwise(x)  // [k, (H + 2G)·D]
        let width = proj.shape[1], outWidth = gqa.heads * gqa.headDim
        var out = Tensor(uninitializedShape: [k, outWidth])
        proj.withUnsafeMutableBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                // One sequence per task: each attends over its own cache on one worker (one parallel region per
                // layer instead of one per sequence; a single short query row has little to split).
                let (pp, op) = (p.baseAddress!, o.baseAddress!)
                parallelFor(k) { i in
                    gqa.attend(pp + i * width, rows: 1, cache: caches[i], position: positions[i], into: op + i * outWidth)
                }
            }
        }
        return gqa.output.rowwise(out)
    }
}

extension Linear {
    /// `x·Wᵀ + b` for `x` of shape `[k, in]`, where every row gives what it gives alone: with quantised weights all
    /// rows go through ``QuantizedMatrix/gemv(rows:count:stride:into:stride:beta:)`` (weights read once, each row
    /// bit-identical to the one-row GEMV a lone decode step uses); with float weights through one GEMM.
    public func rowwise(_ x: Tensor) -> Tensor {
        let k = x.shape[0]
        guard let quantized, k > 1, x.rank == 2, x.shape[1] == inFeatures else { return self(x) }
        var out = Tensor(uninitializedShape: [k, outFeatures])
        let n = outFeatures, m = inFeatures
        out.withUnsafeMutableBufferPointer { y in
            if let bias {
                bias.withUnsafeBufferPointer { b in for i in 0..<k { (y.baseAddress! + i * n).update(from: b.baseAddress!, count: n) } }
            }
            x.withUnsafeBufferPointer { xs in
                quantized.gemv(rows: xs.baseAddress!, count: k, stride: m, into: y.baseAddress!, stride: n, beta: bias == nil ? 0 : 1)
            }
        }
        return out
    }
}
