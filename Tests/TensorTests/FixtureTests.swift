import Foundation
import XCTest
import Tensor

// Compares the Tensor ops against PyTorch references stored in Fixtures/*.safetensors, written by
// `scripts/fixtures/tensor.py` (regenerate with `scripts/make_fixtures.sh tensor`). References are computed by PyTorch
// in float64 and rounded to float32 once (RMSNorm: the Hugging Face float32 formula), so the tolerances below bound
// the engine's own float32 error.

// MARK: - Fixture access and comparison helpers

/// One fixture file. Read through ``SafeTensorsFile`` rather than `SafeTensors.load`, because some files mix float32
/// tensors with int64 ones (indices) and `load` accepts float tensors only.
struct Fixture {
    let name: String
    let url: URL
    let file: SafeTensorsFile

    init(_ name: String) throws {
        self.name = name
        url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("\(name).safetensors")
        file = try SafeTensorsFile(url: url)
    }

    /// A float32 tensor of the fixture.
    func callAsFunction(_ key: String) throws -> Tensor { try file.tensor(key) }

    /// An int64 tensor of the fixture, row-major.
    func integers(_ key: String) throws -> [Int] { try file.integers(key) }
}

/// Asserts `actual ≈ expected` elementwise with the `torch.allclose` rule |a − e| ≤ atol + rtol·|e| (equal
/// infinities match, NaN never does). On failure reports the shapes, the max abs difference and the worst element.
func assertClose(_ actual: Tensor, _ expected: Tensor, rtol: Float, atol: Float, _ message: @autoclosure () -> String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    let prefix = message().isEmpty ? "" : message() + ": "
    guard actual.shape == expected.shape else {
        XCTFail("\(prefix)shape \(actual.shape) != expected \(expected.shape)", file: file, line: line)
        return
    }
    if actual.isClose(to: expected, rtol: rtol, atol: atol) { return }
    let a = actual.scalars, e = expected.scalars
    var maxDiff: Float = 0, worst = -1, worstExcess: Float = -.infinity, failures = 0
    for i in 0..<a.count where a[i] != e[i] {  // NaN != NaN, so NaNs are visited
        let d = abs(a[i] - e[i])
        // NaN never matches; an infinity only matches an equal one (already skipped).
        let nonFinite = !a[i].isFinite || !e[i].isFinite
        let excess: Float = nonFinite ? .infinity : d - (atol + rtol * abs(e[i]))
        if excess > 0 { failures += 1 }
        if d.isNaN { maxDiff = .nan } else if !maxDiff.isNaN { maxDiff = Swift.max(maxDiff, d) }
        if worst < 0 || excess > worstExcess { worstExcess = excess; worst = i }
    }
    var where_ = ""
    if worst >= 0 {
        var idx = [Int](), rem = worst
        for s in actual.strides { idx.append(rem / s); rem %= s }
        where_ = "; worst at \(idx): actual \(a[worst]), expected \(e[worst])"
    }
    XCTFail("\(prefix)not close (rtol \(rtol), atol \(atol)): shape \(actual.shape), max |diff| \(maxDiff), "
            + "\(failures) of \(a.count) elements out of tolerance\(where_)", file: file, line: line)
}

/// Row `i` of a 2-D tensor as a 1-D tensor.
private func row(_ t: Tensor, _ i: Int) -> Tensor {
    t.sliced(axis: 0, i..<(i + 1)).reshaped([t.shape[1]])
}

/// The `[k, k]` identity.
private func eye(_ k: Int) -> Tensor {
    var t = Tensor.zeros([k, k])
    for i in 0..<k { t[i, i] = 1 }
    return t
}

/// `[k] -> [k, k]` diagonal matrix.
private func diag(_ v: Tensor) -> Tensor {
    let k = v.count
    var t = Tensor.zeros([k, k])
    for i in 0..<k { t[i, i] = v[i] }
    return t
}

// MARK: - Tests

final class FixtureTests: XCTestCase {
    // Tolerances, per family (see the tests for why each is what it is).
    /// Elementwise ops, softmax, norms, reductions: a few float32 ulps relative, 1e-6 absolute near zero.
    static let rtol: Float = 1e-5, atol: Float = 1e-6
    /// Matmul / linear: entries are sums of K ≤ 96 products of N(0, 1) numbers, |out| up to ~40, so float32
    /// accumulation error is ~K·ε·|terms| ≈ 1e-5; 1e-4 absolute + 1e-5 relative.
    static let mmRtol: Float = 1e-5, mmAtol: Float = 1e-4

