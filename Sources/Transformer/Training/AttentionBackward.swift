import Foundation
import Tensor

/// FlashAttention-2 training pair (Dao 2023, "FlashAttention-2", Algorithms 1 and 2): a tiled forward that also
/// saves each query row's log-sum-exp, and a tiled backward that recomputes the score tiles from it.
///
/// Bidirectional self-attention with key padding, one (sequence, head) at a time. Forward, for each block of
/// `rowsPerBlock` queries, over blocks of `columnsPerBlock` keys (keys at or past `keyLength` are padding):
///
///     S = scale · Qᵢ·Kⱼᵀ;  online softmax (running max m, running sum l), Oᵢ += P̃·Vⱼ;  Oᵢ /= l;  LSEᵢ = m + log l
///
/// Backward, with Dᵢ = rowsum(dOᵢ ⊙ Oᵢ), for each key block j and each query block i:
///
///     P = exp(scale · Qᵢ·Kⱼᵀ − LSEᵢ)              recomputed, never stored beyond one tile
///     dVⱼ += Pᵀ·dOᵢ;   dP = dOᵢ·Vⱼᵀ;   dS = P ⊙ (dP − Dᵢ)
///     dQᵢ += scale · dS·Kⱼ;   dKⱼ += scale · dSᵀ·Qᵢ
///
/// Extra memory: the LSE (N floats per head), D (N floats) and two `rowsPerBlock × columnsPerBlock` tiles per
/// worker — O(N·d) with the gradients themselves, never N×N. ``materializedBackward`` is the textbook version
/// (whole P in memory) the tests compare against.
///
/// Operands are strided row-major matrices (`[tokens, …]` rows with a row stride), so Q, K, V of one head are read
/// straight out of a fused `[tokens, 3·hidden]` projection, and dQ, dK, dV written straight into its gradient.
public enum FlashAttentionTraining {
    /// Query rows per tile.
    public static let rowsPerBlock = 64
    /// Key columns per tile.
    public static let columnsPerBlock = 64

    /// One (sequence, head) problem: `queries` rows of Q / O / dO, `keyLength` valid keys, head dim `headDim`.
    public struct Head {
        public var q: UnsafeMutablePointer<Float>
        public var k: UnsafeMutablePointer<Float>
        public var v: UnsafeMutablePointer<Float>
        /// Row stride of q, k and v (they usually live in one fused projection).
        public var qkvStride: Int
        public var o: UnsafeMutablePointer<Float>
        public var oStride: Int
        /// `queries` floats.
        public var lse: UnsafeMutablePointer<Float>
        public var queries: Int
        public var keyLength: Int
        public var headDim: Int
        public var scale: Float

        public init(q: UnsafeMutablePointer<Float>, k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                    qkvStride: Int, o: UnsafeMutablePointer<Float>, oStride: Int, lse: UnsafeMutablePointer<Float>,
                    queries: Int, keyLength: Int, headDim: Int, scale: Float) {
            (self.q, self.k, self.v, self.qkvStride, self.o, self.oStride, self.lse) = (q, k, v, qkvStride, o, oStride, lse)
            (self.queries, self.keyLength, self.headDim, self.scale) = (queries, keyLength, headDim, scale)
        }
    }

    /// Floats of scratch one worker needs for ``forward(_:scratch:)`` and ``backward(_:dO:dOStride:dQ:dK:dV:gradStride:scratch:)``
    /// (independent of N beyond the D vector: `2·rows·cols + 2·rows + N`).
    public static func scratchFloats(queries: Int) -> Int {
        2 * rowsPerBlock * columnsPerBlock + 2 * rowsPerBlock + queries
    }

    /// Forward: writes O (normalised) and LSE. `keyLength ≥ 1`.
    public static func forward(_ h: Head, scratch: UnsafeMutablePointer<Float>) {
        let (T, L, D) = (h.queries, h.keyLength, h.headDim)
        let (br, bc) = (rowsPerBlock, columnsPerBlock)
        let s = scratch, m = scratch + br * bc, l = m + br
        var qb = 0
        while qb < T {
            let rows = min(br, T - qb)
            for r in 0..<rows {
                m[r] = -.infinity; l[r] = 0
                (h.o + (qb + r) * h.oStride).update(repeating: 0, count: D)
            }
            var kb = 0
            while kb < L {
                let cols = min(bc, L - kb)
                GEMM.sgemm(transA: false, transB: true, m: rows, n: cols, k: D, alpha: h.scale,
                           a: h.q + qb * h.qkvStride, lda: h.qkvStride, b: h.k + kb * h.qkvStride, ldb: h.qkvStride,
                           c: s, ldc: cols)
                for r in 0..<rows {
                    let row = s + r * cols
                    let newMax = Swift.max(m[r], VectorMath.max(row, count: cols))
                    let sum = VectorMath.expShiftSum(row, count: cols, shift: newMax)
                    let correction = m[r] == -.infinity ? 0 : Foundation.exp(m[r] - newMax)
                    l[r] = l[r] * correction + sum
                    m[r] = newMax
                    if correction != 1 { VectorMath.scale(h.o + (qb + r) * h.oStride, count: D, by: correction) }
                }
                GEMM.sgemm(transA: false, transB: false, m: rows, n: D, k: cols, a: s, lda: cols,
                           b: h.v + kb * h.qkvStride, ldb: h.qkvStride, beta: 1, c: h.o + qb * h.oStride, ldc: h.oStride)
                kb += cols
            }
            for r in 0..<rows {
                VectorMath.scale(h.o + (qb + r) * h.oStride, count: D, by: 1 / l[r])
                h.lse[qb + r] = m[r] + Foundation.log(l[r])
            }
            qb += rows
        }
    }

