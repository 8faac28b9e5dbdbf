// A small persistent thread pool for parallel-for. Workers spin briefly between jobs (a decode step issues a few
// hundred short parallel GEMVs per token, where waking sleeping threads through the kernel would dominate), then
// sleep on a condition variable.
//
// Job protocol: `ticket` packs (generation << 32 | next index). A worker claims index i of generation g with a CAS
// that requires the ticket's generation to still be g and i < count; fn/ctx are only read after a successful claim.
// When every index has finished (`done == count`) the caller closes the job (index := UINT32_MAX) before it may
// rewrite the fields for the next one, so a late worker can never claim an index of a stale job.
#include "ckernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define MAX_WORKERS 256
// How long an idle worker polls before sleeping. Waking a sleeping thread costs tens of microseconds to over a
// millisecond on a virtual machine whose idle vCPU halts, so workers keep polling through the short serial stretches
// between the jobs of one forward pass (as OpenBLAS and OpenMP runtimes do).
#define SPIN_NANOSECONDS 3000000L

static struct {
    pthread_mutex_t lock;          // guards sleeping workers' waits
    pthread_cond_t wake;
    pthread_mutex_t caller;        // one job at a time
    _Atomic uint64_t ticket;
    _Atomic long done;
    _Atomic int sleepers;
    ck_task_fn fn;
    void *ctx;
    _Atomic long count;
    _Atomic int workers;           // worker ids allowed in this job: 0 ..< workers
    int threads;                   // worker threads started (excluding callers)
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};

static _Thread_local int in_region = 0;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Claims and runs indices of generation `gen` until none are left.
static void drain(uint32_t gen, int worker) {
    uint64_t t = atomic_load(&pool.ticket);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen || (long)(uint32_t)t >= atomic_load_explicit(&pool.count, memory_order_relaxed)) return;
        if (!atomic_compare_exchange_weak(&pool.ticket, &t, t + 1)) continue;
        pool.fn(pool.ctx, (long)(uint32_t)t, worker);
        atomic_fetch_add(&pool.done, 1);
        t = atomic_load(&pool.ticket);
    }
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void *worker_main(void *arg) {
    int id = (int)(intptr_t)arg;
    in_region = 1;
    uint32_t seen = 0;
    for (;;) {
        uint32_t gen = (uint32_t)(atomic_load(&pool.ticket) >> 32);
        long deadline = now_ns() + SPIN_NANOSECONDS;
        for (int spin = 1; gen == seen; spin++) {
            cpu_relax();
            gen = (uint32_t)(atomic_load(&pool.ticket) >> 32);
            if ((spin & 255) == 0 && now_ns() > deadline) break;
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while ((gen = (uint32_t)(atomic_load(&pool.ticket) >> 32)) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = gen;
        if (id < atomic_load_explicit(&pool.workers, memory_order_relaxed)) drain(gen, id);
    }
    return NULL;
}

int ck_in_parallel_region(void) { return in_region; }

void ck_parallel_for(long count, int workers, ck_task_fn fn, void *ctx) {
    if (count <= 0) return;
    if (workers > MAX_WORKERS) workers = MAX_WORKERS;
    // Inline when there is nothing to share, when nested inside a parallel body, or when another thread is
    // already running a job (its workers are busy anyway).
    if (workers <= 1 || count == 1 || count >= UINT32_MAX || in_region || pthread_mutex_trylock(&pool.caller) != 0) {
        for (long i = 0; i < count; i++) fn(ctx, i, 0);
        return;
    }
    while (pool.threads < workers - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker_main, (void *)(intptr_t)(pool.threads + 1)) != 0) break;
        pthread_attr_destroy(&attr);
        pool.threads++;
    }
    pool.fn = fn;
    pool.ctx = ctx;
    atomic_store_explicit(&pool.count, count, memory_order_relaxed);
    atomic_store_explicit(&pool.workers, workers, memory_order_relaxed);
    atomic_store(&pool.done, 0);
    uint32_t gen = (uint32_t)(atomic_load(&pool.ticket) >> 32) + 1;
    atomic_store(&pool.ticket, (uint64_t)gen << 32);  // publish (seq_cst: pairs with the sleepers check below)
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    in_region = 1;
    drain(gen, 0);
    in_region = 0;
    while (atomic_load(&pool.done) < count) cpu_relax();
    // Close the job (index past any count) before the fields can be rewritten for the next one.
    atomic_store(&pool.ticket, ((uint64_t)gen << 32) | UINT32_MAX);
    pthread_mutex_unlock(&pool.caller);
}