    func testMatmul() throws {
        // This file is float32 only, so the whole-file loader reads it; the other tests read tensor by tensor.
        let all = try SafeTensors.load(try Fixture("matmul").url)
        func f(_ key: String) throws -> Tensor {
            try XCTUnwrap(all[key], "matmul.safetensors has no tensor \"\(key)\"")
        }
        let cases: [(String, Bool, Bool)] = [
            ("square", false, false), ("rect", false, false), ("trans_a", true, false), ("trans_b", false, true),
            ("trans_ab", true, true), ("batched", false, false), ("batched_trans_b", false, true),
            ("shared_b", false, false), ("shared_b_trans_a", true, false), ("shared_a", false, false),
            ("large", false, false),
        ]
        for (name, ta, tb) in cases {
            let out = Tensor.matmul(try f("\(name).a"), try f("\(name).b"), transposeA: ta, transposeB: tb)
            assertClose(out, try f("\(name).out"), rtol: Self.mmRtol, atol: Self.mmAtol, "matmul \(name)")
        }
        // The instance form and the transposeOther flag.
        assertClose(try f("rect.a").matmul(try f("rect.b")), try f("rect.out"), rtol: Self.mmRtol, atol: Self.mmAtol)
        assertClose(try f("trans_b.a").matmul(try f("trans_b.b"), transposeOther: true), try f("trans_b.out"),
                    rtol: Self.mmRtol, atol: Self.mmAtol)
    }

    func testLinear() throws {
        let f = try Fixture("matmul")
        let x = try f("linear.x"), w = try f("linear.weight"), b = try f("linear.bias")
        assertClose(x.linear(weight: w, bias: b), try f("linear.out"), rtol: Self.mmRtol, atol: Self.mmAtol, "with bias")
        assertClose(x.linear(weight: w), try f("linear.out_no_bias"), rtol: Self.mmRtol, atol: Self.mmAtol, "no bias")
        // A 2-D input gives the same rows.
        assertClose(x.reshaped([-1, 48]).linear(weight: w, bias: b), try f("linear.out").reshaped([-1, 32]),
                    rtol: Self.mmRtol, atol: Self.mmAtol, "2-D input")
    }

    func testSoftmax() throws {
        let f = try Fixture("softmax")
        for name in ["random", "masked", "huge", "offset", "long"] {
            let out = try f("\(name).x").softmax()
            assertClose(out, try f("\(name).softmax"), rtol: Self.rtol, atol: Self.atol, "softmax \(name)")
            // Rows sum to one.
            assertClose(out.sum(axis: -1), .ones([out.shape[0]]), rtol: 0, atol: 1e-5, "softmax \(name) row sums")
        }
        // Masked (−inf) entries are exactly zero.
        let masked = try f("masked.x"), out = masked.softmax()
        for (x, y) in zip(masked.scalars, out.scalars) where x == -.infinity { XCTAssertEqual(y, 0) }
    }

    func testLogSoftmax() throws {
        let f = try Fixture("softmax")
        for name in ["random", "masked", "huge", "offset", "long"] {
            let out = try f("\(name).x").logSoftmax()
            assertClose(out, try f("\(name).log_softmax"), rtol: Self.rtol, atol: Self.atol, "log-softmax \(name)")
        }
        // Masked entries are exactly −inf.
        let masked = try f("masked.x"), out = masked.logSoftmax()
        for (x, y) in zip(masked.scalars, out.scalars) where x == -.infinity { XCTAssertEqual(y, -.infinity) }
    }

    /// Row 1 is entirely −inf: PyTorch gives NaN (stored in the fixture); our contract is zeros (softmax) and −inf
    /// (log-softmax). The other rows (row 2 has one −inf entry) must match PyTorch.
    func testFullyMaskedRow() throws {
        let f = try Fixture("softmax")
        let x = try f("all_masked.x")
        XCTAssert(row(x, 1).scalars.allSatisfy { $0 == -.infinity }, "fixture row 1 should be all −inf")
        let sm = x.softmax(), lsm = x.logSoftmax()
        let smRef = try f("all_masked.softmax"), lsmRef = try f("all_masked.log_softmax")
        XCTAssert(row(smRef, 1).scalars.allSatisfy(\.isNaN), "PyTorch reference is NaN on the fully masked row")
        XCTAssertEqual(row(sm, 1).scalars, [Float](repeating: 0, count: x.shape[1]), "softmax of an all −inf row")
        XCTAssertEqual(row(lsm, 1).scalars, [Float](repeating: -.infinity, count: x.shape[1]), "log-softmax of an all −inf row")
        for r in [0, 2] {
            assertClose(row(sm, r), row(smRef, r), rtol: Self.rtol, atol: Self.atol, "softmax row \(r)")
            assertClose(row(lsm, r), row(lsmRef, r), rtol: Self.rtol, atol: Self.atol, "log-softmax row \(r)")
        }
    }

