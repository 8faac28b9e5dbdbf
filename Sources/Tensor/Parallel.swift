import CBLAS
import CKernels
import Foundation

/// The engine's threading policy, in one place.
///
/// OpenBLAS always runs single-threaded; the engine owns all parallelism through ``parallelFor(_:_:)`` and its
/// persistent pool. Attention parallelises over (batch, kv head, query block), batched per-head GEMMs over the batch,
/// and a lone GEMM (or GEMV) is split into column panels, one single-threaded sgemm per worker. Measured on the
/// 2-core machine this project targets (`transformer-cli bench matmul`): the split matches OpenBLAS's own two
/// threads from n = 256 up (0.95–1.07×) and doubles it at n = 128; and mixing the two pools was slower, because
/// OpenBLAS's idle threads keep spinning for a while after every threaded call and fight the engine's workers
/// (SmolLM2 prefill of 512 tokens: ≈ 850–940 tok/s with OpenBLAS threads for the large GEMMs, ≈ 960–980 without).
public enum Threading {
    /// Worker count used by ``parallelFor(_:_:)``: `TRANSFORMER_THREADS` if set, else the active processor count.
    /// Assign it (the CLI's `--threads N`) before starting work; values below 1 become 1.
    public static var workers: Int {
        get { _workers }
        set { _workers = max(1, newValue) }
    }

    nonisolated(unsafe) private static var _workers: Int = {
        if let s = ProcessInfo.processInfo.environment["TRANSFORMER_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Puts OpenBLAS in single-threaded mode once per process (idempotent, cheap after the first call).
    @inlinable
    public static func ensureBLASPolicy() { _ = blasPolicyApplied }

    @usableFromInline
    static let blasPolicyApplied: Bool = {
        openblas_set_num_threads(1)
        _ = CPU.blasCoreSwitch  // a generic OpenBLAS core is replaced before first use (see CPU.blasCoreSwitch)
        return true
    }()

    /// Runs `body` with OpenBLAS allowed `threads` threads (for benchmark baselines), then restores single-threading.
    public static func withBLASThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        ensureBLASPolicy()
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        return try body()
    }

    /// True on a thread that is running a ``parallelFor(_:_:)`` body (nested GEMMs then stay single-threaded).
    public static var isInsideParallelRegion: Bool { ck_in_parallel_region() != 0 }

    /// OpenBLAS build description (`openblas_get_config`).
    public static var blasConfig: String { String(cString: openblas_get_config()) }
}

/// Runs `body(i)` for `i` in `0..<count` across ``Threading/workers`` threads; returns when all are done.
///
/// Iterations are handed out dynamically, so uneven work (causal attention blocks) balances. With one worker or one
/// iteration it runs inline on the caller's thread.
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    parallelFor(count) { (_: Int, i: Int) in body(i) }
}

/// Like ``parallelFor(_:_:)``, but `body(worker, i)` also receives the index of the worker running it
/// (`0..<min(Threading.workers, count)`), so per-worker scratch buffers can be allocated once up front.
///
/// Runs on a persistent pool (`Sources/CKernels/parallel.c`) whose threads poll briefly between jobs and then sleep:
/// a decode step issues hundreds of short parallel GEMVs per token, where waking threads through the kernel each
/// time would cost more than the work. Calls from inside a body run inline on the calling worker.
public func parallelFor(_ count: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
    guard count > 0 else { return }
    let workers = min(Threading.workers, count)
    if workers == 1 || count == 1 {
        for i in 0..<count { body(0, i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        var box = body
        withUnsafeMutablePointer(to: &box) { ctx in
            ck_parallel_for(count, Int32(workers), { ctx, index, worker in
                ctx!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(worker), index)
            }, ctx)
        }
    }
}
