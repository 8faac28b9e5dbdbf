import CBLAS
import Dispatch
import Foundation

/// The engine's threading policy, in one place.
///
/// OpenBLAS runs single-threaded by default and the engine owns the parallelism (``parallelFor(_:_:)``): attention
/// parallelises over (batch, head, query block) and batched per-head GEMMs over the batch, each worker calling a
/// single-threaded sgemm. The reason is the small-matrix trap: OpenBLAS wakes its threads on every call, which at
/// the sizes of attention tiles and per-head products (n ≈ 64–256) can cost more than the product (the team's guide
/// measured n = 128 at ≈ 14 GFLOP/s on two threads vs ≈ 58 on one). Only a lone large GEMM (≥ 256³ multiply-adds,
/// outside any parallel region) is handed to OpenBLAS's own threads, which share packed panels between cores;
/// medium and short-and-wide GEMMs are split into column panels across workers. `transformer-cli bench matmul`
/// measures the policy against raw OpenBLAS threading.
public enum Threading {
    /// Worker count used by ``parallelFor(_:_:)``: `TRANSFORMER_THREADS` if set, else the active processor count.
    public static let workers: Int = {
        if let s = ProcessInfo.processInfo.environment["TRANSFORMER_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Puts OpenBLAS in single-threaded mode once per process (idempotent, cheap after the first call).
    @inlinable
    public static func ensureBLASPolicy() { _ = blasPolicyApplied }

    @usableFromInline
    static let blasPolicyApplied: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// Runs `body` with OpenBLAS allowed `threads` threads (for baselines), then restores the engine's policy.
    public static func withBLASThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        ensureBLASPolicy()
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        return try body()
    }

    /// True on a thread that is running a ``parallelFor(_:_:)`` body (nested GEMMs then stay single-threaded).
    public static var isInsideParallelRegion: Bool { parallelDepth.value > 0 }

    static let parallelDepth = ThreadLocalCounter()

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
public func parallelFor(_ count: Int, _ body: (_ worker: Int, _ index: Int) -> Void) {
    guard count > 0 else { return }
    let workers = min(Threading.workers, count)
    if workers == 1 {
        for i in 0..<count { body(0, i) }
        return
    }
    let next = AtomicCounter()
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            Threading.parallelDepth.value += 1
            defer { Threading.parallelDepth.value -= 1 }
            while true {
                let i = next.increment()
                if i >= count { break }
                body(worker, i)
            }
        }
    }
}

/// Minimal atomic counter (a lock-protected integer; contention is one increment per work item).
final class AtomicCounter: @unchecked Sendable {
    private var value = 0
    private var lock = pthread_mutex_t()
    init() { pthread_mutex_init(&lock, nil) }
    deinit { pthread_mutex_destroy(&lock) }
    /// Returns the old value and adds one.
    func increment() -> Int {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        let v = value
        value += 1
        return v
    }
}

/// A per-thread integer (pthread key), used to mark threads inside parallel regions.
final class ThreadLocalCounter: @unchecked Sendable {
    private var key = pthread_key_t()
    init() { pthread_key_create(&key, nil) }
    var value: Int {
        get { Int(bitPattern: pthread_getspecific(key)) }
        set { pthread_setspecific(key, UnsafeRawPointer(bitPattern: newValue)) }
    }
}
