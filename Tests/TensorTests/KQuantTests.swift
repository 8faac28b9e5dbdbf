import Foundation
import XCTest
@testable import Tensor

// Q5_0, Q5_1 and the K-quants Q2_K … Q6_K (Sources/CKernels/kquants.c) against gguf-py, on every kernel path this
// machine supports (CPU.supportedKernelPaths):
//
//   * dequantisation: bit-exact with `gguf.quants.dequantize` (Fixtures/gguf/kquants_expected.safetensors, written by
//     scripts/fixtures/gguf.py from Fixtures/gguf/kquants.gguf.bin), through GGUFFile.tensor, QuantizedMatrix
//     .dequantized and .rows;
//   * GEMV (one input row) and GEMM (prefill, panel-dequantise + sgemm) against numpy's float64 product of the
//     dequantised matrix, for awkward row counts (1, 3, 5, 7), matrices tiled past the parallel threshold and
//     matrices concatenated from parts of different formats.
//
// Tolerance of the products: |y_r − ref_r| ≤ 1e-5 · Σ_j |W_rj · x_j| for every output (float accumulation over at
// most 512 terms in some order; 1e-5 is above the worst case n·2⁻²⁴ ≈ 3e-5 of random signs in practice and far
// below any indexing or scale error, which moves a result by a whole term).
final class KQuantTests: XCTestCase {
    private static let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("gguf")
    static let types = ["q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"]
    static let shapes = [(7, 512), (3, 256)]

    private func open() throws -> (GGUFFile, SafeTensorsFile) {
        (try GGUFFile(url: Self.dir.appendingPathComponent("kquants.gguf.bin")),
         try SafeTensorsFile(url: Self.dir.appendingPathComponent("kquants_expected.safetensors")))
    }

    private static func names() -> [String] { types.flatMap { t in shapes.map { "\(t).\($0.0)x\($0.1)" } } }

