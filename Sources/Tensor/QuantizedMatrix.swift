import CKernels

/// A matrix kept as a GGUF file stores it: ggml's block-quantised formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, the
/// K-quants Q2_K … Q6_K; layouts in GGUFQuantization.swift and Sources/CKernels/kquants.c) or plain F32 / F16 / BF16
/// rows. `rows × cols` weights, row-major, each row `cols / blockSize` consecutive blocks.
///
/// It multiplies straight from the stored bytes, never holding a float copy:
///   * one input row (a decode step, ``gemv(_:into:beta:)``): a GEMV kernel per format reads 2.6–8.5 bits per
///     weight instead of 32, which is what decode is bound by;
///   * several rows (prefill, ``gemm(_:rows:into:beta:)``): panels of weight rows are dequantised into a per-worker
///     buffer and multiplied with sgemm (F32 rows go to sgemm in place).
///
/// The bytes are either an owned, 64-byte-aligned copy or a view into a memory-mapped GGUF file (``MappedFile``), kept
/// alive as long as the matrix. A matrix may consist of several *parts* stacked by rows (``concatenatingRows(_:)``:
/// fused Q/K/V or gate/up projections) that keep their own storage and type, so fusing copies nothing.
public struct QuantizedMatrix: @unchecked Sendable {
    /// The storage formats with kernels.
    public static let supportedTypes: [GGMLType] = [.q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K,
                                                    .q6_K, .f32, .f16, .bf16]

    /// The format of the first part (all parts share it unless the matrix was concatenated from different ones).
    public var type: GGMLType { parts.first?.type ?? emptyType }
    /// The formats of the parts, top to bottom.
    public var types: [GGMLType] { parts.map(\.type) }
    public let rows: Int
    public let cols: Int
    private let parts: [Part]
    private let emptyType: GGMLType

    /// A run of rows in one format, at `base` (row stride `rowBytes`), kept alive by `owner`.
    private struct Part {
        let type: GGMLType
        let base: UnsafeRawPointer
        let rows: Int
        let rowBytes: Int
        let owner: AnyObject
    }

    /// Bytes of one row (of the first part).
    public var rowBytes: Int { Self.rowBytes(type, cols) }
    /// Bytes of the whole matrix.
    public var byteCount: Int { parts.reduce(0) { $0 + $1.rows * $1.rowBytes } }
    /// Whether every byte is read in place from a memory-mapped file.
    public var isMapped: Bool { !parts.isEmpty && parts.allSatisfy { ($0.owner as? MappedFile)?.isMapped == true } }

    static func rowBytes(_ type: GGMLType, _ cols: Int) -> Int { cols / type.blockSize! * type.blockBytes! }

    /// An invalid type or size given to ``init(type:rows:cols:bytes:)``.
    public struct Error: Swift.Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    private static func validate(type: GGMLType, rows: Int, cols: Int, byteCount: Int) throws {
        guard supportedTypes.contains(type), let blockSize = type.blockSize, let blockBytes = type.blockBytes else {
            let names = supportedTypes.map(\.name).joined(separator: ", ")
            throw Error(description: "QuantizedMatrix: \(type) is not supported (\(names))")
        }
        guard rows >= 0, cols > 0, cols % blockSize == 0 else {
            throw Error(description: "QuantizedMatrix: \(rows) × \(cols) \(type.name): cols must be a positive multiple of \(blockSize)")
        }
        let (expected, overflow) = rows.multipliedReportingOverflow(by: cols / blockSize * blockBytes)
        guard !overflow, byteCount == expected else {
            throw Error(description: "QuantizedMatrix: \(rows) × \(cols) \(type.name) needs \(overflow ? "too many" : String(expected)) "
                        + "bytes, got \(byteCount)")
        }
    }

    /// Copies `bytes`, exactly `rows` rows of `cols / blockSize` blocks of `type`.
    ///
    /// - Throws: ``Error`` unless `type` is one of ``supportedTypes``, `cols` a positive multiple of its block size,
    ///   `rows` non-negative and `bytes.count == rows · cols / blockSize · blockBytes`.
    public init(type: GGMLType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer) throws {
        try Self.validate(type: type, rows: rows, cols: cols, byteCount: bytes.count)
        self.init(type: type, rows: rows, cols: cols) { $0.copyMemory(from: bytes) }
    }

