import ArgumentParser
import CBLAS
import Foundation
import Transformer

/// One GEMM shape of the matmul benchmark: C[m×n] = A[m×k] · op(B), B stored `[n, k]` when `transB` (a Linear
/// layer's weight, as models multiply) or `[k, n]` otherwise.
struct GemmCase {
    var m: Int, k: Int, n: Int, transB: Bool
    var name: String { "\(m)x\(k)x\(n)\(transB ? "·Wᵀ" : "")" }
    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
    /// `m,k,n,t|n` — how a case travels to the child process.
    var token: String { "\(m),\(k),\(n),\(transB ? "t" : "n")" }
    init(m: Int, k: Int, n: Int, transB: Bool) { (self.m, self.k, self.n, self.transB) = (m, k, n, transB) }
    init?(token: String) {
        let p = token.split(separator: ",")
        guard p.count == 4, let m = Int(p[0]), let k = Int(p[1]), let n = Int(p[2]), m > 0, k > 0, n > 0,
              p[3] == "t" || p[3] == "n" else { return nil }
        self.init(m: m, k: k, n: n, transB: p[3] == "t")
    }
}

/// The inputs of one case (seeded), and raw `cblas_sgemm` on them with OpenBLAS's own threading.
struct GemmOperands {
    let c: GemmCase
    let a: Tensor, b: Tensor
    var out: Tensor

    init(_ c: GemmCase) {
        self.c = c
        a = Tensor.randomNormal([c.m, c.k], seed: 1)
        b = Tensor.randomNormal(c.transB ? [c.n, c.k] : [c.k, c.n], seed: 2)
        out = Tensor.zeros([c.m, c.n])
    }

    /// Tensor matmul under the engine's routing and threading.
    func tensorMatmul() -> Tensor { Tensor.matmul(a, b, transposeB: c.transB) }

    /// Raw `cblas_sgemm` (whatever threads OpenBLAS is currently allowed).
    mutating func rawSgemm() {
        let c = self.c
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
            cblas_sgemm(CblasRowMajor, CblasNoTrans, c.transB ? CblasTrans : CblasNoTrans, Int32(c.m), Int32(c.n),
                        Int32(c.k), 1, pa.baseAddress, Int32(c.k), pb.baseAddress, Int32(c.transB ? c.k : c.n), 0,
                        pc.baseAddress, Int32(c.n))
        } } }
    }

    /// Largest |C − ref| / Σ|a·b| over a sample of entries, the reference in float64.
    func sampledError(_ result: Tensor) -> Double {
        let c = self.c
        var worst = 0.0
        a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in result.withUnsafeBufferPointer { pc in
            for s in 0..<64 {
                let i = (s * 7919) % c.m, j = (s * 104_729) % c.n
                var sum = 0.0, mag = 0.0
                for p in 0..<c.k {
                    let x = Double(pa[i * c.k + p]), y = Double(c.transB ? pb[j * c.k + p] : pb[p * c.n + j])
                    sum += x * y
                    mag += abs(x * y)
                }
                let e = abs(Double(pc[i * c.n + j]) - sum) / max(mag, 1e-30)
                worst = e.isNaN ? .infinity : max(worst, e)
            }
        } } }
        return worst
    }

    /// Repeats for a best-of timing: more for small shapes.
    var repeats: Int { c.flops < 1e8 ? 60 : c.flops < 2e9 ? 12 : 4 }
}

