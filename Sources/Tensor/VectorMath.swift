import CKernels
import Foundation

/// Vectorised float kernels on raw buffers, shared by softmax, activations and attention.
///
/// `exp` is a Cephes-style range reduction (x = n·ln2 + r, |r| ≤ ln2/2) with a degree-6 polynomial, accurate to
/// about 2 ulp over the float range; inputs below −87.3 flush to 0 and −inf gives exactly 0.
public enum VectorMath {
    public typealias V = SIMD8<Float>

    /// e^x lane-wise.
    ///
    /// Written with plain lane arithmetic only (no `rounded`, no float→int conversion), which compiles to packed
    /// SSE code on the x86-64 baseline: n = round(x·log2 e) comes from the 1.5·2²³ magic-number trick, whose low
    /// mantissa bits are n itself, and 2ⁿ is assembled from those bits.
    @inlinable @inline(__always)
    public static func exp(_ input: V) -> V {
        let ln2Hi: Float = 0.693359375, ln2Lo: Float = -2.12194440e-4
        let magic: Float = 12_582_912  // 1.5·2²³: adding it rounds to an integer held in the low mantissa bits
        var x = maximum(minimum(input, V(repeating: 88.3)), V(repeating: -87.3))
        let shifted = x * 1.44269504088896341 + magic
        let n = shifted - magic
        x = x - n * ln2Hi
        x = x - n * ln2Lo
        var p = V(repeating: 1.9875691500e-4)
        p = p * x + 1.3981999507e-3
        p = p * x + 8.3334519073e-3
        p = p * x + 4.1665795894e-2
        p = p * x + 1.6666665459e-1
        p = p * x + 5.0000001201e-1
        p = p * (x * x) + x + 1
        // 2ⁿ: (n + 127) << 23, with n read from the magic sum's bits (magic's own bits are 0x4B400000).
        let nBits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((nBits &+ 127) &* 0x80_0000, to: V.self)
        let result = p * scale
        // Below −87.3 (and at −inf) the true value underflows: return exactly 0.
        return result.replacing(with: 0, where: input .< -87.3)
    }

    /// Lane-wise max / min as compare-and-select, which compiles to packed instructions (the standard library's
    /// NaN-aware `pointwiseMax`/`pointwiseMin` and `.max()` run lane by lane). NaN handling is not needed here.
    @inlinable @inline(__always)
    public static func maximum(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .> a) }
    @inlinable @inline(__always)
    public static func minimum(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .< a) }

    /// Scalar e^x through the same polynomial (for tails).
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    /// In place: `p[i] = exp(p[i] - shift)`; returns the sum of the results. Entries equal to −inf give 0.
    /// (C row kernel: AVX2 + FMA where the CPU has them.)
    @inlinable
    public static func expShiftSum(_ p: UnsafeMutablePointer<Float>, count n: Int, shift: Float) -> Float {
        ck_exp_shift_sum(p, n, shift)
    }

    /// Maximum of `n` floats (−inf when n = 0).
    @inlinable
    public static func max(_ p: UnsafePointer<Float>, count n: Int) -> Float { ck_max(p, n) }

    /// In place `p[i] *= s`.
    @inlinable
    public static func scale(_ p: UnsafeMutablePointer<Float>, count n: Int, by s: Float) { ck_scale(p, n, s) }

    /// In place `p[i] = σ(p[i] + bias)`.
    @inlinable
    public static func sigmoid(_ p: UnsafeMutablePointer<Float>, count n: Int, bias: Float) { ck_sigmoid(p, n, bias) }

    /// `out[i] = silu(gate[i]) · up[i]` (SwiGLU's gate).
    @inlinable
    public static func siluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count n: Int) {
        ck_silu_mul(gate, up, out, n)
    }

    /// Σ x[i]², accumulated in double precision.
    @inlinable
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count n: Int) -> Double { ck_sum_squares(x, n) }

    /// `out[i] = x[i] · s · w[i]`.
    @inlinable
    public static func scale(_ x: UnsafePointer<Float>, by s: Float, weights w: UnsafePointer<Float>,
                             into out: UnsafeMutablePointer<Float>, count n: Int) {
        ck_scale_weight(x, w, s, out, n)
    }

    /// Whether the row kernels run their AVX2 + FMA versions on this CPU.
    public static var usesAVX2: Bool { ck_uses_avx2() != 0 }

    /// σ(x) = 1 / (1 + e^(−x)) lane-wise.
    @inlinable @inline(__always)
    public static func sigmoid(_ x: V) -> V { 1 / (1 + exp(-x)) }
}