    /// A view of `bytes` inside `file` (no copy); the matrix keeps `file` alive. Falls back to a copy when the bytes
    /// are not aligned for their element type (F32 rows need 4-byte alignment for sgemm; blocks need none).
    ///
    /// - Throws: as ``init(type:rows:cols:bytes:)``.
    public init(type: GGMLType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer, in file: MappedFile) throws {
        try Self.validate(type: type, rows: rows, cols: cols, byteCount: bytes.count)
        let alignment = type == .f32 ? 4 : type == .f16 || type == .bf16 ? 2 : 1
        guard rows > 0, let base = bytes.baseAddress, Int(bitPattern: base) % alignment == 0 else {
            self.init(type: type, rows: rows, cols: cols) { $0.copyMemory(from: bytes) }
            return
        }
        self.init(parts: [Part(type: type, base: base, rows: rows, rowBytes: Self.rowBytes(type, cols), owner: file)],
                  cols: cols, emptyType: type)
    }

    /// A matrix whose bytes `fill` writes (sizes already checked).
    private init(type: GGMLType, rows: Int, cols: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        (self.rows, self.cols, emptyType) = (rows, cols, type)
        let n = Self.rowBytes(type, cols)
        let storage = Storage(byteCount: rows * n)
        fill(storage.bytes)
        parts = rows == 0 ? [] : [Part(type: type, base: UnsafeRawPointer(storage.bytes.baseAddress!), rows: rows,
                                       rowBytes: n, owner: storage)]
    }

    private init(parts: [Part], cols: Int, emptyType: GGMLType) {
        self.parts = parts.filter { $0.rows > 0 }
        (rows, self.cols, self.emptyType) = (parts.reduce(0) { $0 + $1.rows }, cols, emptyType)
    }

