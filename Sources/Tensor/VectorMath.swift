import Foundation

/// Vectorised float kernels on raw buffers, shared by softmax, activations and attention.
///
/// `exp` is a Cephes-style range reduction (x = n·ln2 + r, |r| ≤ ln2/2) with a degree-6 polynomial, accurate to
/// about 2 ulp over the float range; inputs below −87.3 flush to 0 and −inf gives exactly 0.
public enum VectorMath {
    public typealias V = SIMD8<Float>

    /// e^x lane-wise.
    @inlinable @inline(__always)
    public static func exp(_ input: V) -> V {
        let ln2Hi: Float = 0.693359375, ln2Lo: Float = -2.12194440e-4
        var x = input.clamped(lowerBound: V(repeating: -87.3), upperBound: V(repeating: 88.3))
        let n = (x * 1.44269504088896341).rounded(.toNearestOrEven)
        x = x - n * ln2Hi
        x = x - n * ln2Lo
        var p = V(repeating: 1.9875691500e-4)
        p = p * x + 1.3981999507e-3
        p = p * x + 8.3334519073e-3
        p = p * x + 4.1665795894e-2
        p = p * x + 1.6666665459e-1
        p = p * x + 5.0000001201e-1
        let x2 = x * x
        p = p * x2 + x + 1
        // 2^n by building the exponent bits.
        let bits = (SIMD8<Int32>(truncatingIfNeeded: SIMD8<Int32>(n)) &+ 127) &<< 23
        let scale = unsafeBitCast(bits, to: V.self)
        return (p * scale).replacing(with: 0, where: input .< -87.3)
    }

    /// Scalar e^x through the same polynomial (for tails).
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }

    /// In place: `p[i] = exp(p[i] - shift)`; returns the sum of the results. Entries equal to −inf give 0.
    @inlinable
    public static func expShiftSum(_ p: UnsafeMutablePointer<Float>, count n: Int, shift: Float) -> Float {
        var acc = V(repeating: 0)
        var i = 0
        let s = V(repeating: shift)
        while i + 8 <= n {
            let raw = UnsafeMutableRawPointer(p + i)
            let v = exp(raw.loadUnaligned(as: V.self) - s)
            raw.storeBytes(of: v, as: V.self)
            acc += v
            i += 8
        }
        var total = acc.sum()
        while i < n {
            let v = exp(p[i] - shift)
            p[i] = v
            total += v
            i += 1
        }
        return total
    }

    /// Maximum of `n` floats (−inf when n = 0).
    @inlinable
    public static func max(_ p: UnsafePointer<Float>, count n: Int) -> Float {
        var m = V(repeating: -.infinity)
        var i = 0
        while i + 8 <= n {
            m = pointwiseMax(m, UnsafeRawPointer(p + i).loadUnaligned(as: V.self))
            i += 8
        }
        var r = m.max()
        while i < n { r = Swift.max(r, p[i]); i += 1 }
        return r
    }

    /// In place `p[i] *= s`.
    @inlinable
    public static func scale(_ p: UnsafeMutablePointer<Float>, count n: Int, by s: Float) {
        var i = 0
        while i + 8 <= n {
            let raw = UnsafeMutableRawPointer(p + i)
            raw.storeBytes(of: raw.loadUnaligned(as: V.self) * s, as: V.self)
            i += 8
        }
        while i < n { p[i] *= s; i += 1 }
    }

    /// σ(x) = 1 / (1 + e^(−x)) lane-wise.
    @inlinable @inline(__always)
    public static func sigmoid(_ x: V) -> V { 1 / (1 + exp(-x)) }
}
