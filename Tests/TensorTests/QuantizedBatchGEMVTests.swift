import XCTest
@testable import Tensor

/// ``QuantizedMatrix/gemv(rows:count:stride:into:stride:beta:)`` (several vectors at once, for batched decoding):
/// every output row must be bit-identical to the one-vector ``QuantizedMatrix/gemv(_:into:beta:)`` on that vector
/// (that is what lets a batched sequence get exactly the logits it gets alone), and both must agree with a float64
/// product over ``QuantizedMatrix/dequantized()`` (itself checked bit-exact against gguf-py in
/// QuantizedMatrixTests) within 1e-5 · Σ|w·x|.
final class QuantizedBatchGEMVTests: XCTestCase {
    /// Valid random blocks: scales (and Q4_1 minimums) are finite f16 in ±[2⁻⁸, 2⁻¹], quants random.
    func randomMatrix(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) throws -> QuantizedMatrix {
        var g = SeededGenerator(seed: seed)
        let blockBytes = type.blockBytes!
        var bytes = [UInt8](repeating: 0, count: rows * cols / 32 * blockBytes)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: g.next()) }
        let halves = type == .q4_1 ? 2 : 1
        for b in 0..<(bytes.count / blockBytes) {
            for h in 0..<halves {
                let exponent = UInt16(7 + g.next() % 7)  // 2^(e − 15) in [2⁻⁸, 2⁻²]
                let bits = (UInt16(g.next() % 2) << 15) | (exponent << 10) | UInt16(g.next() % 1024)
                bytes[b * blockBytes + 2 * h] = UInt8(bits & 0xFF)
                bytes[b * blockBytes + 2 * h + 1] = UInt8(bits >> 8)
            }
        }
        return try bytes.withUnsafeBytes { try QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: $0) }
    }

    func check(_ type: GGMLType, rows: Int, cols: Int, count: Int, beta: Float) throws {
        let q = try randomMatrix(type, rows: rows, cols: cols, seed: UInt64(rows * 31 + count))
        var g = SeededGenerator(seed: 99)
        let x = (0..<(count * cols)).map { _ in Float(g.nextUniform() * 2 - 1) }
        let y0 = (0..<(count * rows)).map { _ in Float(g.nextUniform()) }
        var batched = y0, alone = y0
        x.withUnsafeBufferPointer { xp in
            batched.withUnsafeMutableBufferPointer { q.gemv(rows: xp.baseAddress!, count: count, stride: cols, into: $0.baseAddress!, stride: rows, beta: beta) }
            alone.withUnsafeMutableBufferPointer { yp in
                for i in 0..<count { q.gemv(xp.baseAddress! + i * cols, into: yp.baseAddress! + i * rows, beta: beta) }
            }
        }
        XCTAssertEqual(batched, alone, "\(CPU.kernelPath) \(type.name) \(rows)×\(cols), \(count) vectors: batched rows must equal one-vector GEMVs bit for bit")
        let w = q.dequantized()
        w.withUnsafeBufferPointer { wp in
            for i in 0..<count {
                for r in 0..<rows {
                    var s = Double(beta) * Double(y0[i * rows + r]), mag = abs(s)
                    for j in 0..<cols {
                        let p = Double(wp[r * cols + j]) * Double(x[i * cols + j])
                        s += p
                        mag += abs(p)
                    }
                    XCTAssertEqual(Double(batched[i * rows + r]), s, accuracy: 1e-5 * mag + 1e-7)
                }
            }
        }
    }

    func testBatchedRowsEqualOneVectorGEMVs() throws {
        for path in CPU.supportedKernelPaths {
            try CPU.withKernelPath(path) {
                for type in [GGMLType.q8_0, .q4_0, .q4_1] {
                    try check(type, rows: 37, cols: 96, count: 5, beta: 0)      // row remainder (37 = 4·9 + 1)
                    try check(type, rows: 37, cols: 96, count: 11, beta: 1)     // more vectors than one pass takes (8)
                    try check(type, rows: 600, cols: 128, count: 3, beta: 0)    // large enough to split across workers
                    try check(type, rows: 5, cols: 64, count: 8, beta: 0)       // exactly one full group of inputs
                }
            }
        }
    }

    /// F16 / BF16 rows (a GGUF's half-precision weights): batched rows equal the one-vector GEMV bit for bit on every
    /// path, with a row length that is no multiple of the 256-element conversion chunk.
    func testHalfPrecisionBatchedRowsEqualOneVectorGEMVs() throws {
        var g = SeededGenerator(seed: 5)
        let (rows, cols) = (37, 300)
        let values = (0..<(rows * cols)).map { _ in Float(g.nextUniform() * 2 - 1) }
        let f16 = values.flatMap { v in withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { Array($0) } }
        let bf16 = values.flatMap { v in withUnsafeBytes(of: UInt16(v.bitPattern >> 16).littleEndian) { Array($0) } }
        for (type, bytes) in [(GGMLType.f16, f16), (GGMLType.bf16, bf16)] {
            let q = try bytes.withUnsafeBytes { try QuantizedMatrix(type: type, rows: rows, cols: cols, bytes: $0) }
            for path in CPU.supportedKernelPaths {
                CPU.withKernelPath(path) {
                    for (count, beta) in [(3, Float(0)), (9, 1)] {
                        let x = (0..<(count * cols)).map { _ in Float(g.nextUniform() * 2 - 1) }
                        let y0 = (0..<(count * rows)).map { _ in Float(g.nextUniform()) }
                        var batched = y0, alone = y0
                        x.withUnsafeBufferPointer { xp in
                            batched.withUnsafeMutableBufferPointer {
                                q.gemv(rows: xp.baseAddress!, count: count, stride: cols, into: $0.baseAddress!, stride: rows, beta: beta)
                            }
                            alone.withUnsafeMutableBufferPointer { yp in
                                for i in 0..<count { q.gemv(xp.baseAddress! + i * cols, into: yp.baseAddress! + i * rows, beta: beta) }
                            }
                        }
                        XCTAssertEqual(batched.map(\.bitPattern), alone.map(\.bitPattern), "\(path) \(type.name) × \(count)")
                    }
                }
            }
        }
    }
}
