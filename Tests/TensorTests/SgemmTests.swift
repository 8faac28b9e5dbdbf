import Foundation
import XCTest
import Tensor

// The engine's own sgemm (`Sources/CKernels/sgemm.c`) on every kernel path this machine supports, against a float64
// reference: a plain triple loop in Double over the same float32 inputs (independent of the code under test), and
// the PyTorch float64 matmul fixtures of `scripts/fixtures/tensor.py`.
//
// Tolerance: |c − ref| ≤ 1e-5 · (|alpha|·Σ_p |a_ip·b_pj| + |beta·c0_ij|) + 1e-30. Float32 accumulation of K products
// errs by at most ≈ K·2⁻²⁴·Σ|a·b| in the worst case but ≈ √K·2⁻²⁴·Σ|a·b| in practice (K ≤ 600 here: ≈ 1.5e-6·Σ|a·b|);
// a wrong element, a missed edge or a lost K block is off by O(1)·Σ|a·b|.

/// Deterministic inputs in [-1, 1) (SplitMix64), independent of the engine's RNG.
private struct Inputs {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> Float {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) / Float(1 << 23) - 1
    }
    mutating func array(_ count: Int) -> [Float] { (0..<count).map { _ in next() } }
}

final class SgemmTests: XCTestCase {
    static let relTol = 1e-5

    /// Float64 references (and their scales) by case: each case runs on every path, the reference is computed once.
    private var references: [String: (ref: [Double], scale: [Double])] = [:]

