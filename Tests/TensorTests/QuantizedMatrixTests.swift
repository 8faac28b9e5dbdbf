import Foundation
import XCTest
@testable import Tensor

// QuantizedMatrix: GEMV straight from Q8_0 / Q4_0 / Q4_1 blocks against the product of the dequantised matrix
// (`dequantized()`, the bit-exact dequantiser that GGUFTests checks against gguf-py) with x, computed in Double.
//
// Tolerance: |gemv − reference| ≤ 1e-5 · max_r |reference_r| for every product. The kernels accumulate in float in
// a different order (per block, factored: d·Σq·x + m·Σx) than a float GEMV over the dequantised matrix would, so
// the results are not bit-identical, but the mathematics is the same.
//
// Matrices come from the gguf-py fixtures (Fixtures/gguf/types.gguf.bin) and from random bytes built here directly:
// Swift cannot quantise, but any bytes are valid blocks once the f16 scales are chosen sensibly (normal scales of
// 2⁻¹⁰…2⁻¹ with random sign and mantissa, about 5 % zero and 5 % subnormal).

final class QuantizedMatrixTests: XCTestCase {
    private static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("gguf")

    // MARK: Helpers

    /// Random blocks of `type`: f16 scale (and, for Q4_1, min) from `half`, the rest uniform random bytes.
    private func randomBytes(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededGenerator(seed: seed)
        func half(exponents: ClosedRange<UInt64>) -> UInt16 {
            let sign = UInt16(rng.next() & 1) << 15, mantissa = UInt16(rng.next() & 0x3FF)
            switch rng.next() % 20 {
            case 0: return sign  // ±0
            case 1: return sign | mantissa  // subnormal (or zero)
            default:
                let e = exponents.lowerBound + rng.next() % UInt64(exponents.count)
                return sign | UInt16(e) << 10 | mantissa
            }
        }
        let blockBytes = type.blockBytes!
        var bytes = [UInt8](repeating: 0, count: rows * cols / 32 * blockBytes)
        for b in 0..<(bytes.count / blockBytes) {
            let o = b * blockBytes
            for j in 0..<blockBytes { bytes[o + j] = UInt8(truncatingIfNeeded: rng.next() >> 17) }
            let d = half(exponents: 5...14)  // 2⁻¹⁰ … 2⁻¹ (times 1 + mantissa)
            (bytes[o], bytes[o + 1]) = (UInt8(d & 0xFF), UInt8(d >> 8))
            if type == .q4_1 {
                let m = half(exponents: 8...16)  // 2⁻⁷ … 2
                (bytes[o + 2], bytes[o + 3]) = (UInt8(m & 0xFF), UInt8(m >> 8))
            }
        }
        return bytes
    }

