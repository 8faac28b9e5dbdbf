import CKernels

extension QuantizedMatrix {
    /// `y[i·ldy + r] = beta · y[i·ldy + r] + Σ_j W[r, j] · x[i·ldx + j]` for `count` input vectors at once: a batched
    /// decode step (one row per sequence) reads and decodes the quantised weights once instead of once per sequence.
    ///
    /// Row i of the result is bit-identical to ``gemv(_:into:beta:)`` on vector i: each format's multi-input kernel
    /// (`ck_quant_gemv_rows`) repeats its one-input kernel's operations per input, so a sequence gets the same
    /// numbers batched or alone.
    /// Parts of a concatenated matrix (fused Q/K/V of different formats) are multiplied in place, each by its own
    /// kernel; large matrices are split into row panels across ``Threading/workers``.
    public func gemv(rows x: UnsafePointer<Float>, count: Int, stride ldx: Int, into y: UnsafeMutablePointer<Float>,
                     stride ldy: Int, beta: Float) {
        guard count > 0, rows > 0 else { return }
        let workers = Threading.workers
        guard workers > 1, rows * cols >= Self.parallelThreshold, !Threading.isInsideParallelRegion else {
            for c in chunks(panel: rows) { Self.gemv(c, x, count: count, ldx, cols, y + c.firstRow, ldy, beta) }
            return
        }
        // Panels of a multiple of 4 rows, about two per worker and part (as the one-input product).
        let panel = max(4, ((rows + 2 * workers - 1) / (2 * workers) + 3) / 4 * 4)
        let work = chunks(panel: panel)
        parallelFor(work.count) { i in
            let c = work[i]
            Self.gemv(c, x, count: count, ldx, cols, y + c.firstRow, ldy, beta)
        }
    }

    /// One chunk's product with `count` inputs.
    private static func gemv(_ c: Chunk, _ x: UnsafePointer<Float>, count: Int, _ ldx: Int, _ k: Int,
                             _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ beta: Float) {
        _ = ck_quant_gemv_rows(Int32(c.type.rawValue), c.base, c.rowBytes, x, ldx, count, k, y, ldy, c.rows, beta)
    }
}