    /// One product through `GEMM.sgemm` (or `parallelSgemm`) with padded leading dimensions, checked against the
    /// Double triple loop; C's padding columns must be untouched and beta = 0 must ignore NaN garbage in C.
    private func check(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float, pad: Int,
                       parallel: Bool = false, seed: UInt64, _ label: String) {
        var rng = Inputs(seed: seed)
        let lda = (transA ? m : k) + pad, ldb = (transB ? k : n) + pad, ldc = n + pad
        let aRows = transA ? k : m, bRows = transB ? n : k
        let a = rng.array(max(1, aRows * lda)), b = rng.array(max(1, bRows * ldb))
        let sentinel: Float = -12345
        var c0 = [Float](repeating: sentinel, count: max(1, m * ldc))
        for i in 0..<m { for j in 0..<n { c0[i * ldc + j] = beta == 0 ? .nan : rng.next() } }
        var c = c0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    let f = parallel ? GEMM.parallelSgemm : GEMM.sgemm
                    f(transA, transB, m, n, k, alpha, pa.baseAddress!, lda, pb.baseAddress!, ldb, beta, pc.baseAddress!, ldc)
                }
            }
        }
        let key = "\(transA) \(transB) \(m) \(n) \(k) \(alpha) \(beta) \(pad) \(seed)"
        if references[key] == nil {
            var ref = [Double](repeating: 0, count: m * n), scale = ref
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0, mag = 0.0
                    for p in 0..<k {
                        let x = Double(transA ? a[p * lda + i] : a[i * lda + p])
                        let y = Double(transB ? b[j * ldb + p] : b[p * ldb + j])
                        sum += x * y
                        mag += abs(x * y)
                    }
                    let cOld = Double(c0[i * ldc + j])
                    ref[i * n + j] = Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * cOld)
                    scale[i * n + j] = abs(Double(alpha)) * mag + (beta == 0 ? 0 : abs(Double(beta) * cOld)) + 1e-30
                }
            }
            references[key] = (ref, scale)
        }
        let (ref, scale) = references[key]!
        var worst = 0.0, bad = 0
        for i in 0..<m {
            for j in 0..<ldc {
                let got = c[i * ldc + j]
                if j >= n {
                    if got != sentinel { bad += 1 }
                    continue
                }
                let err = abs(Double(got) - ref[i * n + j]) / scale[i * n + j]
                if !(err <= Self.relTol) { bad += 1 }
                worst = err.isNaN ? .infinity : max(worst, err)
            }
        }
        XCTAssertEqual(bad, 0, "\(label): \(transA ? "Aᵀ" : "A")·\(transB ? "Bᵀ" : "B") m \(m) n \(n) k \(k) alpha \(alpha) "
                       + "beta \(beta) pad \(pad): \(bad) wrong elements, worst relative error \(worst)")
    }

    /// Shapes that are not multiples of any register block (AVX-512 14×32, AVX2 6×16, portable 4×16), one-row and
    /// one-column products, K = 1, K past the 256-deep cache block of the portable path, all four
    /// transposes, padded leading dimensions, and the alpha/beta combinations BLAS distinguishes.
    func testOwnKernelAwkwardShapesOnEveryPath() {
        let shapes: [(Int, Int, Int)] = [
            (1, 1, 1), (1, 37, 19), (29, 1, 23), (5, 3, 1), (14, 32, 16), (15, 33, 17), (13, 31, 40), (6, 16, 9),
            (7, 17, 3), (31, 65, 33), (47, 20, 600), (3, 70, 530), (30, 45, 1), (2, 130, 64),
        ]
        let scalars: [(Float, Float)] = [(1, 0), (1, 1), (-0.5, 0.25), (2, 0), (0, 0.5)]
        for path in CPU.supportedKernelPaths {
            CPU.withKernelPath(path) {
                GEMM.withBackend(.own) {
                    var seed: UInt64 = 1
                    for (index, (m, n, k)) in shapes.enumerated() {
                        for transA in [false, true] {
                            for transB in [false, true] {
                                let (alpha, beta) = scalars[(index + (transA ? 1 : 0) + (transB ? 2 : 0)) % scalars.count]
                                seed += 1
                                check(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
                                      pad: seed % 3 == 0 ? 0 : 3, seed: seed, "path \(path)")
                            }
                        }
                    }
                }
            }
        }
    }

    /// Products past the M and K cache blocks (A packed in blocks of up to 168 rows × 1024 deep) and with B too large
    /// to be read in place, with beta = 0 and beta ≠ 0.
    func testOwnKernelPastTheCacheBlocksOnEveryPath() {
        for path in CPU.supportedKernelPaths {
            CPU.withKernelPath(path) {
                GEMM.withBackend(.own) {
                    check(transA: false, transB: true, m: 350, n: 40, k: 24, alpha: 1, beta: 0, pad: 1, seed: 101,
                          "path \(path) large M")
                    check(transA: true, transB: false, m: 345, n: 19, k: 520, alpha: 1, beta: -1, pad: 0, seed: 102,
                          "path \(path) large M and K")
                    // B too large to read in place (k·n > 64 Ki floats): packed B panels, plain and transposed A.
                    check(transA: false, transB: false, m: 40, n: 300, k: 230, alpha: 1, beta: 0, pad: 5, seed: 103,
                          "path \(path) packed B")
                    check(transA: true, transB: false, m: 31, n: 290, k: 240, alpha: -1, beta: 0.5, pad: 0, seed: 104,
                          "path \(path) packed B, Aᵀ")
                    // Past the 1024-deep K block: two K blocks, the second accumulating onto the first.
                    check(transA: false, transB: true, m: 30, n: 70, k: 1100, alpha: 1, beta: 0, pad: 0, seed: 105,
                          "path \(path) two K blocks")
                }
            }
        }
    }

    /// The engine's split of one product into column or row panels across workers, on each path and backend.
    func testParallelSplitOnEveryPathAndBackend() {
        for path in CPU.supportedKernelPaths {
            for backend in GEMM.Backend.allCases {
                CPU.withKernelPath(path) {
                    GEMM.withBackend(backend) {
                        check(transA: false, transB: false, m: 70, n: 150, k: 96, alpha: 1, beta: 0, pad: 2,
                              parallel: true, seed: 201, "path \(path) backend \(backend) column panels")
                        check(transA: true, transB: true, m: 150, n: 70, k: 96, alpha: 0.5, beta: 2, pad: 0,
                              parallel: true, seed: 202, "path \(path) backend \(backend) row panels")
                    }
                }
            }
        }
    }

    /// The PyTorch float64 matmul fixtures (square, rectangular, all transposes, batched, shared operands, linear)
    /// on every kernel path and both forced backends.
    func testPyTorchMatmulFixturesOnEveryPathAndBackend() throws {
        let f = try Fixture("matmul")
        let cases: [(String, Bool, Bool)] = [
            ("square", false, false), ("rect", false, false), ("trans_a", true, false), ("trans_b", false, true),
            ("trans_ab", true, true), ("batched", false, false), ("batched_trans_b", false, true),
            ("shared_b", false, false), ("shared_b_trans_a", true, false), ("shared_a", false, false),
            ("large", false, false),
        ]
        let inputs = try cases.map { (name, ta, tb) in (name, ta, tb, try f("\(name).a"), try f("\(name).b"), try f("\(name).out")) }
        let x = try f("linear.x"), w = try f("linear.weight"), bias = try f("linear.bias"), linearOut = try f("linear.out")
        for path in CPU.supportedKernelPaths {
            for backend in [GEMM.Backend.own, .blas] {
                CPU.withKernelPath(path) {
                    GEMM.withBackend(backend) {
                        for (name, ta, tb, a, b, out) in inputs {
                            assertClose(Tensor.matmul(a, b, transposeA: ta, transposeB: tb), out,
                                        rtol: FixtureTests.mmRtol, atol: FixtureTests.mmAtol,
                                        "matmul \(name), path \(path), backend \(backend)")
                        }
                        assertClose(x.linear(weight: w, bias: bias), linearOut, rtol: FixtureTests.mmRtol,
                                    atol: FixtureTests.mmAtol, "linear, path \(path), backend \(backend)")
                    }
                }
            }
        }
    }

    /// The forced backends decide every shape; `auto` never hands the portable path to our kernel (OpenBLAS wins).
    func testBackendSelection() {
        GEMM.withBackend(.own) { XCTAssertTrue(GEMM.usesOwnKernel(m: 512, n: 512, k: 512)) }
        GEMM.withBackend(.blas) { XCTAssertFalse(GEMM.usesOwnKernel(m: 512, n: 512, k: 512)) }
        CPU.withKernelPath(.portable) {
            GEMM.withBackend(.auto) { XCTAssertFalse(GEMM.usesOwnKernel(m: 512, n: 512, k: 512)) }
        }
    }
}
