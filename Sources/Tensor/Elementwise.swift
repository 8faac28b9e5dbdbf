import Foundation

extension Tensor {
    /// NumPy broadcasting of two shapes (aligned from the right; a dimension of 1 stretches).
    public static func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
        let r = Swift.max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let da = i < r - a.count ? 1 : a[i - (r - a.count)]
            let db = i < r - b.count ? 1 : b[i - (r - b.count)]
            precondition(da == db || da == 1 || db == 1, "shapes \(a) and \(b) do not broadcast")
            out[i] = da == 1 ? db : da
        }
        return out
    }

    /// Applies `op` elementwise with broadcasting.
    @inlinable
    public static func zipWith(_ a: Tensor, _ b: Tensor, _ op: (Float, Float) -> Float) -> Tensor {
        if a.shape == b.shape {
            var out = Tensor(uninitializedShape: a.shape)
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    out.withUnsafeMutableBufferPointer { po in for i in 0..<po.count { po[i] = op(pa[i], pb[i]) } }
                }
            }
            return out
        }
        let shape = broadcastShape(a.shape, b.shape)
        let r = shape.count
        // Strides of each operand in the broadcast index space (0 on stretched axes).
        func bstrides(_ s: [Int]) -> [Int] {
            let padded = [Int](repeating: 1, count: r - s.count) + s
            var st = [Int](repeating: 0, count: r)
            var acc = 1
            for i in stride(from: r - 1, through: 0, by: -1) {
                st[i] = padded[i] == 1 ? 0 : acc
                acc *= padded[i]
            }
            return st
        }
        let sa = bstrides(a.shape), sb = bstrides(b.shape)
        var out = Tensor(uninitializedShape: shape)
        let inner = shape.last ?? 1
        let (ia, ib) = (sa.last ?? 0, sb.last ?? 0)
        let outer = out.count / Swift.max(inner, 1)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { po in
                    var idx = [Int](repeating: 0, count: Swift.max(r - 1, 0))
                    for o in 0..<outer {
                        var offA = 0, offB = 0
                        for d in 0..<idx.count { offA += idx[d] * sa[d]; offB += idx[d] * sb[d] }
                        let base = o * inner
                        for j in 0..<inner { po[base + j] = op(pa[offA + j * ia], pb[offB + j * ib]) }
                        var d = idx.count - 1
                        while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
                    }
                }
            }
        }
        return out
    }

    /// Applies `op` to every element.
    @inlinable
    public func map(_ op: (Float) -> Float) -> Tensor {
        var out = Tensor(uninitializedShape: shape)
        withUnsafeBufferPointer { p in out.withUnsafeMutableBufferPointer { o in for i in 0..<o.count { o[i] = op(p[i]) } } }
        return out
    }

    /// Elementwise arithmetic with NumPy broadcasting (tensor ∘ tensor), and with a scalar on either side.
    public static func + (a: Tensor, b: Tensor) -> Tensor { zipWith(a, b, +) }
    public static func - (a: Tensor, b: Tensor) -> Tensor { zipWith(a, b, -) }
    public static func * (a: Tensor, b: Tensor) -> Tensor { zipWith(a, b, *) }
    public static func / (a: Tensor, b: Tensor) -> Tensor { zipWith(a, b, /) }
    public static func + (a: Tensor, s: Float) -> Tensor { a.map { $0 + s } }
    public static func - (a: Tensor, s: Float) -> Tensor { a.map { $0 - s } }
    public static func * (a: Tensor, s: Float) -> Tensor { a.map { $0 * s } }
    public static func / (a: Tensor, s: Float) -> Tensor { a.map { $0 / s } }
    public static func + (s: Float, a: Tensor) -> Tensor { a.map { s + $0 } }
    public static func - (s: Float, a: Tensor) -> Tensor { a.map { s - $0 } }
    public static func * (s: Float, a: Tensor) -> Tensor { a.map { s * $0 } }
    public static func / (s: Float, a: Tensor) -> Tensor { a.map { s / $0 } }
    public static prefix func - (a: Tensor) -> Tensor { a.map { -$0 } }
    public static func += (a: inout Tensor, b: Tensor) { a = a + b }

    /// e^x, using the engine's vectorised exp.
    public func exp() -> Tensor {
        var out = self
        out.withUnsafeMutableBufferPointer { _ = VectorMath.expShiftSum($0.baseAddress!, count: $0.count, shift: 0) }
        // The vector kernel clamps its input at 88.3 and so saturates at e^88.3 ≈ 2.2e38, but float e^x only
        // overflows above ≈ 88.72: the rare larger inputs go through libm (the right value, or +inf).
        withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in for i in 0..<x.count where x[i] > 88.3 { o[i] = Foundation.exp(x[i]) } }
        }
        return out
    }
    /// Natural logarithm.
    public func log() -> Tensor { map { Foundation.log($0) } }
    /// Square root.
    public func sqrt() -> Tensor { map { $0.squareRoot() } }
    /// Hyperbolic tangent.
    public func tanh() -> Tensor { map { Foundation.tanh($0) } }
    /// Logistic sigmoid 1 / (1 + e^−x).
    public func sigmoid() -> Tensor { map { 1 / (1 + Foundation.exp(-$0)) } }
    /// SiLU (swish): x · σ(x).
    public func silu() -> Tensor { map { $0 / (1 + Foundation.exp(-$0)) } }
    /// ReLU: max(x, 0).
    public func relu() -> Tensor { map { Swift.max($0, 0) } }

    /// GELU forms: exact (erf) as in BERT/RoFormer `gelu`, or the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    public enum GELUApproximation: Sendable { case none, tanh }

    /// GELU: x·Φ(x) with Φ via erf, or 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    public func gelu(approximation: GELUApproximation = .none) -> Tensor {
        switch approximation {
        case .none:
            return map { x in Float(0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))) }
        case .tanh:
            let c = Float((2 / Double.pi).squareRoot())
            return map { x in 0.5 * x * (1 + Foundation.tanh(c * (x + 0.044715 * x * x * x))) }
        }
    }
}
