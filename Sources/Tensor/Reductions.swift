import Foundation

extension Tensor {
    /// `self` with `axis` moved last, plus the shape that remains once it is reduced away.
    private func rows(along axis: Int) -> (rows: Tensor, reducedShape: [Int], length: Int) {
        let ax = normalizedAxis(axis)
        var order = Array(0..<rank)
        order.remove(at: ax)
        var reduced = shape
        reduced.remove(at: ax)
        return (permuted(order + [ax]), reduced, shape[ax])
    }

    private func reduce(axis: Int, keepingDims: Bool, _ f: (UnsafeBufferPointer<Float>) -> Float) -> Tensor {
        let (r, reduced, n) = rows(along: axis)
        let outShape = keepingDims ? { var s = shape; s[normalizedAxis(axis)] = 1; return s }() : reduced
        var out = Tensor(uninitializedShape: outShape)
        r.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<o.count { o[i] = f(UnsafeBufferPointer(rebasing: p[(i * n)..<((i + 1) * n)])) }
            }
        }
        return out
    }

    /// Sum along `axis` (accumulated in double precision).
    public func sum(axis: Int, keepingDims: Bool = false) -> Tensor {
        reduce(axis: axis, keepingDims: keepingDims) { Float($0.reduce(0.0) { $0 + Double($1) }) }
    }

    /// Mean along `axis`.
    public func mean(axis: Int, keepingDims: Bool = false) -> Tensor {
        reduce(axis: axis, keepingDims: keepingDims) { Float($0.reduce(0.0) { $0 + Double($1) } / Double($0.count)) }
    }

    /// Maximum along `axis`.
    public func max(axis: Int, keepingDims: Bool = false) -> Tensor {
        reduce(axis: axis, keepingDims: keepingDims) { VectorMath.max($0.baseAddress!, count: $0.count) }
    }

    /// Sum of all elements.
    public func sum() -> Float { Float(withUnsafeBufferPointer { $0.reduce(0.0) { $0 + Double($1) } }) }

    /// Index of the maximum along `axis` (first one on ties), in row-major order of the remaining axes.
    public func argmax(axis: Int = -1) -> [Int] {
        let (r, _, n) = rows(along: axis)
        precondition(n > 0, "argmax over an empty axis of shape \(shape)")
        return r.withUnsafeBufferPointer { p in
            (0..<(r.count / n)).map { i in
                var best = i * n
                for j in (i * n)..<((i + 1) * n) where p[j] > p[best] { best = j }
                return best - i * n
            }
        }
    }

    /// The `k` largest values along `axis`, sorted descending (ties: lower index first), and their indices.
    /// `values` has `axis` shrunk to `k` and moved last; `indices` is row-major in the same layout.
    public func topK(_ k: Int, axis: Int = -1) -> (values: Tensor, indices: [Int]) {
        let (r, reduced, n) = rows(along: axis)
        precondition(k >= 0 && k <= n, "top-k with k = \(k) on an axis of length \(n) (shape \(shape))")
        let rowsCount = n == 0 ? 0 : r.count / n
        var values = Tensor(uninitializedShape: reduced + [k])
        var indices = [Int](repeating: 0, count: rowsCount * k)
        r.withUnsafeBufferPointer { p in
            values.withUnsafeMutableBufferPointer { v in
                for i in 0..<rowsCount {
                    let base = i * n
                    let order = (0..<n).sorted { p[base + $0] > p[base + $1] || (p[base + $0] == p[base + $1] && $0 < $1) }
                    for j in 0..<k { indices[i * k + j] = order[j]; v[i * k + j] = p[base + order[j]] }
                }
            }
        }
        return (values, indices)
    }

    // MARK: Softmax family (last axis)

    /// Softmax over the last axis: exp(x − max) / Σ. Entries of −inf give 0; a row that is entirely −inf gives
    /// all zeros (never NaN).
    public func softmax() -> Tensor {
        var out = self
        let n = shape.last ?? 1
        guard n > 0 else { return out }
        let rows = count / n
        out.withUnsafeMutableBufferPointer { p in
            let base = p.baseAddress!
            let body = { (r: Int) in
                let row = base + r * n
                let m = VectorMath.max(row, count: n)
                if m == -.infinity {
                    row.update(repeating: 0, count: n)
                    return
                }
                let s = VectorMath.expShiftSum(row, count: n, shift: m)
                VectorMath.scale(row, count: n, by: 1 / s)
            }
            if count >= 1 << 16 { parallelFor(rows, body) } else { for r in 0..<rows { body(r) } }
        }
        return out
    }

    /// log-softmax over the last axis: x − max − log Σ exp(x − max). A row that is entirely −inf gives −inf
    /// everywhere (the log of the all-zero softmax; PyTorch gives NaN there).
    public func logSoftmax() -> Tensor {
        var out = self
        let n = shape.last ?? 1
        guard n > 0 else { return out }
        out.withUnsafeMutableBufferPointer { p in
            var tmp = [Float](repeating: 0, count: n)
            for r in 0..<(p.count / n) {
                let row = p.baseAddress! + r * n
                let m = VectorMath.max(row, count: n)
                if m == -.infinity { continue }  // already all −inf
                let s = tmp.withUnsafeMutableBufferPointer { t -> Float in
                    t.baseAddress!.update(from: row, count: n)
                    return VectorMath.expShiftSum(t.baseAddress!, count: n, shift: m)
                }
                // (x − max) − log Σ, in that order: folding max + log Σ into one shift first would round it at the
                // magnitude of max and lose log Σ entirely when |max| is large (e.g. 1e4 or 1e30).
                let logSum = Foundation.log(s)
                for j in 0..<n { row[j] = (row[j] - m) - logSum }
            }
        }
        return out
    }

    // MARK: Normalisation (last axis)

    /// LayerNorm over the last axis: (x − mean) / √(var + eps) · weight + bias (biased variance, as PyTorch).
    public func layerNorm(weight: Tensor, bias: Tensor?, eps: Float) -> Tensor {
        let n = shape.last ?? 0
        precondition(weight.shape == [n], "layerNorm weight must be [\(n)], got \(weight.shape)")
        if let bias { precondition(bias.shape == [n], "layerNorm bias must be [\(n)], got \(bias.shape)") }
        let b = bias ?? Tensor.zeros([n])
        var out = self
        out.withUnsafeMutableBufferPointer { p in
            weight.withUnsafeBufferPointer { w in
                b.withUnsafeBufferPointer { bb in
                    for r in 0..<(n == 0 ? 0 : p.count / n) {
                        let row = p.baseAddress! + r * n
                        var mean = 0.0
                        for j in 0..<n { mean += Double(row[j]) }
                        mean /= Double(n)
                        var v = 0.0
                        for j in 0..<n { let d = Double(row[j]) - mean; v += d * d }
                        let inv = Float(1 / (v / Double(n) + Double(eps)).squareRoot())
                        let fm = Float(mean)
                        for j in 0..<n { row[j] = (row[j] - fm) * inv * w[j] + bb[j] }
                    }
                }
            }
        }
        return out
    }

    /// RMSNorm over the last axis: x / √(mean(x²) + eps) · weight (Llama / DeepSeek form).
    public func rmsNorm(weight: Tensor, eps: Float) -> Tensor {
        let n = shape.last ?? 0
        precondition(weight.shape == [n], "rmsNorm weight must be [\(n)], got \(weight.shape)")
        var out = self
        out.withUnsafeMutableBufferPointer { p in
            weight.withUnsafeBufferPointer { w in
                for r in 0..<(n == 0 ? 0 : p.count / n) {
                    let row = p.baseAddress! + r * n
                    let inv = Float(1 / (VectorMath.sumOfSquares(row, count: n) / Double(n) + Double(eps)).squareRoot())
                    VectorMath.scale(row, by: inv, weights: w.baseAddress!, into: row, count: n)
                }
            }
        }
        return out
    }
}