    /// Calls `body` with the raw bytes of a single-part matrix (all of them, contiguous); a concatenated matrix is
    /// first copied into one buffer.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if parts.count == 1 { return try body(UnsafeRawBufferPointer(start: parts[0].base, count: byteCount)) }
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        defer { copy.deallocate() }
        var offset = 0
        for p in parts {
            (copy.baseAddress! + offset).copyMemory(from: p.base, byteCount: p.rows * p.rowBytes)
            offset += p.rows * p.rowBytes
        }
        return try body(UnsafeRawBufferPointer(start: copy.baseAddress, count: byteCount))
    }

    // MARK: Products

    /// Below this many weights a product runs on the calling thread (as ``GEMM/parallelSgemm`` does for GEMVs).
    public static let parallelThreshold = 64 * 1024

    /// A contiguous run of rows in one part: the unit of work.
    struct Chunk {
        let type: GGMLType
        let base: UnsafeRawPointer
        let rowBytes: Int
        let firstRow: Int
        let rows: Int
    }

    /// The rows cut into chunks of at most `panel` rows, never spanning two parts.
    func chunks(panel: Int) -> [Chunk] {
        var out: [Chunk] = []
        var row = 0
        for p in parts {
            var r = 0
            while r < p.rows {
                let n = min(panel, p.rows - r)
                out.append(Chunk(type: p.type, base: p.base + r * p.rowBytes, rowBytes: p.rowBytes, firstRow: row + r, rows: n))
                r += n
            }
            row += p.rows
        }
        return out
    }

    /// One chunk's GEMV: y[r] = beta·y[r] + W[r]·x (`ck_quant_gemv` picks the format's kernel for the path).
    private static func gemv(_ c: Chunk, _ x: UnsafePointer<Float>, _ k: Int, _ y: UnsafeMutablePointer<Float>, _ beta: Float) {
        _ = ck_quant_gemv(Int32(c.type.rawValue), c.base, c.rowBytes, x, k, y, c.rows, beta)
    }

    /// `y[r] = beta · y[r] + Σ_j W[r, j] · x[j]` for `r < rows`, with `W` the dequantised weights (``dequantized()``)
    /// and `x` of `cols` floats. The sum is accumulated in float (in a different order than a float GEMV over
    /// ``dequantized()``). Large matrices are split into row panels across ``Threading/workers``.
    public func gemv(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, beta: Float) {
        let workers = Threading.workers
        guard workers > 1, rows * cols >= Self.parallelThreshold, !Threading.isInsideParallelRegion else {
            for c in chunks(panel: max(rows, 1)) { Self.gemv(c, x, cols, y + c.firstRow, beta) }
            return
        }
        // Panels of a multiple of 4 rows (the four-row kernels' group), about two per worker and part.
        let panel = max(4, ((rows + 2 * workers - 1) / (2 * workers) + 3) / 4 * 4)
        let work = chunks(panel: panel)
        parallelFor(work.count) { i in
            let c = work[i]
            Self.gemv(c, x, cols, y + c.firstRow, beta)
        }
    }

    /// Floats of dequantised weights per worker panel in ``gemm(_:rows:into:beta:)`` (512 KiB: the panel stays in
    /// L2 while sgemm packs it).
    public static let gemmPanelFloats = 128 * 1024

    /// Rows per panel: at most ``gemmPanelFloats`` / cols (at least 16), and the same number of panels for every
    /// worker, so that sgemm packs the input as few times as possible and no worker waits for a lone last panel.
    static func gemmPanelRows(rows: Int, cols: Int, workers: Int) -> Int {
        let maxRows = max(16, gemmPanelFloats / max(cols, 1) / 16 * 16)
        let rounds = (rows + workers * maxRows - 1) / (workers * maxRows)
        let panels = max(1, rounds * workers)
        return min(maxRows, ((rows + panels - 1) / panels + 15) / 16 * 16)
    }

    /// `Y = beta · Y + X · Wᵀ` for `X` `[m, cols]` and `Y` `[m, rows]` (row-major): the prefill product. Each worker
    /// dequantises a panel of weight rows (``gemmPanelFloats``) into its own buffer and runs a single-threaded sgemm
    /// on it; F32 parts multiply in place. One input row (`m == 1`) takes ``gemv(_:into:beta:)``.
    public func gemm(_ x: UnsafePointer<Float>, rows m: Int, into y: UnsafeMutablePointer<Float>, beta: Float) {
        guard m > 0, rows > 0 else { return }
        if m == 1 {
            gemv(x, into: y, beta: beta)
            return
        }
        let threads = Threading.isInsideParallelRegion ? 1 : Threading.workers
        let panel = Self.gemmPanelRows(rows: rows, cols: cols, workers: threads)
        let work = chunks(panel: panel)
        let workers = min(threads, work.count)
        let panelFloats = panel * cols
        let buffers = UnsafeMutablePointer<Float>.allocate(capacity: max(1, workers) * panelFloats)
        defer { buffers.deallocate() }
        let (n, k) = (rows, cols)
        let body = { (worker: Int, i: Int) in
            let c = work[i]
            let w: UnsafePointer<Float>
            if c.type == .f32 {
                w = UnsafeRawPointer(c.base).assumingMemoryBound(to: Float.self)
            } else {
                let buf = buffers + worker * panelFloats
                _ = ck_quant_dequantize_rows(Int32(c.type.rawValue), c.base, c.rowBytes, c.rows, k, buf)
                w = UnsafePointer(buf)
            }
            GEMM.sgemm(transA: false, transB: true, m: m, n: c.rows, k: k, a: x, lda: k, b: w, ldb: k, beta: beta,
                       c: y + c.firstRow, ldc: n)
        }
        if workers <= 1 {
            for i in 0..<work.count { body(0, i) }
        } else {
            parallelFor(work.count, body)
        }
    }

    // MARK: Building

    /// The rows of `parts` one after another (e.g. Q, K and V projections fused into one matrix), sharing their
    /// storage (nothing is copied); the parts may differ in format. Nil unless all have the same column count (or
    /// there are none).
    public static func concatenatingRows(_ matrices: [QuantizedMatrix]) -> QuantizedMatrix? {
        guard let first = matrices.first, matrices.allSatisfy({ $0.cols == first.cols }) else { return nil }
        return QuantizedMatrix(parts: matrices.flatMap(\.parts), cols: first.cols, emptyType: first.emptyType)
    }

    /// Rows `range` of this matrix, sharing its storage (nothing is copied): e.g. the Q, K and V blocks of a fused
    /// QKV projection stored as one tensor.
    public func slicingRows(_ range: Range<Int>) -> QuantizedMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "slicingRows: \(range) outside 0..<\(rows)")
        var out: [Part] = []
        var first = 0
        for p in parts {
            let lo = max(range.lowerBound, first), hi = min(range.upperBound, first + p.rows)
            if lo < hi {
                out.append(Part(type: p.type, base: p.base + (lo - first) * p.rowBytes, rows: hi - lo, rowBytes: p.rowBytes,
                                owner: p.owner))
            }
            first += p.rows
        }
        return QuantizedMatrix(parts: out, cols: cols, emptyType: type)
    }

    /// The matrix whose row `r` is row `order[r]` of this one (an owned copy in the first part's format); `order`
    /// must be a permutation of `0..<rows` and all parts must share one format.
    public func permutingRows(_ order: [Int]) -> QuantizedMatrix {
        precondition(order.count == rows, "permutingRows: \(order.count) indices for \(rows) rows")
        precondition(Set(types).count <= 1, "permutingRows: parts of different formats \(types.map(\.name))")
        var seen = [Bool](repeating: false, count: rows)
        for s in order {
            precondition(s >= 0 && s < rows && !seen[s], "permutingRows: order is not a permutation of 0..<\(rows)")
            seen[s] = true
        }
        let n = rowBytes
        let rowPointers = chunks(panel: 1).map(\.base)
        return QuantizedMatrix(type: type, rows: rows, cols: cols) { out in
            for (r, s) in order.enumerated() { (out.baseAddress! + r * n).copyMemory(from: rowPointers[s], byteCount: n) }
        }
    }

    /// True when both read the same bytes (same parts, e.g. a tied embedding and output head).
    public func sharesStorage(with other: QuantizedMatrix) -> Bool {
        parts.count == other.parts.count && zip(parts, other.parts).allSatisfy { $0.base == $1.base && $0.rows == $1.rows }
    }

    // MARK: Dequantisation

    /// Rows `ids` dequantised, `[ids.count, cols]` (an embedding lookup); every id must be in `0..<rows`.
    public func rows(_ ids: [Int]) -> Tensor {
        var out = Tensor(uninitializedShape: [ids.count, cols])
        guard !ids.isEmpty else { return out }
        let rowPointers = parts.count == 1 ? [] : chunks(panel: 1)
        out.withUnsafeMutableBufferPointer { dst in
            for (i, id) in ids.enumerated() {
                precondition(id >= 0 && id < rows, "QuantizedMatrix.rows: row \(id) outside 0..<\(rows)")
                let c = parts.count == 1
                    ? Chunk(type: parts[0].type, base: parts[0].base + id * parts[0].rowBytes, rowBytes: parts[0].rowBytes,
                            firstRow: id, rows: 1)
                    : rowPointers[id]
                _ = ck_quant_dequantize_rows(Int32(c.type.rawValue), c.base, c.rowBytes, 1, cols, dst.baseAddress! + i * cols)
            }
        }
        return out
    }

    /// The weights as a `[rows, cols]` float tensor, bit-exact with ggml's dequantisation (``GGUFFile/tensor(_:)``).
    public func dequantized() -> Tensor {
        var out = Tensor(uninitializedShape: [rows, cols])
        if rows == 0 { return out }
        out.withUnsafeMutableBufferPointer { dst in
            let work = chunks(panel: max(1, (1 << 15) / cols))
            parallelFor(work.count) { i in
                let c = work[i]
                _ = ck_quant_dequantize_rows(Int32(c.type.rawValue), c.base, c.rowBytes, c.rows, cols,
                                             dst.baseAddress! + c.firstRow * cols)
            }
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
    /// Tensor `name` as a ``QuantizedMatrix`` reading the file's bytes in place (no copy; the matrix keeps the
    /// mapping alive), or nil unless it is a 2-D tensor of one of ``QuantizedMatrix/supportedTypes``.
    ///
    /// - Throws: ``GGUFError`` if there is no such tensor.
    public func quantizedMatrix(_ name: String) throws -> QuantizedMatrix? {
        guard let info = tensors[name] else {
            throw GGUFError(kind: .tensorNotFound, file: url, tensor: name, detail: "the file has no tensor of that name")
        }
        guard info.dimensions.count == 2, QuantizedMatrix.supportedTypes.contains(info.type) else { return nil }
        return try QuantizedMatrix(type: info.type, rows: info.dimensions[1], cols: info.dimensions[0],
                                   bytes: rawBytes(info), in: mapping)
    }

    /// Matrix `index` of the 3-D tensor `name` (shape `[count, rows, cols]`, e.g. a layer's stacked experts) as a
    /// ``QuantizedMatrix`` read in place, or nil unless its type is one of ``QuantizedMatrix/supportedTypes``.
    ///
    /// - Throws: ``GGUFError`` if there is no such tensor, it is not 3-D, or `index` is outside `0..<count`.
    public func quantizedMatrix(_ name: String, index: Int) throws -> QuantizedMatrix? {
        guard let info = tensors[name] else {
            throw GGUFError(kind: .tensorNotFound, file: url, tensor: name, detail: "the file has no tensor of that name")
        }
        guard info.dimensions.count == 3, index >= 0, index < info.dimensions[2] else {
            throw GGUFError(kind: .tensorNotFound, file: url, tensor: name,
                            detail: "matrix \(index) of a tensor of shape \(info.shape) does not exist")
        }
        guard QuantizedMatrix.supportedTypes.contains(info.type) else { return nil }
        let (rows, cols) = (info.dimensions[1], info.dimensions[0])
        let bytes = rawBytes(info)
        let size = bytes.count / info.dimensions[2]
        return try QuantizedMatrix(type: info.type, rows: rows, cols: cols,
                                   bytes: UnsafeRawBufferPointer(rebasing: bytes[(index * size)..<((index + 1) * size)]),
                                   in: mapping)
    }

    /// Lets the bytes of tensor `name` leave the resident set (see ``MappedFile/release(_:)``), after they were
    /// copied elsewhere. No effect for an unknown name or a file read into memory.
    public func releasePages(of name: String) {
        guard let info = tensors[name] else { return }
        let start = dataOffset + info.offset
        mapping.release(start..<start + info.byteCount)
    }
}
