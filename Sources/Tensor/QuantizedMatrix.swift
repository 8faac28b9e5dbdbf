import CKernels

/// A matrix kept in one of ggml's block-quantised formats (``GGMLType/q8_0``, ``GGMLType/q4_0``,
/// ``GGMLType/q4_1``; layouts in GGUFQuantization.swift): `rows × cols` weights, row-major, each row `cols / 32`
/// consecutive blocks. It multiplies vectors straight from the blocks (``gemv(_:into:beta:)``), reading 4.5–8.5 bits
/// per weight instead of 32: what one-token decode steps, which read every weight once, are bound by.
///
/// The bytes are an owned, 64-byte-aligned copy, immutable once built.
public struct QuantizedMatrix: Sendable {
    /// The block formats with a GEMV kernel.
    public static let supportedTypes: [GGMLType] = [.q8_0, .q4_0, .q4_1]

    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    private let storage: Storage

    /// Bytes of one row.
    public var rowBytes: Int { cols / 32 * type.blockBytes! }
    /// Bytes of the whole matrix.
    public var byteCount: Int { rows * rowBytes }

    /// An invalid type or size given to ``init(type:rows:cols:bytes:)``.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Copies `bytes`, exactly `rows` rows of `cols / 32` blocks of `type`.
    ///
    /// - Throws: ``Error`` unless `type` is one of ``supportedTypes``, `cols` a positive multiple of 32, `rows`
    ///   non-negative and `bytes.count == rows · cols / 32 · blockBytes`.
    public init(type: GGMLType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer) throws {
        guard Self.supportedTypes.contains(type) else {
            throw Error(description: "QuantizedMatrix: \(type) is not supported (Q8_0, Q4_0, Q4_1)")
        }
        guard rows >= 0, cols > 0, cols % 32 == 0 else {
            throw Error(description: "QuantizedMatrix: \(rows) × \(cols) \(type.name): cols must be a positive multiple of 32")
        }
        let (expected, overflow) = rows.multipliedReportingOverflow(by: cols / 32 * type.blockBytes!)
        guard !overflow, bytes.count == expected else {
            throw Error(description: "QuantizedMatrix: \(rows) × \(cols) \(type.name) needs \(overflow ? "too many" : String(expected)) "
                        + "bytes, got \(bytes.count)")
        }
        self.init(type: type, rows: rows, cols: cols) { $0.copyMemory(from: bytes) }
    }

    /// A matrix whose bytes `fill` writes (sizes already checked).
    private init(type: GGMLType, rows: Int, cols: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        (self.type, self.rows, self.cols) = (type, rows, cols)
        storage = Storage(byteCount: rows * (cols / 32 * type.blockBytes!))
        fill(storage.bytes)
    }

    /// Calls `body` with the raw blocks.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(storage.bytes))
    }

    /// Below this many weights a product runs on the calling thread (as ``GEMM/parallelSgemm`` does for GEMVs).
    public static let parallelThreshold = 64 * 1024

    /// `y[r] = beta · y[r] + Σ_j W[r, j] · x[j]` for `r < rows`, with `W` the dequantised weights (``dequantized()``)
    /// and `x` of `cols` floats. The sum is accumulated in float (in a different order than a float GEMV over
    /// ``dequantized()``). Large matrices are split into row panels across ``Threading/workers``.
    public func gemv(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, beta: Float) {
        let kernel: (UnsafeRawPointer?, Int, UnsafePointer<Float>?, Int, UnsafeMutablePointer<Float>?, Int, Float) -> Void
        switch type {
        case .q8_0: kernel = ck_gemv_q8_0
        case .q4_0: kernel = ck_gemv_q4_0
        default: kernel = ck_gemv_q4_1
        }
        let (w, ldw, k) = (UnsafeRawPointer(storage.bytes.baseAddress!), rowBytes, cols)
        let workers = Threading.workers
        guard workers > 1, rows * cols >= Self.parallelThreshold, !Threading.isInsideParallelRegion else {
            kernel(w, ldw, x, k, y, rows, beta)
            return
        }
        // Panels of a multiple of 4 rows (the kernels' row group), one per worker.
        let panel = ((rows + workers - 1) / workers + 3) / 4 * 4
        parallelFor((rows + panel - 1) / panel) { p in
            let start = p * panel
            kernel(w + start * ldw, ldw, x, k, y + start, min(panel, rows - start), beta)
        }
    }

    /// The rows of `parts` one after another (e.g. Q, K and V projections fused into one matrix), or nil unless
    /// all parts have the same type and column count (or there are none).
    public static func concatenatingRows(_ parts: [QuantizedMatrix]) -> QuantizedMatrix? {
        guard let first = parts.first, parts.allSatisfy({ $0.type == first.type && $0.cols == first.cols }) else { return nil }
        return QuantizedMatrix(type: first.type, rows: parts.reduce(0) { $0 + $1.rows }, cols: first.cols) { out in
            var offset = 0
            for part in parts {
                (out.baseAddress! + offset).copyMemory(from: part.storage.bytes.baseAddress!, byteCount: part.byteCount)
                offset += part.byteCount
            }
        }
    }

    /// The matrix whose row `r` is row `order[r]` of this one; `order` must be a permutation of `0..<rows`.
    public func permutingRows(_ order: [Int]) -> QuantizedMatrix {
        precondition(order.count == rows, "permutingRows: \(order.count) indices for \(rows) rows")
        var seen = [Bool](repeating: false, count: rows)
        for s in order {
            precondition(s >= 0 && s < rows && !seen[s], "permutingRows: order is not a permutation of 0..<\(rows)")
            seen[s] = true
        }
        let n = rowBytes, src = storage.bytes.baseAddress!
        return QuantizedMatrix(type: type, rows: rows, cols: cols) { out in
            for (r, s) in order.enumerated() { (out.baseAddress! + r * n).copyMemory(from: src + s * n, byteCount: n) }
        }
    }

    /// The weights as a `[rows, cols]` float tensor, bit-exact with ggml's dequantisation (``GGUFFile/tensor(_:)``).
    public func dequantized() -> Tensor {
        var out = Tensor(uninitializedShape: [rows, cols])
        if rows == 0 { return out }
        out.withUnsafeMutableBufferPointer { dst in
            GGUFDequantizer.dequantize(UnsafeRawBufferPointer(storage.bytes), type: type, rowLength: cols, into: dst)
        }
        return out
    }

    /// An immutable, aligned byte buffer (written only while its matrix is built).
    private final class Storage: @unchecked Sendable {
        let bytes: UnsafeMutableRawBufferPointer
        init(byteCount: Int) { bytes = .allocate(byteCount: max(byteCount, 1), alignment: 64) }
        deinit { bytes.deallocate() }
    }
}

extension GGUFFile {
    /// Tensor `name` as a ``QuantizedMatrix`` (its raw blocks copied), or nil unless it is a 2-D tensor of one of
    /// ``QuantizedMatrix/supportedTypes``.
    ///
    /// - Throws: ``GGUFError`` if there is no such tensor.
    public func quantizedMatrix(_ name: String) throws -> QuantizedMatrix? {
        guard let info = tensors[name] else {
            throw GGUFError(kind: .tensorNotFound, file: url, tensor: name, detail: "the file has no tensor of that name")
        }
        guard info.dimensions.count == 2, QuantizedMatrix.supportedTypes.contains(info.type) else { return nil }
        return try withRawBytes(of: name) {
            try QuantizedMatrix(type: info.type, rows: info.dimensions[1], cols: info.dimensions[0], bytes: $0)
        }
    }
}
