extension Tensor {
    @usableFromInline
    func normalizedAxis(_ axis: Int) -> Int {
        let a = axis < 0 ? axis + rank : axis
        precondition(a >= 0 && a < rank, "axis \(axis) out of range for shape \(shape)")
        return a
    }

    /// Axes reordered: result axis `i` is input axis `order[i]` (a copy in the new row-major order).
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permutation \(order) invalid for shape \(shape)")
        if order == Array(0..<rank) { return self }
        let newShape = order.map { shape[$0] }
        let inStrides = strides
        let srcStrides = order.map { inStrides[$0] }
        var out = Tensor(uninitializedShape: newShape)
        let inner = newShape.last ?? 1
        let innerStride = srcStrides.last ?? 1
        let outer = count / Swift.max(inner, 1)
        withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                var idx = [Int](repeating: 0, count: Swift.max(rank - 1, 0))
                for o in 0..<outer {
                    var off = 0
                    for d in 0..<idx.count { off += idx[d] * srcStrides[d] }
                    for j in 0..<inner { dst[o * inner + j] = src[off + j * innerStride] }
                    var d = idx.count - 1
                    while d >= 0 { idx[d] += 1; if idx[d] < newShape[d] { break }; idx[d] = 0; d -= 1 }
                }
            }
        }
        return out
    }

    /// Swaps two axes (default: the last two).
    public func transposed(_ a: Int = -2, _ b: Int = -1) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(normalizedAxis(a), normalizedAxis(b))
        return permuted(order)
    }

    /// Elements `range` along `axis`.
    public func sliced(axis: Int, _ range: Range<Int>) -> Tensor {
        let ax = normalizedAxis(axis)
        precondition(range.lowerBound >= 0 && range.upperBound <= shape[ax],
                     "slice \(range) out of bounds for axis \(ax) of shape \(shape)")
        var newShape = shape
        newShape[ax] = range.count
        let outer = shape[..<ax].reduce(1, *)
        let inner = shape[(ax + 1)...].reduce(1, *)
        var out = Tensor(uninitializedShape: newShape)
        withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for o in 0..<outer {
                    (dst.baseAddress! + o * range.count * inner).update(
                        from: src.baseAddress! + (o * shape[ax] + range.lowerBound) * inner, count: range.count * inner)
                }
            }
        }
        return out
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    public static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor {
        precondition(!parts.isEmpty, "concatenate needs at least one tensor")
        let ax = parts[0].normalizedAxis(axis)
        for p in parts {
            precondition(p.rank == parts[0].rank
                         && p.shape.enumerated().allSatisfy { $0.offset == ax || $0.element == parts[0].shape[$0.offset] },
                         "concatenate along axis \(ax): shapes \(parts.map(\.shape)) disagree")
        }
        var newShape = parts[0].shape
        newShape[ax] = parts.reduce(0) { $0 + $1.shape[ax] }
        let outer = newShape[..<ax].reduce(1, *)
        let inner = newShape[(ax + 1)...].reduce(1, *)
        var out = Tensor(uninitializedShape: newShape)
        out.withUnsafeMutableBufferPointer { dst in
            var offset = 0
            for p in parts {
                let w = p.shape[ax] * inner
                p.withUnsafeBufferPointer { src in
                    for o in 0..<outer {
                        (dst.baseAddress! + o * newShape[ax] * inner + offset).update(from: src.baseAddress! + o * w, count: w)
                    }
                }
                offset += w
            }
        }
        return out
    }

    /// Splits along `axis` into pieces of the given sizes (which must add up to that dimension).
    public func split(sizes: [Int], axis: Int) -> [Tensor] {
        let ax = normalizedAxis(axis)
        precondition(sizes.reduce(0, +) == shape[ax], "split sizes \(sizes) do not add up to \(shape[ax]) (axis \(ax) of \(shape))")
        var start = 0
        return sizes.map { n in defer { start += n }; return sliced(axis: ax, start..<(start + n)) }
    }

    /// Stacks equal-shaped tensors along a new axis.
    public static func stack(_ parts: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!parts.isEmpty, "stack needs at least one tensor")
        let s = parts[0].shape
        precondition(parts.allSatisfy { $0.shape == s }, "stack: shapes \(parts.map(\.shape)) differ")
        let ax = axis < 0 ? axis + s.count + 1 : axis
        precondition(ax >= 0 && ax <= s.count, "stack axis \(axis) out of range for shape \(s)")
        var expanded = s
        expanded.insert(1, at: ax)
        return concatenate(parts.map { $0.reshaped(expanded) }, axis: ax)
    }
}