    func testLayerNorm() throws {
        let f = try Fixture("norms")
        let x = try f("x"), w = try f("layer_norm.weight"), b = try f("layer_norm.bias")
        for (eps, tag) in [(Float(1e-5), "1e-5"), (Float(1e-12), "1e-12")] {
            assertClose(x.layerNorm(weight: w, bias: b, eps: eps), try f("layer_norm.out_eps\(tag)"),
                        rtol: Self.rtol, atol: Self.atol, "layerNorm eps \(tag)")
        }
    }

    func testRMSNorm() throws {
        let f = try Fixture("norms")
        let x = try f("rms.x"), w = try f("rms.weight")
        for (eps, tag) in [(Float(1e-6), "1e-6"), (Float(1e-5), "1e-5")] {
            assertClose(x.rmsNorm(weight: w, eps: eps), try f("rms.out_eps\(tag)"), rtol: Self.rtol, atol: Self.atol,
                        "rmsNorm eps \(tag)")
        }
    }

    func testActivations() throws {
        let f = try Fixture("activations")
        let x = try f("x")
        let cases: [(String, Tensor)] = [
            ("gelu", x.gelu()), ("gelu_tanh", x.gelu(approximation: .tanh)), ("silu", x.silu()),
            ("sigmoid", x.sigmoid()), ("relu", x.relu()), ("tanh", x.tanh()),
        ]
        for (name, out) in cases {
            assertClose(out, try f(name), rtol: Self.rtol, atol: Self.atol, name)
        }
        // exp: relative accuracy over the whole range, +inf past float overflow (x > 88.72); results below the smallest
        // normal float (x < −87.3) may flush to zero, hence atol = leastNormalMagnitude.
        assertClose(try f("exp.x").exp(), try f("exp"), rtol: Self.rtol, atol: .leastNormalMagnitude, "exp")
        let pos = try f("pos.x")
        assertClose(pos.log(), try f("log"), rtol: Self.rtol, atol: Self.atol, "log")
        assertClose(pos.sqrt(), try f("sqrt"), rtol: Self.rtol, atol: 0, "sqrt")
    }

    func testReductions() throws {
        let f = try Fixture("reductions")
        let x = try f("x")
        for ax in 0..<3 {
            assertClose(x.sum(axis: ax), try f("sum_axis\(ax)"), rtol: Self.rtol, atol: Self.atol, "sum axis \(ax)")
            assertClose(x.mean(axis: ax), try f("mean_axis\(ax)"), rtol: Self.rtol, atol: Self.atol, "mean axis \(ax)")
            XCTAssertEqual(x.max(axis: ax), try f("max_axis\(ax)"), "max axis \(ax) (exact)")
            XCTAssertEqual(x.argmax(axis: ax), try f.integers("argmax_axis\(ax)"), "argmax axis \(ax)")
            // Negative axes name the same axis.
            XCTAssertEqual(x.argmax(axis: ax - 3), try f.integers("argmax_axis\(ax)"), "argmax axis \(ax - 3)")
            var kept = x.shape
            kept[ax] = 1
            XCTAssertEqual(x.sum(axis: ax, keepingDims: true).shape, kept)
        }
    }