    private func matrix(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) throws -> QuantizedMatrix {
        let bytes = randomBytes(type, rows: rows, cols: cols, seed: seed)
        return try bytes.withUnsafeBytes { try QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: $0) }
    }

    private func randomVector(_ n: Int, seed: UInt64, mean: Float = 0) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        return (0..<n).map { _ in mean + rng.nextNormal() }
    }

    /// `q.gemv` on x (and y0 when beta ≠ 0) against `beta·y0 + W·x` in Double with `W = q.dequantized()`.
    private func checkGEMV(_ q: QuantizedMatrix, beta: Float, seed: UInt64, xMean: Float = 0, _ label: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        let x = randomVector(q.cols, seed: seed, mean: xMean)
        let y0 = randomVector(q.rows, seed: seed &+ 1)
        var y = y0
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { q.gemv(xp.baseAddress!, into: $0.baseAddress!, beta: beta) }
        }
        let w = q.dequantized().scalars
        var reference = [Double](repeating: 0, count: q.rows)
        for r in 0..<q.rows {
            var s = Double(beta) * Double(y0[r])
            for j in 0..<q.cols { s += Double(w[r * q.cols + j]) * Double(x[j]) }
            reference[r] = s
        }
        let scale = reference.map(abs).max() ?? 0
        let diff = zip(y, reference).map { abs(Double($0) - $1) }.max() ?? 0
        XCTAssertTrue(y.allSatisfy(\.isFinite), "\(label): non-finite output", file: file, line: line)
        XCTAssertLessThanOrEqual(diff, 1e-5 * scale, "\(label): max |diff| \(diff), max |reference| \(scale)",
                                 file: file, line: line)
    }

    // MARK: Tests

    func testFixtureMatricesFromGGUFPy() throws {
        let file = try GGUFFile(url: Self.fixtures.appendingPathComponent("types.gguf.bin"))
        for name in ["q8_0.3x64", "q4_0.3x64", "q4_1.3x64"] {
            let q = try XCTUnwrap(try file.quantizedMatrix(name), name)
            XCTAssertEqual(q.type, file.tensors[name]!.type, name)
            XCTAssertEqual([q.rows, q.cols], [3, 64], name)
            XCTAssertEqual(q.byteCount, file.tensors[name]!.byteCount, name)
            XCTAssertEqual(q.dequantized().scalars.map(\.bitPattern), try file.tensor(name).scalars.map(\.bitPattern), name)
            for beta: Float in [0, 1] { checkGEMV(q, beta: beta, seed: 7, "\(name) beta \(beta)") }
        }
        // Only 2-D tensors are matrices; a 3-D tensor's bytes still make a 6 × 32 one. F32 / F16 / BF16 matrices are
        // read in place too (their GEMV converts rows as it goes).
        XCTAssertNil(try file.quantizedMatrix("q8_0.2x3x32"))
        for name in ["f32.3x64", "f16.3x64", "bf16.3x64"] {
            let q = try XCTUnwrap(try file.quantizedMatrix(name), name)
            XCTAssertEqual(q.dequantized().scalars.map(\.bitPattern), try file.tensor(name).scalars.map(\.bitPattern), name)
            // Rows end in ±inf / NaN specials (see scripts/fixtures/gguf.py): multiply the first, finite row only.
            let first = try q.withUnsafeBytes {
                try QuantizedMatrix(type: q.type, rows: 1, cols: 64, bytes: UnsafeRawBufferPointer(rebasing: $0[0..<q.rowBytes]))
            }
            for path in CPU.supportedKernelPaths {
                CPU.withKernelPath(path) { for beta: Float in [0, 1] { checkGEMV(first, beta: beta, seed: 9, "\(name) \(path) beta \(beta)") } }
            }
        }
        XCTAssertThrowsError(try file.quantizedMatrix("no.such.tensor"))
        for type in ["q8_0", "q4_0", "q4_1"] {
            let name = "\(type).2x3x32"
            let q = try file.withRawBytes(of: name) {
                try QuantizedMatrix(type: file.tensors[name]!.type, rows: 6, cols: 32, bytes: $0)
            }
            XCTAssertEqual(q.dequantized(), try file.tensor(name).reshaped([6, 32]), name)
            checkGEMV(q, beta: 0, seed: 8, name)
        }
    }

    func testRandomMatricesAgainstDoubleReference() throws {
        var seed: UInt64 = 100
        for type in [GGMLType.q8_0, .q4_0, .q4_1] {  // K-quants and Q5_x: KQuantTests
            for k in [32, 64, 576, 1536] {
                for rows in [1, 2, 3, 4, 5, 7, 9, 66, 250] {
                    for beta: Float in [0, 1] {
                        seed += 1
                        let q = try matrix(type, rows: rows, cols: k, seed: seed)
                        checkGEMV(q, beta: beta, seed: seed, xMean: seed % 2 == 0 ? 0 : 0.5,
                                  "\(type.name) \(rows)×\(k) beta \(beta)")
                    }
                }
            }
        }
    }

    func testLargeMatricesSplitAcrossWorkers() throws {
        // rows × cols ≥ parallelThreshold: row panels on all workers (rows not a multiple of 4 nor of the panel).
        for (type, rows, cols) in [(GGMLType.q4_1, 3075, 576), (.q4_0, 1029, 1536), (.q8_0, 4097, 576), (.q4_1, 577, 1536)] {
            XCTAssertGreaterThanOrEqual(rows * cols, QuantizedMatrix.parallelThreshold)
            let q = try matrix(type, rows: rows, cols: cols, seed: UInt64(rows))
            for beta: Float in [0, 1] { checkGEMV(q, beta: beta, seed: UInt64(rows + cols), "\(type.name) \(rows)×\(cols) beta \(beta)") }
            // Every row is computed the same way whichever panel it falls in: split equals single-threaded bit for bit.
            let x = randomVector(cols, seed: 3)
            var split = [Float](repeating: 0, count: rows), serial = split
            x.withUnsafeBufferPointer { xp in
                split.withUnsafeMutableBufferPointer { q.gemv(xp.baseAddress!, into: $0.baseAddress!, beta: 0) }
                parallelFor(1) { _ in  // inside a parallel region: runs on one thread
                    serial.withUnsafeMutableBufferPointer { q.gemv(xp.baseAddress!, into: $0.baseAddress!, beta: 0) }
                }
            }
            XCTAssertEqual(split.map(\.bitPattern), serial.map(\.bitPattern), "\(type.name) \(rows)×\(cols)")
        }
    }

    func testConcatenatingAndPermutingRows() throws {
        let a = try matrix(.q4_1, rows: 5, cols: 64, seed: 1), b = try matrix(.q4_1, rows: 3, cols: 64, seed: 2)
        let ab = try XCTUnwrap(QuantizedMatrix.concatenatingRows([a, b]))
        XCTAssertEqual([ab.rows, ab.cols], [8, 64])
        XCTAssertEqual(ab.type, .q4_1)
        XCTAssertEqual(ab.dequantized(), Tensor.concatenate([a.dequantized(), b.dequantized()], axis: 0))
        checkGEMV(ab, beta: 0, seed: 4, "concatenated")
        XCTAssertNil(QuantizedMatrix.concatenatingRows([]))
        let mixed = try XCTUnwrap(QuantizedMatrix.concatenatingRows([a, try matrix(.q4_0, rows: 3, cols: 64, seed: 3)]))
        XCTAssertEqual(mixed.types, [.q4_1, .q4_0], "parts keep their formats")
        checkGEMV(mixed, beta: 1, seed: 6, "concatenated q4_1 + q4_0")
        XCTAssertNil(QuantizedMatrix.concatenatingRows([a, try matrix(.q4_1, rows: 3, cols: 32, seed: 3)]), "cols differ")

        let order = [3, 0, 7, 1, 6, 2, 5, 4]
        let p = ab.permutingRows(order)
        let expected = ab.dequantized().scalars
        XCTAssertEqual(p.dequantized().scalars, order.flatMap { expected[$0 * 64..<($0 + 1) * 64] })
        checkGEMV(p, beta: 1, seed: 5, "permuted")
    }

    func testInitValidatesTypeAndSize() throws {
        let bytes = randomBytes(.q8_0, rows: 2, cols: 64, seed: 9)
        try bytes.withUnsafeBytes { raw in
            XCTAssertNoThrow(try QuantizedMatrix(type: .q8_0, rows: 2, cols: 64, bytes: raw))
            XCTAssertEqual(try QuantizedMatrix(type: .q8_0, rows: 2, cols: 64, bytes: raw).rowBytes, 68)
            for (type, rows, cols, message) in [(GGMLType.q8_0, 3, 64, "needs 204 bytes, got 136"),
                                                (.q4_1, 2, 64, "needs 80 bytes"),
                                                (.q8_0, 4, 33, "multiple of 32"),
                                                (GGMLType(rawValue: 16), 1, 256, "IQ2_XXS (16) is not supported"),
                                                (.q4_K, 1, 256, "needs 144 bytes, got 136"),
                                                (.q4_K, 1, 64, "multiple of 256")] {
                XCTAssertThrowsError(try QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: raw)) { error in
                    XCTAssertTrue("\(error)".contains(message), "'\(message)' not in: \(error)")
                }
            }
        }
        let empty = try QuantizedMatrix(type: .q4_0, rows: 0, cols: 32, bytes: UnsafeRawBufferPointer(start: nil, count: 0))
        XCTAssertEqual(empty.dequantized().shape, [0, 32])
    }
}
