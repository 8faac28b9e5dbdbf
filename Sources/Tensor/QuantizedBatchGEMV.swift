import CKernels

extension QuantizedMatrix {
    /// `y[i·ldy + r] = beta · y[i·ldy + r] + Σ_j W[r, j] · x[i·ldx + j]` for `count` input vectors at once: a batched
    /// decode step (one row per sequence) reads the quantised weights once instead of once per sequence.
    ///
    /// Row i of the result is bit-identical to ``gemv(_:into:beta:)`` on vector i (`Sources/CKernels/quant_gemv_rows.c`
    /// repeats the one-vector kernel's operations per row and input), so a sequence gets the same numbers batched or
    /// alone. Large matrices are split into row panels across ``Threading/workers``.
    public func gemv(rows x: UnsafePointer<Float>, count: Int, stride ldx: Int, into y: UnsafeMutablePointer<Float>,
                     stride ldy: Int, beta: Float) {
        let kernel: (UnsafeRawPointer?, Int, UnsafePointer<Float>?, Int, Int, Int, UnsafeMutablePointer<Float>?, Int, Int, Float) -> Void
        switch type {
        case .q8_0: kernel = ck_gemv_rows_q8_0
        case .q4_0: kernel = ck_gemv_rows_q4_0
        case .q4_1: kernel = ck_gemv_rows_q4_1
        default:
            for i in 0..<count { gemv(x + i * ldx, into: y + i * ldy, beta: beta) }
            return
        }
        withUnsafeBytes { bytes in
            let (w, ldw, k) = (bytes.baseAddress!, rowBytes, cols)
            let workers = Threading.workers
            guard workers > 1, rows * cols >= Self.parallelThreshold, !Threading.isInsideParallelRegion else {
                kernel(w, ldw, x, ldx, count, k, y, ldy, rows, beta)
                return
            }
            let panel = ((rows + workers - 1) / workers + 3) / 4 * 4
            parallelFor((rows + panel - 1) / panel) { p in
                let start = p * panel
                kernel(w + start * ldw, ldw, x, ldx, count, k, y + start, ldy, min(panel, rows - start), beta)
            }
        }
    }
}