    /// Top-k on distinct values (k = 5 of 50). `torch.topk(dim: d)` keeps the reduced axis at `d`; ours moves it last,
    /// so the references are permuted before comparing. Values are copies of inputs, so they match exactly.
    func testTopK() throws {
        let f = try Fixture("reductions")
        // Along the last axis: same layout as torch.
        do {
            let (v, i) = try f("topk_last.x").topK(5, axis: -1)
            XCTAssertEqual(v, try f("topk_last.values"))
            XCTAssertEqual(i, try f.integers("topk_last.indices"))
        }
        // Along axis 0 of [50, 4]: torch [5, 4], ours [4, 5].
        do {
            let (v, i) = try f("topk_axis0.x").topK(5, axis: 0)
            let refV = try f("topk_axis0.values")
            XCTAssertEqual(refV.shape, [5, 4])
            XCTAssertEqual(v, refV.transposed())
            XCTAssertEqual(i, permute(try f.integers("topk_axis0.indices"), shape: [5, 4], order: [1, 0]))
        }
        // Along axis 1 of [3, 50, 2]: torch [3, 5, 2], ours [3, 2, 5].
        do {
            let (v, i) = try f("topk_axis1.x").topK(5, axis: 1)
            let refV = try f("topk_axis1.values")
            XCTAssertEqual(refV.shape, [3, 5, 2])
            XCTAssertEqual(v, refV.permuted([0, 2, 1]))
            XCTAssertEqual(i, permute(try f.integers("topk_axis1.indices"), shape: [3, 5, 2], order: [0, 2, 1]))
        }
    }

    /// Singular values against `torch.linalg.svdvals` (1e-4 relative); U·diag(S)·Vt reconstructs A and U, Vt have
    /// orthonormal columns / rows (1e-4 absolute; entries of A are O(1)); the rank-8 truncation (sign-independent)
    /// matches PyTorch's.
    func testSVD() throws {
        let f = try Fixture("linalg")
        for name in ["tall", "wide"] {
            let a = try f("svd_\(name).a")
            let (u, s, vt) = try a.svd()
            let k = Swift.min(a.shape[0], a.shape[1])
            XCTAssertEqual(u.shape, [a.shape[0], k])
            XCTAssertEqual(s.shape, [k])
            XCTAssertEqual(vt.shape, [k, a.shape[1]])
            assertClose(s, try f("svd_\(name).s"), rtol: 1e-4, atol: 0, "\(name) singular values")
            let us = u * s  // scales column j of U by s[j] (broadcast over rows)
            assertClose(Tensor.matmul(us, vt), a, rtol: 0, atol: 1e-4, "\(name) U·diag(S)·Vt")
            assertClose(Tensor.matmul(u, u, transposeA: true), eye(k), rtol: 0, atol: 1e-4, "\(name) UᵀU")
            assertClose(Tensor.matmul(vt, vt, transposeB: true), eye(k), rtol: 0, atol: 1e-4, "\(name) Vt·Vtᵀ")
            let r8 = Tensor.matmul(u.sliced(axis: 1, 0..<8) * s.sliced(axis: 0, 0..<8), vt.sliced(axis: 0, 0..<8))
            assertClose(r8, try f("svd_\(name).rank8"), rtol: 0, atol: 1e-4, "\(name) rank-8 truncation")
            assertClose(Tensor.matmul(u, Tensor.matmul(diag(s), vt)), a, rtol: 0, atol: 1e-4, "\(name) via diag(S)")
        }
    }

    /// Q and R are unique only up to the signs of R's rows, so compare what is sign-free: Q·R = A, QᵀQ = I, R upper
    /// triangular, and |diag(R)| against PyTorch.
    func testQR() throws {
        let f = try Fixture("linalg")
        for name in ["tall", "wide", "square"] {
            let a = try f("qr_\(name).a")
            let (m, n) = (a.shape[0], a.shape[1])
            let k = Swift.min(m, n)
            let (q, r) = try a.qr()
            XCTAssertEqual(q.shape, [m, k])
            XCTAssertEqual(r.shape, [k, n])
            assertClose(Tensor.matmul(q, r), a, rtol: 0, atol: 1e-4, "\(name) Q·R")
            assertClose(Tensor.matmul(q, q, transposeA: true), eye(k), rtol: 0, atol: 1e-5, "\(name) QᵀQ")
            for i in 0..<k { for j in 0..<Swift.min(i, n) { XCTAssertEqual(r[i, j], 0, "\(name) R[\(i), \(j)] below diagonal") } }
            let absDiag = Tensor((0..<k).map { abs(r[$0, $0]) })
            assertClose(absDiag, try f("qr_\(name).abs_diag_r"), rtol: 1e-4, atol: 0, "\(name) |diag R|")
        }
    }
}

/// Row-major `values` of `shape`, with axes reordered like ``Tensor/permuted(_:)``.
private func permute(_ values: [Int], shape: [Int], order: [Int]) -> [Int] {
    Tensor(shape: shape, values: values.map(Float.init)).permuted(order).scalars.map { Int($0) }
}
