import CBLAS
import CKernels
import Foundation

/// Single-precision GEMM under the engine's threading policy (see ``Threading``), on the engine's own packed
/// micro-kernels (`Sources/CKernels/sgemm.c`) or on OpenBLAS, whichever wins for the shape on this CPU.
///
/// ## Which backend multiplies (the one place that decides: ``usesOwnKernel(m:n:k:transA:transB:)``)
/// OpenBLAS 0.3.21 (`DYNAMIC_ARCH`) picks its kernel table by CPU model at load time. On CPUs it does not know it
/// falls back to a generic core (a 2024 Xeon gets "Prescott", SSE3: 64 GFLOP/s at n = 1024 on 2 threads where its
/// Cooperlake table reaches 280), and on AMD Zen 4/5 the environment forces its Haswell (AVX2) table because the old
/// AVX-512 tables computed wrong results there. The rule compares what each side would run on one thread (the engine
/// splits a product into panels and runs each panel single-threaded on either backend). Measured on the project's
/// AMD EPYC Zen 5 (AVX-512; `OPENBLAS_CORETYPE` set per run in a separate process), single-thread GFLOP/s, ours ÷
/// OpenBLAS, thread CPU time, best of 30–400 runs (m×k×n; ·Wᵀ = B stored transposed, as a Linear weight):
///
/// | kernel path | OpenBLAS core | rule | measured |
/// |---|---|---|---|
/// | avx512 | generic (Prescott, Nehalem, Barcelona…) | ours | 4–6× (Prescott 40–47 GFLOP/s at every size; ours 185–250) |
/// | avx512 | Haswell / Zen (AVX2) | ours | n = 64…2048: 1.77–1.95× (ours 188–250, Haswell 106–130); 512×576×1536·Wᵀ, 512×1536×576·Wᵀ: 1.69–1.83×; 4–32 rows ·Wᵀ: 1.8–4.1× |
/// | avx512 | SkylakeX / Cooperlake | ours, except B not transposed below 100³ multiply-adds | n = 128…1024: 1.01–1.08×, 2048: 0.96×, 64: 0.86×; LLM shapes 0.94–1.03×; 64×64×64·Wᵀ 1.14×; 4–32 rows ·Wᵀ: 1.3–3.9× |
/// | avx2 | generic | ours | ≈ 2.1–2.5× Prescott |
/// | avx2 | Haswell / Zen / AVX-512 | OpenBLAS | ours 0.81–0.98× Haswell |
/// | portable | any | OpenBLAS | ours 0.3–0.5× even of Prescott |
///
/// (SkylakeX and Cooperlake compute correctly on this Zen 5: sampled error ≤ 1e-7 relative. A generic core is
/// replaced at start-up when `OPENBLAS_CORETYPE` is not set — see ``CPU/blasCoreSwitch`` — so the generic rows apply
/// when that switch is off, fails its self-check, or the user pinned a generic core.)
///
/// A debug build compiles the C kernels at -O0 (unless `-Xcc -O2`, as `scripts/test.sh` does): the rule then
/// always picks OpenBLAS.
///
/// `TRANSFORMER_GEMM=own|blas` (or ``backend``) forces one backend for every product, the m = 1 matrix-vector
/// cases included, for tests and benchmarks; `auto` (the default) applies the rule.
public enum GEMM {
    /// The implementation that runs a product.
    public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
        /// The measured rule of ``usesOwnKernel(m:n:k:transA:transB:)``.
        case auto
        /// The engine's C kernels for every product (`ck_sgemm`, `ck_gemv`).
        case own
        /// OpenBLAS for every product (`cblas_sgemm`, `cblas_sgemv`).
        case blas
        public var description: String { rawValue }
    }

    /// The backend in force: `TRANSFORMER_GEMM=auto|own|blas` at start-up (anything else means `auto`), or assigned
    /// (set it before starting work, as with ``Threading/workers``).
    public static var backend: Backend {
        get { _backend }
        set { _backend = newValue }
    }

    nonisolated(unsafe) private static var _backend: Backend = {
        ProcessInfo.processInfo.environment["TRANSFORMER_GEMM"].flatMap { Backend(rawValue: $0.lowercased()) } ?? .auto
    }()

    /// Runs `body` with ``backend`` set to `backend`, then restores the previous one.
    public static func withBackend<R>(_ backend: Backend, _ body: () throws -> R) rethrows -> R {
        let saved = _backend
        _backend = backend
        defer { _backend = saved }
        return try body()
    }

    /// How the OpenBLAS kernel table in use compares with what the engine's own kernels can do.
    enum BLASCoreClass { case avx512, avx2, generic }

    /// The class of OpenBLAS's core (`openblas_get_corename`), read once: AVX-512 tables, AVX2 tables, or a generic
    /// one (Prescott, Nehalem, Core2, Sandybridge, Atom, Katmai, Barcelona, Bulldozer…: SSE or AVX1 kernels).
    static let blasCoreClass: BLASCoreClass = {
        switch CPU.blasCore.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return .avx512
        case "haswell", "zen": return .avx2
        default: return .generic
        }
    }()

    static let kernelsOptimized = CPU.kernelsOptimized

    /// True when ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` runs this shape on the engine's own
    /// kernel (`ck_sgemm`) under the current ``backend`` and ``CPU/kernelPath``; false for OpenBLAS.
    public static func usesOwnKernel(m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) -> Bool {
        switch _backend {
        case .own: return true
        case .blas: return false
        case .auto:
            guard kernelsOptimized else { return false }  // a debug build's -O0 C: OpenBLAS is always optimised
            switch (CPU.kernelPath, blasCoreClass) {
            case (.avx512, .generic), (.avx512, .avx2): return true
            case (.avx512, .avx512): return transB || m * n * k >= 100 * 100 * 100
            case (.avx2, .generic): return true
            case (.avx2, _), (.portable, _): return false
            }
        }
    }

    /// C[M×N] = alpha · op(A)·op(B) + beta · C, row-major, on the calling thread (OpenBLAS single-threaded).
    ///
    /// `lda`, `ldb`, `ldc` are row strides in elements, so sub-blocks of larger matrices (one head of a
    /// `[tokens, heads, dim]` tensor, a tile of K) multiply in place without copies. beta = 0 never reads C.
    public static func sgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        Threading.ensureBLASPolicy()
        guard m > 0, n > 0 else { return }
        if k == 0 {  // C = beta·C, explicitly (beta = 0 must not read C)
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        let backend = _backend
        if m == 1 && !transA && transB && alpha == 1 && backend != .blas {
            // One row against [n, k] weights (a decode step's Linear): the engine's streaming GEMV kernel.
            ck_gemv(b, ldb, a, k, c, n, beta)
            return
        }
        if usesOwnKernel(m: m, n: n, k: k, transA: transA, transB: transB),
           ck_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0 {
            return
        }
        if m == 1 && !transA {
            // One row: a matrix-vector product. sgemv streams B once; sgemm would first pack all of it.
            cblas_sgemv(CblasRowMajor, transB ? CblasNoTrans : CblasTrans, Int32(transB ? n : k), Int32(transB ? k : n),
                        alpha, b, Int32(ldb), a, 1, beta, c, 1)
            return
        }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Below this many multiply-adds a GEMM runs on one thread: splitting costs more than it gains.
    public static let parallelThreshold = 96 * 96 * 96
    /// The same product as ``sgemm(transA:transB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` on all
    /// ``Threading/workers``: small products run inline; larger ones split C into column (or row) panels, one
    /// single-threaded sgemm per worker. Inside a ``parallelFor(_:_:)`` body it always runs single-threaded.
    public static func parallelSgemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let workers = Threading.workers
        let work = m * n * k
        // Matrix-vector-like products are bound by memory bandwidth, which two cores double: split them earlier.
        let threshold = m <= 4 ? 64 * 1024 : parallelThreshold
        guard workers > 1, work >= threshold, !Threading.isInsideParallelRegion else {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: c, ldc: ldc)
            return
        }
        // Split the longer side of C into `workers` panels, each a multiple of the micro-tile (16 for OpenBLAS; our
        // kernel's register block otherwise, so only the last panel has an edge).
        let splitColumns = n >= m
        let extent = splitColumns ? n : m
        let own = usesOwnKernel(m: m, n: n, k: k, transA: transA, transB: transB)
        let unit = !own ? 16 : splitColumns ? Int(ck_sgemm_block_width()) : Int(ck_sgemm_block_height())
        let panel = ((extent + workers - 1) / workers + unit - 1) / unit * unit
        let panels = (extent + panel - 1) / panel
        parallelFor(panels) { p in
            let start = p * panel
            let len = min(panel, extent - start)
            if splitColumns {
                // Columns [start, start+len) of C use columns of op(B): rows of B when transposed.
                let bOff = transB ? start * ldb : start
                sgemm(transA: transA, transB: transB, m: m, n: len, k: k, alpha: alpha, a: a, lda: lda,
                      b: b + bOff, ldb: ldb, beta: beta, c: c + start, ldc: ldc)
            } else {
                let aOff = transA ? start : start * lda
                sgemm(transA: transA, transB: transB, m: len, n: n, k: k, alpha: alpha, a: a + aOff, lda: lda,
                      b: b, ldb: ldb, beta: beta, c: c + start * ldc, ldc: ldc)
            }
        }
    }
}