/// `transformer-cli bench matmul`: the engine's GEMM against OpenBLAS, with the OpenBLAS kernel table the CPU could
/// use as the ceiling.
///
/// Columns per shape and thread count: `ours` (Tensor.matmul, routed by `GEMM.usesOwnKernel`), `own` (the engine's
/// kernel forced, `TRANSFORMER_GEMM=own`), `blas` (raw `cblas_sgemm` with the OpenBLAS core this process runs, its
/// own threads) and `best` (raw `cblas_sgemm` in a child process with `OPENBLAS_CORETYPE` set to the best table this
/// CPU supports — the only place the engine sets that variable, and only in the child's environment).
struct MatmulBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matmul",
        abstract: "GFLOP/s of Tensor.matmul (routed), our kernel, raw cblas_sgemm, and the best OpenBLAS table.")

    @Option(parsing: .upToNextOption, help: "Square sizes to measure.") var sizes: [Int] = [64, 128, 256, 512, 1024, 2048]
    @Option(help: "Thread counts, comma-separated (engine workers and OpenBLAS threads alike).")
    var threads: String = "2"
    @Option(help: "Rounds over all columns (best of all rounds is reported).") var rounds = 2
    @Option(name: .customLong("baseline-core"),
            help: "OpenBLAS core for the 'best' column (default: the best table this CPU supports; 'none' skips it).")
    var baselineCore: String?
    @Flag(help: "Only the GEMM table (skip the batched and GEMV rows).") var gemmOnly = false
    @Flag(inversion: .prefixedNo, help: "Include the LLM shapes 512×576×1536, 512×1536×576 and 1×576×49152.")
    var llmShapes = true
    @Option(help: "Write the rows as JSON to this path.") var json: String?

    static let llmShapes = [GemmCase(m: 512, k: 576, n: 1536, transB: true), GemmCase(m: 512, k: 1536, n: 576, transB: true),
                            GemmCase(m: 1, k: 576, n: 49152, transB: true)]

    func validate() throws {
        try requireInRange("--sizes", sizes, 1...16384)
        try requireInRange("--rounds", [rounds], 1...1000)
    }

    func run() throws {
        let threadCounts = try ThreadList.parse(threads)
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
        for s in sizes where s <= 0 { throw ValidationError("--sizes must be positive, got \(s)") }
        let best = baselineCore ?? Self.bestCore()
        let child = best.lowercased() == "none" ? nil : best
        print(CPU.summary)
        print("matmul: shape m×k×n (·Wᵀ: B stored [n, k] as a Linear weight); GFLOP/s best of \(rounds) rounds;"
              + " ours = Tensor.matmul (engine threads), own = our kernel forced, blas = raw cblas_sgemm on core"
              + " \(CPU.blasCore), best = raw cblas_sgemm with OPENBLAS_CORETYPE=\(child ?? "-") in a child process")
        var report = Report(columns: ["case", "threads", "ours_gflops", "own_gflops", "blas_gflops", "best_gflops",
                                      "ours/blas", "ours/best", "route", "best_err"])
        report.widths = ["case": 22, "threads": 7, "route": 5, "best_err": 8]
        print(report.header())
        let cases = sizes.map { GemmCase(m: $0, k: $0, n: $0, transB: false) } + (llmShapes ? Self.llmShapes : [])
        var oursByThreads: [String: [Int: Double]] = [:]
        for t in threadCounts {
            Threading.workers = t
            for c in cases {
                var ops = GemmOperands(c)
                let reps = ops.repeats
                var ours = Double.infinity, own = Double.infinity, raw = Double.infinity, base = Double.infinity
                var baseError = 0.0
                for _ in 0..<rounds {
                    ours = min(ours, bestTime(repeats: reps) { _ = ops.tensorMatmul() })
                    own = min(own, GEMM.withBackend(.own) { bestTime(repeats: reps) { _ = ops.tensorMatmul() } })
                    raw = min(raw, Threading.withBLASThreads(t) { bestTime(repeats: reps) { ops.rawSgemm() } })
                    if let child {
                        let r = try Self.runChild(core: child, case: c, threads: t, repeats: reps)
                        base = min(base, r.seconds)
                        baseError = max(baseError, r.error)
                    }
                }
                let routeOwn = GEMM.usesOwnKernel(m: c.m, n: c.n, k: c.k, transB: c.transB)
                let oursError = ops.sampledError(ops.tensorMatmul())
                if oursError > 1e-5 { stderrPrint("warning: \(c.name): Tensor.matmul error \(oursError) vs float64") }
                oursByThreads[c.name, default: [:]][t] = c.flops / ours / 1e9
                report.add(["case": .string(c.name), "m": .int(c.m), "k": .int(c.k), "n": .int(c.n), "threads": .int(t),
                            "ours_gflops": .num(c.flops / ours / 1e9, 1), "own_gflops": .num(c.flops / own / 1e9, 1),
                            "blas_gflops": .num(c.flops / raw / 1e9, 1),
                            "best_gflops": child == nil ? .string("-") : .num(c.flops / base / 1e9, 1),
                            "ours/blas": .num(raw / ours, 2),
                            "ours/best": child == nil ? .string("-") : .num(base / ours, 2),
                            "route": .string(routeOwn ? "own" : "blas"),
                            "best_err": child == nil ? .string("-") : .string(String(format: "%.0e", baseError))])
                if baseError > 1e-5 {
                    stderrPrint("warning: OpenBLAS core \(child ?? "") computes wrong results here (error \(baseError))")
                }
            }
        }
        if threadCounts.count > 1 {
            let t0 = threadCounts[0]
            print("scaling of ours (GFLOP/s relative to \(t0) thread\(t0 == 1 ? "" : "s")):")
            for c in cases {
                let row = threadCounts.map { t in String(format: "%d: %.2f×", t, (oursByThreads[c.name]?[t] ?? 0) / (oursByThreads[c.name]?[t0] ?? 1)) }
                print("  \(c.name.padding(toLength: 22, withPad: " ", startingAt: 0)) " + row.joined(separator: "  "))
            }
        }
        if !gemmOnly { otherRows(&report, threads: threadCounts.last ?? 2) }
        try report.write(json: json, benchmark: "matmul", extra: [
            "threads": .array(threadCounts.map { .int($0) }), "openblas": .string(Threading.blasConfig),
            "openblas_core": .string(CPU.blasCore), "best_core": .string(child ?? "none"), "cpu": .string(CPU.summary)])
    }

    /// Batched per-head GEMMs and decode-step GEMVs: Tensor ops against raw OpenBLAS with `threads` threads.
    func otherRows(_ report: inout Report, threads: Int) {
        Threading.workers = threads
        // Per-head attention-shaped batch: 8 × [256×64]·[64×256].
        let (batch, m, k) = (8, 256, 64)
        let q = Tensor.randomNormal([batch, m, k], seed: 3), kt = Tensor.randomNormal([batch, k, m], seed: 4)
        var out = Tensor.zeros([batch, m, m])
        let reps = 60
        let ours = bestTime(repeats: reps) { _ = Tensor.matmul(q, kt) }
        let loop = Threading.withBLASThreads(threads) {
            bestTime(repeats: reps) {
                q.withUnsafeBufferPointer { pa in kt.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
                    for i in 0..<batch {
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(m), Int32(k), 1,
                                    pa.baseAddress! + i * m * k, Int32(k), pb.baseAddress! + i * k * m, Int32(m), 0,
                                    pc.baseAddress! + i * m * m, Int32(m))
                    }
                } } }
            }
        }
        let flops = 2.0 * Double(batch * m * m * k)
        report.add(["case": .string("batched 8x[256x64]x[64x256]"), "threads": .int(threads),
                    "ours_gflops": .num(flops / ours / 1e9, 1), "blas_gflops": .num(flops / loop / 1e9, 1),
                    "ours/blas": .num(loop / ours, 2)])
        // Decode-step GEMV: one token through a [rows × cols] weight (memory-bound: the columns are GB/s).
        for (rows, cols) in [(49152, 576), (3072, 576), (576, 1536)] {
            let w = Tensor.randomNormal([rows, cols], seed: 5), x = Tensor.randomNormal([1, cols], seed: 6)
            var y = Tensor.zeros([rows])
            let reps = rows > 10000 ? 20 : 300
            let ours = bestTime(repeats: reps) { _ = x.linear(weight: w) }
            let raw = Threading.withBLASThreads(threads) {
                bestTime(repeats: reps) {
                    w.withUnsafeBufferPointer { pw in x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { py in
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(cols), 1, pw.baseAddress, Int32(cols),
                                    px.baseAddress, 1, 0, py.baseAddress, 1)
                    } } }
                }
            }
            let bytes = Double(rows * cols * 4)
            report.add(["case": .string("gemv \(rows)x\(cols) (GB/s)"), "threads": .int(threads),
                        "ours_gflops": .num(bytes / ours / 1e9, 1), "blas_gflops": .num(bytes / raw / 1e9, 1),
                        "ours/blas": .num(raw / ours, 2)])
        }
    }

    /// The best OpenBLAS 0.3.21 kernel table for this CPU's features (what DYNAMIC_ARCH would pick if it knew the
    /// model): Cooperlake with AVX-512 BF16, SkylakeX with AVX-512, Haswell with AVX2, else Sandybridge / Prescott.
    static func bestCore() -> String {
        let f = Set(CPU.features)
        if f.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) {
            return f.contains("avx512_bf16") ? "Cooperlake" : "SkylakeX"
        }
        if f.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return f.contains("avx") ? "Sandybridge" : "Prescott"
    }

    /// Runs `bench matmul-blas-child` with `OPENBLAS_CORETYPE=core`; returns its best time and sampled error.
    static func runChild(core: String, case c: GemmCase, threads: Int, repeats: Int) throws -> (seconds: Double, error: Double) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        if !FileManager.default.fileExists(atPath: "/proc/self/exe") {
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        }
        process.arguments = ["bench", "matmul-blas-child", "--case", c.token, "--threads", String(threads),
                             "--repeats", String(repeats)]
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = core
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0,
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("result ") }) else {
            throw ValidationError("the OpenBLAS baseline child (core \(core)) failed: status \(process.terminationStatus), output \(text)")
        }
        let fields = line.split(separator: " ")
        guard fields.count >= 4, let seconds = Double(fields[2]), let error = Double(fields[3]) else {
            throw ValidationError("unreadable baseline child output: \(line)")
        }
        if fields[1].lowercased() != core.lowercased() {
            stderrPrint("note: OPENBLAS_CORETYPE=\(core) gave core \(fields[1]) in the child")
        }
        return (seconds, error)
    }
}

/// Hidden: `bench matmul-blas-child --case m,k,n,t --threads T --repeats R` times raw `cblas_sgemm` in this process
/// (started by `bench matmul` with `OPENBLAS_CORETYPE` set) and prints `result CORE SECONDS ERROR`.
struct MatmulBLASChild: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "matmul-blas-child", shouldDisplay: false)

    @Option var `case`: String
    @Option var threads = 1
    @Option var repeats = 5

    func run() throws {
        guard let c = GemmCase(token: `case`) else { throw ValidationError("--case wants m,k,n,t|n, got \(`case`)") }
        var ops = GemmOperands(c)
        let t = max(1, threads)
        let seconds = Threading.withBLASThreads(t) { bestTime(repeats: max(1, repeats)) { ops.rawSgemm() } }
        let error = ops.sampledError(ops.out)
        print("result \(CPU.blasCore) \(seconds) \(error)")
    }
}
