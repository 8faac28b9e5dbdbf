import ArgumentParser
import CBLAS
import Transformer

/// Tensor matmul (engine threading policy) against raw `cblas_sgemm` with OpenBLAS's own default threading.
struct MatmulBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "matmul",
        abstract: "GFLOP/s of Tensor.matmul vs raw cblas_sgemm (OpenBLAS threading), and batched per-head GEMMs.")

    @Option(help: "Square sizes to measure.") var sizes: [Int] = [64, 128, 256, 512, 1024, 2048]
    @Option(help: "Timed runs per case (best is reported).") var repeats = 7
    @Option(help: "Write the rows as JSON to this path.") var json: String?

    func validate() throws {
        try requireInRange("--sizes", sizes, 1...16384)
        try requireInRange("--repeats", [repeats], 1...1000)
    }

    func run() throws {
        let blasThreads = Threading.workers
        print("matmul: Tensor.matmul (OpenBLAS 1 thread, engine splits across \(Threading.workers) workers) vs raw cblas_sgemm (OpenBLAS \(blasThreads) threads)")
        var report = Report(columns: ["case", "ours_ms", "ours_gflops", "raw_ms", "raw_gflops", "ratio"])
        print(report.header())
        for n in sizes {
            let a = Tensor.randomNormal([n, n], seed: 1), b = Tensor.randomNormal([n, n], seed: 2)
            var c = Tensor.zeros([n, n])
            let reps = n >= 1024 ? max(3, repeats / 2) : repeats * (n <= 128 ? 20 : 1)
            let ours = bestTime(repeats: reps) { _ = Tensor.matmul(a, b) }
            let raw = Threading.withBLASThreads(blasThreads) {
                bestTime(repeats: reps) {
                    a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1,
                                    pa.baseAddress, Int32(n), pb.baseAddress, Int32(n), 0, pc.baseAddress, Int32(n))
                    } } }
                }
            }
            let flops = 2.0 * Double(n * n * n)
            report.add(["case": .string("\(n)x\(n)x\(n)"), "n": .int(n), "ours_ms": .num(ours * 1e3, 3),
                        "ours_gflops": .num(flops / ours / 1e9, 1), "raw_ms": .num(raw * 1e3, 3),
                        "raw_gflops": .num(flops / raw / 1e9, 1), "ratio": .num(raw / ours, 2)])
        }
        // Per-head attention-shaped batch: 8 × [256×64]·[64×256].
        let (batch, m, k) = (8, 256, 64)
        let q = Tensor.randomNormal([batch, m, k], seed: 3), kt = Tensor.randomNormal([batch, k, m], seed: 4)
        var out = Tensor.zeros([batch, m, m])
        let ours = bestTime(repeats: repeats * 10) { _ = Tensor.matmul(q, kt) }
        let loop = Threading.withBLASThreads(blasThreads) {
            bestTime(repeats: repeats * 10) {
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
        report.add(["case": .string("batched 8x[256x64]x[64x256]"), "ours_ms": .num(ours * 1e3, 3),
                    "ours_gflops": .num(flops / ours / 1e9, 1), "raw_ms": .num(loop * 1e3, 3),
                    "raw_gflops": .num(flops / loop / 1e9, 1), "ratio": .num(loop / ours, 2)])
        // Decode-step GEMV: one token through a [49152 × 576] vocabulary projection (memory-bound: GB/s matters).
        for (rows, cols) in [(49152, 576), (3072, 576), (576, 1536)] {
            let w = Tensor.randomNormal([rows, cols], seed: 5), x = Tensor.randomNormal([1, cols], seed: 6)
            var y = Tensor.zeros([rows])
            let reps = rows > 10000 ? repeats * 3 : repeats * 100
            let ours = bestTime(repeats: reps) { _ = x.linear(weight: w) }
            let raw = Threading.withBLASThreads(blasThreads) {
                bestTime(repeats: reps) {
                    w.withUnsafeBufferPointer { pw in x.withUnsafeBufferPointer { px in y.withUnsafeMutableBufferPointer { py in
                        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(cols), 1, pw.baseAddress, Int32(cols),
                                    px.baseAddress, 1, 0, py.baseAddress, 1)
                    } } }
                }
            }
            let bytes = Double(rows * cols * 4)
            report.add(["case": .string("gemv \(rows)x\(cols) (GB/s)"), "ours_ms": .num(ours * 1e3, 3),
                        "ours_gflops": .num(bytes / ours / 1e9, 1), "raw_ms": .num(raw * 1e3, 3),
                        "raw_gflops": .num(bytes / raw / 1e9, 1), "ratio": .num(raw / ours, 2)])
        }
        try report.write(json: json, benchmark: "matmul", extra: ["workers": .int(Threading.workers),
                                                                  "openblas": .string(Threading.blasConfig)])
    }
}
