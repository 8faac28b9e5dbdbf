import XCTest
import Tensor

// Small, hand-checkable tests of the Tensor core: every expected value below is written from the definition of the
// operation, not printed from the engine.

final class TensorCoreTests: XCTestCase {
    /// [[1, 2, 3], [4, 5, 6]]
    let m23 = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])

    // MARK: Creation and access

    func testCreationAndAccess() {
        XCTAssertEqual(m23.shape, [2, 3])
        XCTAssertEqual(m23.count, 6)
        XCTAssertEqual(m23.rank, 2)
        XCTAssertEqual(m23.strides, [3, 1])
        XCTAssertEqual(m23[0, 2], 3)
        XCTAssertEqual(m23[1, 0], 4)
        XCTAssertEqual(Tensor.zeros([2, 2]).scalars, [0, 0, 0, 0])
        XCTAssertEqual(Tensor.ones([3]).scalars, [1, 1, 1])
        XCTAssertEqual(Tensor.filled([2], 7).scalars, [7, 7])
        XCTAssertEqual(Tensor(scalar: 2.5).shape, [])
        XCTAssertEqual(Tensor(scalar: 2.5).item, 2.5)
        XCTAssertEqual(Tensor([1, 2]).shape, [2])
        XCTAssertEqual(Tensor(shape: [2, 3, 4], repeating: 0).strides, [12, 4, 1])
        XCTAssertEqual(Tensor.zeros([0, 3]).count, 0)
    }

    func testArange() {
        XCTAssertEqual(Tensor.arange(0, 5).scalars, [0, 1, 2, 3, 4])
        XCTAssertEqual(Tensor.arange(1, 2, step: 0.25).scalars, [1, 1.25, 1.5, 1.75])
        XCTAssertEqual(Tensor.arange(0, 5, step: 2).scalars, [0, 2, 4])
        XCTAssertEqual(Tensor.arange(5, 0, step: -2).scalars, [5, 3, 1])
        XCTAssertEqual(Tensor.arange(3, 3).shape, [0])
        XCTAssertEqual(Tensor.arange(3, 1).shape, [0])
    }

    // MARK: Shape ops

    func testReshape() {
        let t = Tensor.arange(0, 6)
        XCTAssertEqual(t.reshaped([2, 3]), Tensor(shape: [2, 3], values: [0, 1, 2, 3, 4, 5]))
        XCTAssertEqual(t.reshaped([-1, 3]).shape, [2, 3])
        XCTAssertEqual(t.reshaped([3, -1]).shape, [3, 2])
        XCTAssertEqual(t.reshaped([-1]).shape, [6])
        XCTAssertEqual(t.reshaped([1, -1, 2]).shape, [1, 3, 2])
        XCTAssertEqual(t.reshaped([3, -1])[2, 1], 5)
        XCTAssertEqual(Tensor(scalar: 4).reshaped([1, 1]).shape, [1, 1])
    }

    func testTranspose() {
        // [[1, 2, 3], [4, 5, 6]]ᵀ = [[1, 4], [2, 5], [3, 6]]
        XCTAssertEqual(m23.transposed(), Tensor(shape: [3, 2], values: [1, 4, 2, 5, 3, 6]))
        XCTAssertEqual(m23.transposed(0, 1), m23.transposed())
        XCTAssertEqual(m23.transposed().transposed(), m23)
        // Batched: each [2, 3] block transposed.
        let b = Tensor(shape: [2, 2, 3], values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
        XCTAssertEqual(b.transposed(), Tensor(shape: [2, 3, 2], values: [1, 4, 2, 5, 3, 6, 7, 10, 8, 11, 9, 12]))
        // Swapping the outer two axes of [2, 2, 3]: out[i, j, k] = in[j, i, k].
        XCTAssertEqual(b.transposed(0, 1), Tensor(shape: [2, 2, 3], values: [1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12]))
    }

    func testPermute() {
        // in[i, j, k] = 12i + 4j + k on [2, 3, 4]; permuted([2, 0, 1]) gives out[k, i, j] = in[i, j, k], shape [4, 2, 3].
        let t = Tensor.arange(0, 24).reshaped([2, 3, 4])
        let p = t.permuted([2, 0, 1])
        XCTAssertEqual(p.shape, [4, 2, 3])
        XCTAssertEqual(p[1, 0, 2], 9)   // in[0, 2, 1]
        XCTAssertEqual(p[3, 1, 0], 15)  // in[1, 0, 3]
        XCTAssertEqual(p[0, 1, 1], 16)  // in[1, 1, 0]
        for k in 0..<4 { for i in 0..<2 { for j in 0..<3 { XCTAssertEqual(p[k, i, j], Float(12 * i + 4 * j + k)) } } }
        // First row of the result: k = 0, (i, j) in row-major order.
        XCTAssertEqual(Array(p.scalars.prefix(6)), [0, 4, 8, 12, 16, 20])
        XCTAssertEqual(t.permuted([0, 1, 2]), t)
        // [1, 3] -> [3, 1] keeps the element order.
        XCTAssertEqual(Tensor(shape: [1, 3], values: [7, 8, 9]).permuted([1, 0]).scalars, [7, 8, 9])
    }

    func testSlice() {
        XCTAssertEqual(m23.sliced(axis: 1, 1..<3), Tensor(shape: [2, 2], values: [2, 3, 5, 6]))
        XCTAssertEqual(m23.sliced(axis: -1, 0..<1), Tensor(shape: [2, 1], values: [1, 4]))
        XCTAssertEqual(m23.sliced(axis: 0, 1..<2), Tensor(shape: [1, 3], values: [4, 5, 6]))
        XCTAssertEqual(m23.sliced(axis: 0, 1..<1).shape, [0, 3])
        let t = Tensor.arange(0, 24).reshaped([2, 3, 4])
        // Middle axis, index 1..<3: elements 12i + 4j + k with j in {1, 2}.
        XCTAssertEqual(t.sliced(axis: 1, 1..<3).scalars, [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23])
    }

    func testConcatenate() {
        let a = Tensor(shape: [1, 3], values: [7, 8, 9])
        XCTAssertEqual(Tensor.concatenate([m23, a], axis: 0), Tensor(shape: [3, 3], values: [1, 2, 3, 4, 5, 6, 7, 8, 9]))
        let c = Tensor(shape: [2, 1], values: [10, 20])
        XCTAssertEqual(Tensor.concatenate([m23, c], axis: 1), Tensor(shape: [2, 4], values: [1, 2, 3, 10, 4, 5, 6, 20]))
        XCTAssertEqual(Tensor.concatenate([c, m23, c], axis: -1),
                       Tensor(shape: [2, 5], values: [10, 1, 2, 3, 10, 20, 4, 5, 6, 20]))
        XCTAssertEqual(Tensor.concatenate([m23], axis: 0), m23)
    }

    func testSplit() {
        let t = Tensor(shape: [2, 4], values: [1, 2, 3, 4, 5, 6, 7, 8])
        let parts = t.split(sizes: [1, 3], axis: 1)
        XCTAssertEqual(parts.count, 2)
        XCTAssertEqual(parts[0], Tensor(shape: [2, 1], values: [1, 5]))
        XCTAssertEqual(parts[1], Tensor(shape: [2, 3], values: [2, 3, 4, 6, 7, 8]))
        let rows = t.split(sizes: [1, 1], axis: 0)
        XCTAssertEqual(rows[0].scalars, [1, 2, 3, 4])
        XCTAssertEqual(rows[1].scalars, [5, 6, 7, 8])
        // Split then concatenate is the identity.
        XCTAssertEqual(Tensor.concatenate(t.split(sizes: [2, 0, 2], axis: -1), axis: -1), t)
    }

    func testStack() {
        let a = Tensor([1, 2]), b = Tensor([3, 4])
        XCTAssertEqual(Tensor.stack([a, b]), Tensor(shape: [2, 2], values: [1, 2, 3, 4]))
        XCTAssertEqual(Tensor.stack([a, b], axis: 1), Tensor(shape: [2, 2], values: [1, 3, 2, 4]))
        XCTAssertEqual(Tensor.stack([a, b], axis: -1), Tensor(shape: [2, 2], values: [1, 3, 2, 4]))
        let s = Tensor.stack([m23, m23 * 10], axis: 1)
        XCTAssertEqual(s.shape, [2, 2, 3])
        XCTAssertEqual(s.scalars, [1, 2, 3, 10, 20, 30, 4, 5, 6, 40, 50, 60])
    }

    // MARK: Broadcasting and elementwise

    func testBroadcasting() {
        XCTAssertEqual(Tensor.broadcastShape([2, 3], [3]), [2, 3])
        XCTAssertEqual(Tensor.broadcastShape([2, 1], [1, 3]), [2, 3])
        XCTAssertEqual(Tensor.broadcastShape([4, 1, 3], [2, 1]), [4, 2, 3])
        XCTAssertEqual(Tensor.broadcastShape([], [5]), [5])
        // [2, 3] + [3]: the row is added to every row.
        XCTAssertEqual(m23 + Tensor([10, 20, 30]), Tensor(shape: [2, 3], values: [11, 22, 33, 14, 25, 36]))
        // [2, 1] * [1, 3]: outer product.
        let col = Tensor(shape: [2, 1], values: [1, 2]), rowv = Tensor(shape: [1, 3], values: [3, 4, 5])
        XCTAssertEqual(col * rowv, Tensor(shape: [2, 3], values: [3, 4, 5, 6, 8, 10]))
        // [3] - [2, 1]: out[i, j] = r[j] - c[i].
        XCTAssertEqual(Tensor([3, 4, 5]) - col, Tensor(shape: [2, 3], values: [2, 3, 4, 1, 2, 3]))
        // [2, 3] / [2, 1]: each row divided by its own value.
        XCTAssertEqual(m23 / Tensor(shape: [2, 1], values: [1, 2]), Tensor(shape: [2, 3], values: [1, 2, 3, 2, 2.5, 3]))
        // Rank-0 operand broadcasts everywhere.
        XCTAssertEqual(m23 * Tensor(scalar: 2), Tensor(shape: [2, 3], values: [2, 4, 6, 8, 10, 12]))
        // 3-D with a middle stretched axis: [2, 1, 2] + [3, 1].
        let a = Tensor(shape: [2, 1, 2], values: [0, 1, 10, 11]), b = Tensor(shape: [3, 1], values: [100, 200, 300])
        XCTAssertEqual(a + b, Tensor(shape: [2, 3, 2], values: [100, 101, 200, 201, 300, 301, 110, 111, 210, 211, 310, 311]))
    }

    func testScalarOps() {
        XCTAssertEqual((m23 + 1).scalars, [2, 3, 4, 5, 6, 7])
        XCTAssertEqual((m23 - 1).scalars, [0, 1, 2, 3, 4, 5])
        XCTAssertEqual((2 * m23).scalars, [2, 4, 6, 8, 10, 12])
        XCTAssertEqual((m23 / 2).scalars, [0.5, 1, 1.5, 2, 2.5, 3])
        XCTAssertEqual((6 / Tensor([1, 2, 3])).scalars, [6, 3, 2])
        XCTAssertEqual((10 - Tensor([1, 2])).scalars, [9, 8])
        XCTAssertEqual((-m23).scalars, [-1, -2, -3, -4, -5, -6])
        var t = Tensor([1, 2])
        t += Tensor([10, 20])
        XCTAssertEqual(t.scalars, [11, 22])
        XCTAssertEqual(Tensor([-1, 0, 2]).relu().scalars, [0, 0, 2])
        XCTAssertEqual(Tensor([0, 4, 9]).sqrt().scalars, [0, 2, 3])
        XCTAssertEqual(Tensor([0]).exp().scalars, [1])
        XCTAssertEqual(Tensor([1]).log().scalars, [0])
        XCTAssertEqual(Tensor([0]).sigmoid().scalars, [0.5])
        XCTAssertEqual(Tensor([0]).silu().scalars, [0])
        XCTAssertEqual(Tensor([0]).gelu().scalars, [0])
        XCTAssertEqual(Tensor([0]).tanh().scalars, [0])
    }

    // MARK: Value semantics

    func testCopyOnWrite() {
        let a = Tensor([1, 2, 3])
        var b = a
        b[0] = 99
        XCTAssertEqual(a.scalars, [1, 2, 3], "mutating a copy must not change the original")
        XCTAssertEqual(b.scalars, [99, 2, 3])

        var c = a
        c.withUnsafeMutableBufferPointer { $0[2] = -1 }
        XCTAssertEqual(a.scalars, [1, 2, 3])
        XCTAssertEqual(c.scalars, [1, 2, -1])

        // A reshaped view shares storage until written.
        var r = m23.reshaped([3, 2])
        r[0, 0] = 42
        XCTAssertEqual(m23.scalars, [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(r.scalars, [42, 2, 3, 4, 5, 6])

        // Mutating the original leaves an earlier copy unchanged too.
        var orig = Tensor([5, 6])
        let snapshot = orig
        orig[1] = 0
        XCTAssertEqual(snapshot.scalars, [5, 6])
        XCTAssertEqual(orig.scalars, [5, 0])

        // Ops return new tensors; their input is untouched.
        let x = Tensor([1, 2])
        _ = x.softmax()
        _ = x.exp()
        XCTAssertEqual(x.scalars, [1, 2])
    }

    func testEqualityAndIsClose() {
        XCTAssertEqual(Tensor([1, 2]), Tensor([1, 2]))
        XCTAssertNotEqual(Tensor([1, 2]), Tensor(shape: [1, 2], values: [1, 2]))
        XCTAssertTrue(Tensor([1, 100]).isClose(to: Tensor([1.0000001, 100.0005]), rtol: 1e-5, atol: 1e-6))
        XCTAssertFalse(Tensor([1, 100]).isClose(to: Tensor([1, 100.01]), rtol: 1e-5, atol: 1e-6))
        XCTAssertTrue(Tensor([-.infinity, .infinity]).isClose(to: Tensor([-.infinity, .infinity])))
        XCTAssertFalse(Tensor([.nan]).isClose(to: Tensor([.nan])))
        // Infinities match only an equal infinity (as in torch.allclose), whatever the tolerances.
        XCTAssertFalse(Tensor([3e38]).isClose(to: Tensor([.infinity]), rtol: 1e-5, atol: 1e-6))
        XCTAssertFalse(Tensor([.infinity]).isClose(to: Tensor([3e38]), rtol: 1e-5, atol: 1e-6))
        XCTAssertFalse(Tensor([-.infinity]).isClose(to: Tensor([.infinity]), rtol: 1, atol: 1))
        XCTAssertFalse(Tensor([1]).isClose(to: Tensor([1, 1])))
        XCTAssertEqual(Tensor([1, 5, 2]).maxAbsDifference(Tensor([1, 2, 2.5])), 3)
    }

    // MARK: Random

    func testSeededRandom() {
        // SplitMix64 reference outputs for state 0 (the published test vector of the algorithm).
        var g = SeededGenerator(seed: 0)
        XCTAssertEqual(g.next(), 0xE220_A839_7B1D_CDAF)
        XCTAssertEqual(g.next(), 0x6E78_9E6A_A1B9_65F4)
        XCTAssertEqual(g.next(), 0x06C4_5D18_8009_454F)
        // Uniform: the top 24 bits of the first output, 0xE220A8, over 2^24.
        var u = SeededGenerator(seed: 0)
        XCTAssertEqual(u.nextUniform(), Float(0xE2_20A8) / 16_777_216)

        let a = Tensor.randomNormal([1000], seed: 7), b = Tensor.randomNormal([1000], seed: 7)
        XCTAssertEqual(a, b, "same seed, same numbers")
        XCTAssertNotEqual(a, Tensor.randomNormal([1000], seed: 8), "different seeds differ")
        XCTAssertEqual(Tensor.randomUniform([100], seed: 3), Tensor.randomUniform([100], seed: 3))
        XCTAssertNotEqual(Tensor.randomUniform([100], seed: 3), Tensor.randomUniform([100], seed: 4))

        let n = 100_000
        let z = Tensor.randomNormal([n], seed: 12345).scalars.map(Double.init)
        let mean = z.reduce(0, +) / Double(n)
        let std = (z.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.02)
        XCTAssertEqual(std, 1, accuracy: 0.02)

        let shifted = Tensor.randomNormal([n], mean: 3, std: 0.5, seed: 99).scalars.map(Double.init)
        let sm = shifted.reduce(0, +) / Double(n)
        let ss = (shifted.reduce(0) { $0 + ($1 - sm) * ($1 - sm) } / Double(n)).squareRoot()
        XCTAssertEqual(sm, 3, accuracy: 0.02)
        XCTAssertEqual(ss, 0.5, accuracy: 0.02)

        let uni = Tensor.randomUniform([n], low: -2, high: 4, seed: 5).scalars
        XCTAssert(uni.allSatisfy { $0 >= -2 && $0 < 4 })
        XCTAssertEqual(uni.map(Double.init).reduce(0, +) / Double(n), 1, accuracy: 0.03)  // (−2 + 4) / 2
    }

    // MARK: Small ops, checked by hand

    func testMatmulSmall() {
        // [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]]
        let a = Tensor(shape: [2, 2], values: [1, 2, 3, 4]), b = Tensor(shape: [2, 2], values: [5, 6, 7, 8])
        XCTAssertEqual(Tensor.matmul(a, b), Tensor(shape: [2, 2], values: [19, 22, 43, 50]))
        // aᵀ · b = [[1, 3], [2, 4]] · b = [[26, 30], [38, 44]]
        XCTAssertEqual(Tensor.matmul(a, b, transposeA: true), Tensor(shape: [2, 2], values: [26, 30, 38, 44]))
        // a · bᵀ = a · [[5, 7], [6, 8]] = [[17, 23], [39, 53]]
        XCTAssertEqual(Tensor.matmul(a, b, transposeB: true), Tensor(shape: [2, 2], values: [17, 23, 39, 53]))
        // [2, 3] · [3, 1]: row sums weighted 1, 0, -1 → [1 - 3, 4 - 6].
        XCTAssertEqual(Tensor.matmul(m23, Tensor(shape: [3, 1], values: [1, 0, -1])).scalars, [-2, -2])
        // linear: x · Wᵀ + b with W = [[1, 1, 1], [0, 1, 0]], b = [10, 20].
        let w = Tensor(shape: [2, 3], values: [1, 1, 1, 0, 1, 0])
        XCTAssertEqual(m23.linear(weight: w, bias: Tensor([10, 20])), Tensor(shape: [2, 2], values: [16, 22, 25, 25]))
        // embedding: rows 2, 0, 2 of a [3, 2] table.
        let table = Tensor(shape: [3, 2], values: [0, 1, 10, 11, 20, 21])
        XCTAssertEqual(table.embedding([2, 0, 2]), Tensor(shape: [3, 2], values: [20, 21, 0, 1, 20, 21]))
    }

    func testReductionsSmall() {
        XCTAssertEqual(m23.sum(axis: 0).scalars, [5, 7, 9])
        XCTAssertEqual(m23.sum(axis: 1).scalars, [6, 15])
        XCTAssertEqual(m23.sum(axis: -1, keepingDims: true), Tensor(shape: [2, 1], values: [6, 15]))
        XCTAssertEqual(m23.mean(axis: 0).scalars, [2.5, 3.5, 4.5])
        XCTAssertEqual(m23.mean(axis: 1).scalars, [2, 5])
        XCTAssertEqual(m23.max(axis: 0).scalars, [4, 5, 6])
        XCTAssertEqual(m23.max(axis: 1).scalars, [3, 6])
        XCTAssertEqual(m23.sum(), 21)
        // argmax: first index on ties.
        XCTAssertEqual(Tensor(shape: [2, 3], values: [3, 1, 3, 0, 2, 2]).argmax(axis: 1), [0, 1])
        XCTAssertEqual(Tensor(shape: [2, 3], values: [3, 1, 3, 0, 2, 2]).argmax(axis: 0), [0, 1, 0])
        // top-k: sorted descending, ties to the lower index.
        let (v, i) = Tensor([5, 1, 7, 5, 3]).topK(3)
        XCTAssertEqual(v.scalars, [7, 5, 5])
        XCTAssertEqual(i, [2, 0, 3])
        // Along axis 0 of [[1, 9], [8, 2], [5, 5]] (k = 2): the reduced axis moves last, result [2, 2].
        let (v0, i0) = Tensor(shape: [3, 2], values: [1, 9, 8, 2, 5, 5]).topK(2, axis: 0)
        XCTAssertEqual(v0, Tensor(shape: [2, 2], values: [8, 5, 9, 5]))
        XCTAssertEqual(i0, [1, 2, 0, 2])
    }

    func testSoftmaxSmall() {
        // softmax([0, ln 3]) = [1/4, 3/4]; log-softmax = [−ln 4, ln 3 − ln 4].
        let x = Tensor([0, Float(log(3.0))])
        XCTAssert(x.softmax().isClose(to: Tensor([0.25, 0.75]), rtol: 1e-6, atol: 1e-7))
        XCTAssert(x.logSoftmax().isClose(to: Tensor([-Float(log(4.0)), Float(log(0.75))]), rtol: 1e-6, atol: 1e-7))
        // Equal entries share equally; a −inf entry gets exactly 0 (log: −inf).
        XCTAssertEqual(Tensor([2, 2, -.infinity, 2, 2]).softmax().scalars, [0.25, 0.25, 0, 0.25, 0.25])
        XCTAssertEqual(Tensor([2, 2, -.infinity, 2, 2]).logSoftmax()[2], -.infinity)
        // All −inf: zeros (softmax) and −inf (log-softmax), never NaN.
        XCTAssertEqual(Tensor(shape: [1, 3], repeating: -.infinity).softmax().scalars, [0, 0, 0])
        XCTAssertEqual(Tensor(shape: [1, 3], repeating: -.infinity).logSoftmax().scalars, [-.infinity, -.infinity, -.infinity])
        // Rows are independent: [[0, 0], [1e30, 0]] → [[0.5, 0.5], [1, 0]].
        XCTAssertEqual(Tensor(shape: [2, 2], values: [0, 0, 1e30, 0]).softmax().scalars, [0.5, 0.5, 1, 0])
    }

    func testNormsSmall() {
        // LayerNorm of [1, 2, 3]: mean 2, biased variance 2/3 → (x − 2)/√(2/3) = [−√1.5, 0, √1.5].
        let x = Tensor([1, 2, 3])
        let r = Float(1.5).squareRoot()
        XCTAssert(x.layerNorm(weight: .ones([3]), bias: nil, eps: 0).isClose(to: Tensor([-r, 0, r]), rtol: 1e-6, atol: 1e-6))
        // Weight and bias apply after normalising.
        XCTAssert(x.layerNorm(weight: Tensor([2, 2, 2]), bias: Tensor([1, 1, 1]), eps: 0)
            .isClose(to: Tensor([1 - 2 * r, 1, 1 + 2 * r]), rtol: 1e-6, atol: 1e-6))
        // RMSNorm of [3, 4]: mean of squares 12.5 → x / √12.5.
        let s = Float(12.5).squareRoot()
        XCTAssert(Tensor([3, 4]).rmsNorm(weight: Tensor([1, 2]), eps: 0).isClose(to: Tensor([3 / s, 8 / s]), rtol: 1e-6, atol: 1e-6))
    }
}