extension Tensor {
    /// Matrix product over the last two axes, with leading (batch) axes.
    ///
    /// `a` is `[..., M, K]` (`[..., K, M]` when `transposeA`), `b` is `[..., K, N]` (`[..., N, K]` when
    /// `transposeB`); transposition is passed to sgemm, no copy is made. Batch axes must be equal, or one operand
    /// is a plain matrix shared by every batch entry. Result `[..., M, N]`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank ≥ 2 operands, got \(a.shape) and \(b.shape)")
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        precondition(k == k2, "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
        let batch: [Int]
        if aBatch == bBatch || bBatch.isEmpty { batch = aBatch } else if aBatch.isEmpty { batch = bBatch } else {
            preconditionFailure("matmul batch axes differ: \(a.shape) · \(b.shape)")
        }
        let batchCount = batch.reduce(1, *)
        var out = Tensor(uninitializedShape: batch + [m, n])
        let lda = ac, ldb = bc
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                out.withUnsafeMutableBufferPointer { pc in
                    let A = pa.baseAddress!, B = pb.baseAddress!, C = pc.baseAddress!
                    if bBatch.isEmpty && !transposeA {
                        // All batches share B: fold the batch into M, one big GEMM.
                        GEMM.parallelSgemm(transA: false, transB: transposeB, m: batchCount * m, n: n, k: k,
                                           a: A, lda: lda, b: B, ldb: ldb, c: C, ldc: n)
                        return
                    }
                    let aStride = aBatch.isEmpty ? 0 : ar * ac
                    let bStride = bBatch.isEmpty ? 0 : br * bc
                    let one = { (i: Int, parallel: Bool) in
                        let f = parallel ? GEMM.parallelSgemm : GEMM.sgemm
                        f(transposeA, transposeB, m, n, k, 1, A + i * aStride, lda, B + i * bStride, ldb, 0,
                          C + i * m * n, n)
                    }
                    if batchCount >= Threading.workers {
                        parallelFor(batchCount) { one($0, false) }
                    } else {
                        for i in 0..<batchCount { one(i, true) }
                    }
                }
            }
        }
        return out
    }

    /// `self · other` (see ``matmul(_:_:transposeA:transposeB:)``).
    public func matmul(_ other: Tensor, transposeOther: Bool = false) -> Tensor {
        Tensor.matmul(self, other, transposeB: transposeOther)
    }

    /// Linear layer: `x · weightᵀ + bias` with `weight` stored `[out, in]` as Hugging Face stores it.
    /// `self` is `[..., in]`; result `[..., out]`.
    public func linear(weight: Tensor, bias: Tensor? = nil) -> Tensor {
        precondition(weight.rank == 2, "linear weight must be [out, in], got \(weight.shape)")
        precondition(rank >= 1 && shape[rank - 1] == weight.shape[1],
                     "linear input \(shape) does not match weight [out, in] = \(weight.shape)")
        let (outF, inF) = (weight.shape[0], weight.shape[1])
        let rows = count / Swift.max(inF, 1)
        var out = Tensor(uninitializedShape: Array(shape.dropLast()) + [outF])
        if let bias {
            precondition(bias.shape == [outF], "linear bias must be [\(outF)], got \(bias.shape)")
            out.withUnsafeMutableBufferPointer { o in
                bias.withUnsafeBufferPointer { b in for r in 0..<rows { (o.baseAddress! + r * outF).update(from: b.baseAddress!, count: outF) } }
            }
        }
        withUnsafeBufferPointer { x in
            weight.withUnsafeBufferPointer { w in
                out.withUnsafeMutableBufferPointer { o in
                    GEMM.parallelSgemm(transA: false, transB: true, m: rows, n: outF, k: inF, a: x.baseAddress!,
                                       lda: inF, b: w.baseAddress!, ldb: inF, beta: bias == nil ? 0 : 1,
                                       c: o.baseAddress!, ldc: outF)
                }
            }
        }
        return out
    }

    /// Embedding lookup: rows `ids` of a `[vocab, dim]` table, giving `[ids.count, dim]`.
    public func embedding(_ ids: [Int]) -> Tensor {
        precondition(rank == 2, "embedding table must be [vocab, dim], got \(shape)")
        let (vocab, dim) = (shape[0], shape[1])
        var out = Tensor(uninitializedShape: [ids.count, dim])
        withUnsafeBufferPointer { w in
            out.withUnsafeMutableBufferPointer { o in
                for (r, id) in ids.enumerated() {
                    precondition(id >= 0 && id < vocab, "token id \(id) outside vocabulary of \(vocab)")
                    (o.baseAddress! + r * dim).update(from: w.baseAddress! + id * dim, count: dim)
                }
            }
        }
        return out
    }
}
