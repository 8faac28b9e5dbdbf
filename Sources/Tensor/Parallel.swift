import CBLAS
import Dispatch
import Foundation

/// The engine's threading policy, in one place.
///
/// OpenBLAS is kept single-threaded and the engine owns all parallelism (``parallelFor(_:_:)``): on this class of
/// machine (2-core Zen 3) OpenBLAS's own threads cost more than they give for the matrices a transformer multiplies
/// most often — `cblas_sgemm` at n = 128 runs ≈ 58 GFLOP/s on one thread but ≈ 14 GFLOP/s on two (thread wake-up on
/// every call). Large GEMMs are instead split into column panels, one single-threaded sgemm per worker; attention
/// parallelises over (batch, head, query block). `transformer-cli bench matmul` measures the policy against OpenBLAS's
/// own threading.
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

    /// OpenBLAS build description (`openblas_get_config`).
    public static var blasConfig: String { String(cString: openblas_get_config()) }
}

/// Runs `body(i)` for `i` in `0..<count` across ``Threading/workers`` threads; returns when all are done.
///
/// Iterations are handed out dynamically, so uneven work (causal attention blocks) balances. With one worker or one
/// iteration it runs inline on the caller's thread.
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    let workers = min(Threading.workers, count)
    if workers == 1 {
        for i in 0..<count { body(i) }
        return
    }
    let next = AtomicCounter()
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let i = next.increment()
                if i >= count { break }
                body(i)
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