    /// `got` [m, n] against `ref` [m, n], each output within 1e-5 · Σ_j |W_rj x_ij| (W [n, k], x [m, k]).
    private func checkProduct(_ got: [Float], _ ref: [Float], w: [Float], x: [Float], m: Int, n: Int, k: Int,
                              _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, m * n, label, file: file, line: line)
        var worst = 0.0
        for i in 0..<m {
            for r in 0..<n {
                var scale = 0.0
                for j in 0..<k { scale += abs(Double(w[r * k + j]) * Double(x[i * k + j])) }
                let err = abs(Double(got[i * n + r]) - Double(ref[i * n + r]))
                XCTAssertTrue(got[i * n + r].isFinite, "\(label) [\(i), \(r)] not finite", file: file, line: line)
                worst = max(worst, err / max(scale, 1e-30))
            }
        }
        XCTAssertLessThanOrEqual(worst, 1e-5, "\(label): worst |diff| / Σ|w·x| = \(worst)", file: file, line: line)
    }

    func testFixtureHasEveryFormat() throws {
        let (gguf, _) = try open()
        let expected: [String: GGMLType] = ["q5_0": .q5_0, "q5_1": .q5_1, "q2_k": .q2_K, "q3_k": .q3_K, "q4_k": .q4_K,
                                            "q5_k": .q5_K, "q6_k": .q6_K]
        for name in Self.names() {
            let info = try XCTUnwrap(gguf.tensors[name], name)
            XCTAssertEqual(info.type, expected[String(name.prefix(4))], name)
            XCTAssertTrue(GGMLType.dequantizable.contains(info.type))
            XCTAssertTrue(QuantizedMatrix.supportedTypes.contains(info.type))
        }
    }

    func testDequantisationBitExactOnEveryPath() throws {
        let (gguf, ref) = try open()
        for path in CPU.supportedKernelPaths {
            try CPU.withKernelPath(path) {
                for name in Self.names() {
                    let want = try ref.tensor(name).scalars.map(\.bitPattern)
                    XCTAssertEqual(try gguf.tensor(name).scalars.map(\.bitPattern), want, "\(path) \(name) tensor()")
                    let q = try XCTUnwrap(try gguf.quantizedMatrix(name), name)
                    XCTAssertEqual(q.dequantized().scalars.map(\.bitPattern), want, "\(path) \(name) dequantized()")
                    let ids = [q.rows - 1, 0, q.rows / 2, 0]
                    let rows = q.rows(ids).scalars.map(\.bitPattern)
                    XCTAssertEqual(rows, ids.flatMap { want[$0 * q.cols..<($0 + 1) * q.cols] }, "\(path) \(name) rows()")
                }
            }
        }
    }

    func testGEMVAndGEMMAgainstFloat64OnEveryPath() throws {
        let (gguf, ref) = try open()
        for path in CPU.supportedKernelPaths {
            try CPU.withKernelPath(path) {
                for name in Self.names() {
                    let full = try XCTUnwrap(try gguf.quantizedMatrix(name), name)
                    let w = try ref.tensor(name).scalars
                    let x = try ref.tensor("\(name).x").scalars, y = try ref.tensor("\(name).y").scalars
                    let X = try ref.tensor("\(name).X").scalars, Y = try ref.tensor("\(name).gemm").scalars
                    let k = full.cols
                    for rows in Set([1, 3, full.rows]) {
                        // The first `rows` rows of the tensor as their own matrix (a copy of those bytes).
                        let q = try full.withUnsafeBytes {
                            try QuantizedMatrix(type: full.type, rows: rows, cols: k,
                                                bytes: UnsafeRawBufferPointer(rebasing: $0[0..<rows * full.rowBytes]))
                        }
                        let wr = Array(w[0..<rows * k])
                        var out = [Float](repeating: .nan, count: rows)
                        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { q.gemv(xp.baseAddress!, into: $0.baseAddress!, beta: 0) } }
                        checkProduct(out, Array(y[0..<rows]), w: wr, x: x, m: 1, n: rows, k: k, "\(path) \(name) gemv \(rows) rows")
                        // beta = 1 adds to what y held.
                        var acc = [Float](repeating: 2, count: rows)
                        x.withUnsafeBufferPointer { xp in acc.withUnsafeMutableBufferPointer { q.gemv(xp.baseAddress!, into: $0.baseAddress!, beta: 1) } }
                        checkProduct(acc.map { $0 - 2 }, Array(y[0..<rows]), w: wr, x: x, m: 1, n: rows, k: k,
                                     "\(path) \(name) gemv beta 1 \(rows) rows")
                        for m in [2, 5] {
                            var o = [Float](repeating: .nan, count: m * rows)
                            X.withUnsafeBufferPointer { xp in o.withUnsafeMutableBufferPointer { q.gemm(xp.baseAddress!, rows: m, into: $0.baseAddress!, beta: 0) } }
                            let expected = (0..<m).flatMap { i in Y[i * full.rows..<i * full.rows + rows] }
                            checkProduct(o, expected, w: wr, x: Array(X[0..<m * k]), m: m, n: rows, k: k,
                                         "\(path) \(name) gemm \(m)×\(rows)")
                        }
                    }
                }
            }
        }
    }

    /// Rows tiled past ``QuantizedMatrix/parallelThreshold`` (row panels on all workers, GEMM panels of 64 rows and a
    /// remainder), and parts of different formats stacked without a copy.
    func testLargeAndConcatenatedMatrices() throws {
        let (gguf, ref) = try open()
        var parts: [QuantizedMatrix] = [], weights: [Float] = [], xs: [Float]? = nil
        for t in Self.types {
            let name = "\(t).7x512"
            let q = try XCTUnwrap(try gguf.quantizedMatrix(name))
            XCTAssertTrue(q.isMapped, "\(name) is read in place from the mapped file")
            let copies = 19  // 133 rows × 512 ≥ 64 Ki weights
            let bytes: [UInt8] = q.withUnsafeBytes { raw in Array((0..<copies).map { _ in Array(raw) }.joined()) }
            let tiled = try bytes.withUnsafeBytes { try QuantizedMatrix(type: q.type, rows: 7 * copies, cols: 512, bytes: $0) }
            XCTAssertGreaterThanOrEqual(tiled.rows * tiled.cols, QuantizedMatrix.parallelThreshold)
            let w = try ref.tensor(name).scalars, x = try ref.tensor("\(name).x").scalars, y = try ref.tensor("\(name).y").scalars
            let X = try ref.tensor("\(name).X").scalars, Y = try ref.tensor("\(name).gemm").scalars
            let wt = Array((0..<copies).map { _ in w }.joined())
            for path in CPU.supportedKernelPaths {
                CPU.withKernelPath(path) {
                    var out = [Float](repeating: .nan, count: tiled.rows)
                    x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { tiled.gemv(xp.baseAddress!, into: $0.baseAddress!, beta: 0) } }
                    checkProduct(out, Array((0..<copies).map { _ in y }.joined()), w: wt, x: x, m: 1, n: tiled.rows, k: 512,
                                 "\(path) \(name) ×\(copies) gemv")
                    var o = [Float](repeating: .nan, count: 5 * tiled.rows)
                    X.withUnsafeBufferPointer { xp in o.withUnsafeMutableBufferPointer { tiled.gemm(xp.baseAddress!, rows: 5, into: $0.baseAddress!, beta: 0) } }
                    let expected = (0..<5).flatMap { i in (0..<copies).flatMap { _ in Y[i * 7..<(i + 1) * 7] } }
                    checkProduct(o, expected, w: wt, x: X, m: 5, n: tiled.rows, k: 512, "\(path) \(name) ×\(copies) gemm")
                }
            }
            parts.append(q)
            weights += w
            // One shared input for the concatenation: the first tensor's x (references recomputed below in Double).
            if xs == nil { xs = x }
        }
        let all = try XCTUnwrap(QuantizedMatrix.concatenatingRows(parts))
        XCTAssertEqual(all.types, parts.map(\.type))
        XCTAssertEqual(all.rows, 7 * parts.count)
        XCTAssertEqual(all.dequantized().scalars.map(\.bitPattern), weights.map(\.bitPattern))
        let x = try XCTUnwrap(xs)
        func dot(_ r: Int, _ v: [Float], _ offset: Int) -> Float {
            var s = 0.0
            for j in 0..<512 { s += Double(weights[r * 512 + j]) * Double(v[offset + j]) }
            return Float(s)
        }
        let reference: [Float] = (0..<all.rows).map { dot($0, x, 0) }
        var out = [Float](repeating: .nan, count: all.rows)
        x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBufferPointer { all.gemv(xp.baseAddress!, into: $0.baseAddress!, beta: 0) } }
        checkProduct(out, reference, w: weights, x: x, m: 1, n: all.rows, k: 512, "concatenated gemv")
        let x2 = x + x.reversed()
        var o = [Float](repeating: .nan, count: 2 * all.rows)
        x2.withUnsafeBufferPointer { xp in o.withUnsafeMutableBufferPointer { all.gemm(xp.baseAddress!, rows: 2, into: $0.baseAddress!, beta: 0) } }
        var ref2: [Float] = []
        for i in 0..<2 { for r in 0..<all.rows { ref2.append(dot(r, x2, i * 512)) } }
        checkProduct(o, ref2, w: weights, x: x2, m: 2, n: all.rows, k: 512, "concatenated gemm")
    }

    /// The batched GEMV (``QuantizedMatrix/gemv(rows:count:stride:into:stride:beta:)``, a decode step for several
    /// sequences) of every format here and of a matrix concatenated from all of them (each part by its own kernel):
    /// output i bit-identical to the one-input GEMV on input i, on every path, for 1, 3, 8 (one full group) and 11
    /// inputs, with beta 0 and 1; and within the float64 tolerance of the dequantised product.
    func testBatchedGEMVEqualsOneInputGEMVOnEveryPath() throws {
        let (gguf, _) = try open()
        var matrices = try Self.names().map { ($0, try XCTUnwrap(try gguf.quantizedMatrix($0))) }
        let sevens = Self.types.map { t in matrices.first { $0.0 == "\(t).7x512" }!.1 }
        matrices.append(("concatenated", try XCTUnwrap(QuantizedMatrix.concatenatingRows(sevens))))
        var g = SeededGenerator(seed: 7)
        for path in CPU.supportedKernelPaths {
            CPU.withKernelPath(path) {
                for (name, q) in matrices {
                    let w = q.dequantized().scalars
                    for (count, beta) in [(1, Float(0)), (3, 1), (8, 0), (11, 1)] {
                        let x = (0..<(count * q.cols)).map { _ in Float(g.nextUniform() * 2 - 1) }
                        let y0 = (0..<(count * q.rows)).map { _ in Float(g.nextUniform()) }
                        var batched = y0, alone = y0
                        x.withUnsafeBufferPointer { xp in
                            batched.withUnsafeMutableBufferPointer {
                                q.gemv(rows: xp.baseAddress!, count: count, stride: q.cols, into: $0.baseAddress!, stride: q.rows, beta: beta)
                            }
                            alone.withUnsafeMutableBufferPointer { yp in
                                for i in 0..<count { q.gemv(xp.baseAddress! + i * q.cols, into: yp.baseAddress! + i * q.rows, beta: beta) }
                            }
                        }
                        XCTAssertEqual(batched.map(\.bitPattern), alone.map(\.bitPattern), "\(path) \(name) × \(count) inputs")
                        let plain = zip(batched, y0).map { $0 - beta * $1 }
                        checkProduct(plain, (0..<count).flatMap { i in (0..<q.rows).map { r in
                            Float((0..<q.cols).reduce(0.0) { $0 + Double(w[r * q.cols + $1]) * Double(x[i * q.cols + $1]) })
                        } }, w: w, x: x, m: count, n: q.rows, k: q.cols, "\(path) \(name) × \(count) inputs vs float64")
                    }
                }
            }
        }
    }

    /// A matrix read in place keeps the mapping alive after its GGUFFile is gone.
    func testMappedMatrixOutlivesFile() throws {
        var q: QuantizedMatrix?
        do {
            let file = try GGUFFile(url: Self.dir.appendingPathComponent("kquants.gguf.bin"))
            q = try file.quantizedMatrix("q6_k.7x512")
        }
        let ref = try SafeTensorsFile(url: Self.dir.appendingPathComponent("kquants_expected.safetensors"))
        let matrix = try XCTUnwrap(q)
        XCTAssertTrue(matrix.isMapped)
        XCTAssertEqual(matrix.dequantized().scalars.map(\.bitPattern), try ref.tensor("q6_k.7x512").scalars.map(\.bitPattern))
    }
}