    /// Backward: accumulates nothing — overwrites dQ (all `queries` rows), dK and dV (all rows; padded keys get 0).
    /// `h.o` and `h.lse` must be the forward's outputs.
    public static func backward(_ h: Head, dO: UnsafePointer<Float>, dOStride: Int, dQ: UnsafeMutablePointer<Float>,
                                dK: UnsafeMutablePointer<Float>, dV: UnsafeMutablePointer<Float>, gradStride: Int,
                                scratch: UnsafeMutablePointer<Float>) {
        let (T, L, D) = (h.queries, h.keyLength, h.headDim)
        let (br, bc) = (rowsPerBlock, columnsPerBlock)
        let p = scratch, dp = scratch + br * bc, dvec = dp + br * bc + 2 * br
        for i in 0..<T {
            let a = dO + i * dOStride, b = h.o + i * h.oStride
            var acc: Float = 0
            for d in 0..<D { acc += a[d] * b[d] }
            dvec[i] = acc
            (dQ + i * gradStride).update(repeating: 0, count: D)
            (dK + i * gradStride).update(repeating: 0, count: D)
            (dV + i * gradStride).update(repeating: 0, count: D)
        }
        var kb = 0
        while kb < L {
            let cols = min(bc, L - kb)
            var qb = 0
            while qb < T {
                let rows = min(br, T - qb)
                GEMM.sgemm(transA: false, transB: true, m: rows, n: cols, k: D, alpha: h.scale,
                           a: h.q + qb * h.qkvStride, lda: h.qkvStride, b: h.k + kb * h.qkvStride, ldb: h.qkvStride,
                           c: p, ldc: cols)
                for r in 0..<rows {
                    _ = VectorMath.expShiftSum(p + r * cols, count: cols, shift: h.lse[qb + r])
                }
                // dVⱼ += Pᵀ·dOᵢ
                GEMM.sgemm(transA: true, transB: false, m: cols, n: D, k: rows, a: p, lda: cols,
                           b: dO + qb * dOStride, ldb: dOStride, beta: 1, c: dV + kb * gradStride, ldc: gradStride)
                // dP = dOᵢ·Vⱼᵀ
                GEMM.sgemm(transA: false, transB: true, m: rows, n: cols, k: D, a: dO + qb * dOStride, lda: dOStride,
                           b: h.v + kb * h.qkvStride, ldb: h.qkvStride, c: dp, ldc: cols)
                // dS = P ⊙ (dP − D), written over dP
                for r in 0..<rows {
                    let pr = p + r * cols, dr = dp + r * cols, di = dvec[qb + r]
                    for c in 0..<cols { dr[c] = pr[c] * (dr[c] - di) }
                }
                GEMM.sgemm(transA: false, transB: false, m: rows, n: D, k: cols, alpha: h.scale, a: dp, lda: cols,
                           b: h.k + kb * h.qkvStride, ldb: h.qkvStride, beta: 1, c: dQ + qb * gradStride, ldc: gradStride)
                GEMM.sgemm(transA: true, transB: false, m: cols, n: D, k: rows, alpha: h.scale, a: dp, lda: cols,
                           b: h.q + qb * h.qkvStride, ldb: h.qkvStride, beta: 1, c: dK + kb * gradStride, ldc: gradStride)
                qb += rows
            }
            kb += cols
        }
    }

    /// The textbook backward with the whole `queries × keyLength` probability matrix in memory (for tests):
    /// P = softmax(scale·Q·Kᵀ) over the valid keys, then the same formulas as ``backward``. Overwrites dQ, dK, dV.
    public static func materializedBackward(_ h: Head, dO: UnsafePointer<Float>, dOStride: Int,
                                            dQ: UnsafeMutablePointer<Float>, dK: UnsafeMutablePointer<Float>,
                                            dV: UnsafeMutablePointer<Float>, gradStride: Int) {
        let (T, L, D) = (h.queries, h.keyLength, h.headDim)
        var P = [Float](repeating: 0, count: T * L), dP = [Float](repeating: 0, count: T * L)
        for i in 0..<T {
            var row = [Double](repeating: 0, count: L)
            for j in 0..<L {
                var acc: Double = 0
                for d in 0..<D { acc += Double(h.q[i * h.qkvStride + d]) * Double(h.k[j * h.qkvStride + d]) }
                row[j] = acc * Double(h.scale)
            }
            let mx = row.max()!
            let z = row.reduce(0) { $0 + Foundation.exp($1 - mx) }
            for j in 0..<L { P[i * L + j] = Float(Foundation.exp(row[j] - mx) / z) }
        }
        for i in 0..<T {
            var di: Double = 0
            for j in 0..<L {
                var acc: Double = 0
                for d in 0..<D { acc += Double(dO[i * dOStride + d]) * Double(h.v[j * h.qkvStride + d]) }
                dP[i * L + j] = Float(acc)
                di += Double(P[i * L + j]) * acc
            }
            for j in 0..<L { dP[i * L + j] = P[i * L + j] * (dP[i * L + j] - Float(di)) }  // dS
        }
        for i in 0..<T {
            for d in 0..<D {
                var acc: Double = 0
                for j in 0..<L { acc += Double(dP[i * L + j]) * Double(h.k[j * h.qkvStride + d]) }
                dQ[i * gradStride + d] = Float(acc) * h.scale
            }
        }
        for j in 0..<T {
            for d in 0..<D {
                var ak: Double = 0, av: Double = 0
                if j < L {
                    for i in 0..<T {
                        ak += Double(dP[i * L + j]) * Double(h.q[i * h.qkvStride + d])
                        av += Double(P[i * L + j]) * Double(dO[i * dOStride + d])
                    }
                }
                dK[j * gradStride + d] = Float(ak) * h.scale
                dV[j * gradStride + d] = Float(av)
            }
        }
    }
}
