import ArgumentParser
import Foundation
import Transformer

/// FlashAttention vs the materialised reference (and variants), timed in the same run.
struct AttentionBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attention",
        abstract: "FlashAttention vs materialised attention: ms, GFLOP/s, speed-up, extra memory.",
        discussion: "With no shape flags: the standard sweep (N 512…8192, H 8, D 64/128, causal and not), the "
            + "sliding-window growth, sigmoid vs softmax and the MHA/GQA/MQA decode shape.")

    @Option(help: "Sequence length (queries = keys).") var seq: Int?
    @Option(help: "Query heads.") var heads = 8
    @Option(name: .customLong("kv-heads"), help: "Key/value heads (default: = heads).") var kvHeads: Int?
    @Option(name: .customLong("head-dim"), help: "Head dimension.") var headDim = 64
    @Flag(help: "Causal mask.") var causal = false
    @Option(help: "Sliding window half-width.") var window: Int?
    @Flag(help: "Sigmoid attention instead of softmax.") var sigmoid = false
    @Option(help: "Timed runs per case (best is reported).") var repeats = 3
    @Option(help: "Largest N at which the materialised reference still runs (its scores need B·H·N² floats).")
    var referenceLimit = 8192
    @Option(help: "Write all rows as JSON to this path.") var json: String?
    @Option(name: .customLong("rows-per-block"), help: "FlashAttention query rows per task (tuning).") var rowsPerBlock: Int?
    @Option(name: .customLong("tile-keys"), help: "FlashAttention keys per tile (tuning).") var tileKeys: Int?
    @Option(name: .customLong("key-splits"), help: "FlashAttention key splits per task (1: never split; default automatic).")
    var keySplits: Int?
    @Option(help: "Thread counts to run, comma-separated (e.g. 1,2): every case at each count, with the scaling.")
    var threads: String?

    func validate() throws {
        let size = 1...(1 << 20)
        try requireInRange("--seq", seq.map { [$0] } ?? [], size)
        try requireInRange("--heads", [heads], 1...4096)
        try requireInRange("--kv-heads", kvHeads.map { [$0] } ?? [], 1...4096)
        if let kvHeads, heads % kvHeads != 0 { throw ValidationError("--kv-heads must divide --heads") }
        try requireInRange("--head-dim", [headDim], 1...4096)
        try requireInRange("--window", window.map { [$0] } ?? [], 0...(1 << 20))
        try requireInRange("--repeats", [repeats], 1...1000)
        try requireInRange("--reference-limit", [referenceLimit], 0...(1 << 20))
        try requireInRange("--rows-per-block", rowsPerBlock.map { [$0] } ?? [], 1...4096)
        try requireInRange("--tile-keys", tileKeys.map { [$0] } ?? [], 1...(1 << 16))
    }

    func run() throws {
        let counts = try ThreadList.parse(threads)
        print(CPU.summary)
        print("attention: B=1, fp32; GFLOP/s counts 4·N²·D per head (halved when causal)")
        var report = Report(columns: ["threads", "case", "N", "flash_ms", "flash_gflops", "ref_ms", "speedup", "flash_MB", "ref_MB"])
        print(report.header())
        for n in counts {
            Threading.workers = n
            sweep(&report)
        }
        ThreadList.printScaling(report.rows, counts: counts, key: ["case", "N"], time: "flash_ms")
        try report.write(json: json, benchmark: "attention", extra: ["cpu": .string(CPU.summary)])
    }

    /// The tuning flags applied to `o`.
    func tuned(_ o: Attention.Options) -> Attention.Options {
        var o = o
        o.rowsPerBlock = rowsPerBlock ?? o.rowsPerBlock
        o.tileKeys = tileKeys ?? o.tileKeys
        o.keySplits = keySplits ?? o.keySplits
        return o
    }

    func sweep(_ report: inout Report) {
        if let seq {
            let g = Attention.Geometry(batch: 1, queries: seq, keys: seq, heads: heads, kvHeads: kvHeads ?? heads,
                                       headDim: headDim, valueDim: headDim)
            let mask = AttentionMask(causal: causal, window: window)
            report.add(measure(g, Attention.Options(mask: mask, score: sigmoid ? .sigmoid() : .softmax)))
        } else {
            memoryAtLength(&report)
            for d in [64, 128] {
                for c in [false, true] {
                    for n in [512, 1024, 2048, 4096, 8192] {
                        let g = Attention.Geometry(batch: 1, queries: n, keys: n, heads: 8, kvHeads: 8, headDim: d, valueDim: d)
                        report.add(measure(g, Attention.Options(mask: c ? .causal : .none)))
                    }
                }
            }
            windowGrowth(&report)
            sigmoidVsSoftmax(&report)
            decode(&report)
        }
    }

    /// Useful flops: 2·(D + Dv) per allowed (query, key) pair per head — 4·N²·D dense, half that causal, and
    /// ≈ 4·N·(w + 1)·D for a causal window w.
    func flops(_ g: Attention.Geometry, _ o: Attention.Options) -> Double {
        let perPair = 2 * Double(g.headDim + g.valueDim) * Double(g.batch * g.heads)
        var pairs = Double(g.queries) * Double(g.keys)
        if o.mask.causal && g.queries == g.keys {
            let n = g.queries
            if let w = o.mask.window {
                let full = max(0, n - w)  // rows that see w + 1 keys; the first w rows see i + 1
                pairs = Double(full) * Double(w + 1) + Double(min(w, n)) * Double(min(w, n) + 1) / 2
            } else {
                pairs = Double(n) * Double(n + 1) / 2
            }
        }
        return perPair * pairs
    }

    func inputs(_ g: Attention.Geometry) -> (Tensor, Tensor, Tensor) {
        (Tensor.randomNormal([g.batch, g.queries, g.heads, g.headDim], seed: 1),
         Tensor.randomNormal([g.batch, g.keys, g.kvHeads, g.headDim], seed: 2),
         Tensor.randomNormal([g.batch, g.keys, g.kvHeads, g.valueDim], seed: 3))
    }

    func label(_ g: Attention.Geometry, _ o: Attention.Options) -> String {
        var s = "H\(g.heads)/\(g.kvHeads) D\(g.headDim)"
        if o.mask.causal { s += " causal" }
        if let w = o.mask.window { s += " w\(w)" }
        if o.score != .softmax { s += " sigmoid" }
        return s
    }

    func measure(_ g: Attention.Geometry, _ options: Attention.Options, reference: Bool = true, tag: String? = nil) -> [String: JSONValue] {
        let o = tuned(options)
        let (q, k, v) = inputs(g)
        let reps = g.keys >= 4096 ? max(2, repeats - 1) : repeats
        let tf = bestTime(repeats: reps) { _ = Attention.flash(query: q, key: k, value: v, options: o) }
        var row: [String: JSONValue] = [
            "threads": .int(Threading.workers), "case": .string(tag ?? label(g, o)), "N": .int(g.keys), "heads": .int(g.heads), "kv_heads": .int(g.kvHeads),
            "head_dim": .int(g.headDim), "causal": .bool(o.mask.causal), "flash_ms": .num(tf * 1e3, 3),
            "flash_gflops": .num(flops(g, o) / tf / 1e9, 1),
            "flash_MB": .num(Double(FlashAttention.scratchBytes(g, options: o)) / 1e6, 2),
            "ref_MB": .num(Double(Attention.referenceScoreBytes(g)) / 1e6, 1),
        ]
        if reference && g.keys <= referenceLimit {
            let tr = bestTime(repeats: reps) { _ = Attention.reference(query: q, key: k, value: v, options: o) }
            row["ref_ms"] = .num(tr * 1e3, 3)
            row["ref_gflops"] = .num(flops(g, o) / tr / 1e9, 1)
            row["speedup"] = .num(tr / tf, 2)
        }
        return row
    }

    func windowGrowth(_ report: inout Report) {
        print("-- sliding window w=256 (causal), flash only: cost must grow linearly in N")
        var first: Double?
        for n in [2048, 4096, 8192, 16384] {
            let g = Attention.Geometry(batch: 1, queries: n, keys: n, heads: 8, kvHeads: 8, headDim: 64, valueDim: 64)
            var row = measure(g, Attention.Options(mask: AttentionMask(causal: true, window: 256)), reference: false,
                              tag: "window256 D64")
            if case .double(let ms, _) = row["flash_ms"]! {
                first = first ?? ms
                row["speedup"] = .num(ms / first!, 2)  // growth vs N=2048
                row["case"] = .string("window256 growth×")
            }
            report.add(row)
        }
    }

    func sigmoidVsSoftmax(_ report: inout Report) {
        print("-- sigmoid vs softmax flash (speedup column: softmax ms ÷ sigmoid ms)")
        for n in [1024, 4096] {
            let g = Attention.Geometry(batch: 1, queries: n, keys: n, heads: 8, kvHeads: 8, headDim: 64, valueDim: 64)
            let (q, k, v) = inputs(g)
            let soft = bestTime(repeats: repeats) { _ = Attention.flash(query: q, key: k, value: v, options: tuned(Attention.Options())) }
            let sig = bestTime(repeats: repeats) {
                _ = Attention.flash(query: q, key: k, value: v, options: tuned(Attention.Options(score: .sigmoid())))
            }
            report.add(["threads": .int(Threading.workers), "case": .string("sigmoid D64"), "N": .int(n), "flash_ms": .num(sig * 1e3, 3),
                        "flash_gflops": .num(g.denseFlops / sig / 1e9, 1), "ref_ms": .num(soft * 1e3, 3),
                        "speedup": .num(soft / sig, 2), "softmax_ms": .num(soft * 1e3, 3)])
        }
    }

    func decode(_ report: inout Report) {
        print("-- decode: 1 query vs 4096 cached keys, H=32, D=128 (ref_MB column: KV-cache MB)")
        for kv in [32, 8, 1] {
            let g = Attention.Geometry(batch: 1, queries: 1, keys: 4096, heads: 32, kvHeads: kv, headDim: 128, valueDim: 128)
            let (q, k, v) = inputs(g)
            let o = tuned(Attention.Options(mask: AttentionMask(causal: true, queryOffset: 4095)))
            let t = bestTime(repeats: repeats * 10) { _ = Attention.flash(query: q, key: k, value: v, options: o) }
            let name = kv == 32 ? "MHA" : (kv == 1 ? "MQA" : "GQA")
            report.add(["threads": .int(Threading.workers), "case": .string("decode \(name) 32/\(kv)"), "N": .int(4096), "flash_ms": .num(t * 1e3, 4),
                        "flash_gflops": .num(g.denseFlops / t / 1e9, 1),
                        "ref_MB": .num(Double(2 * 4096 * kv * 128 * 4) / 1e6, 1)])
        }
    }

    /// Peak extra memory at N = 16384, H = 8, D = 64: the kernel's own scratch count and the process's peak RSS
    /// (`getrusage`) before and after one flash call, measured first in the sweep so no earlier peak hides it.
    func memoryAtLength(_ report: inout Report) {
        let g = Attention.Geometry(batch: 1, queries: 16384, keys: 16384, heads: 8, kvHeads: 8, headDim: 64, valueDim: 64)
        let (q, k, v) = inputs(g)
        let outputBytes = g.queries * g.heads * g.valueDim * MemoryLayout<Float>.stride
        let before = peakRSS()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let out = Attention.flash(query: q, key: k, value: v, options: tuned(Attention.Options()))
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        let growth = peakRSS() - before
        let extra = max(0, growth - outputBytes)
        print("-- memory at N=16384, H=8, D=64: peak RSS grew \(growth) bytes during the call, of which \(outputBytes) "
              + "are the output: \(extra) bytes extra (kernel scratch by count: \(FlashAttention.scratchBytes(g))); "
              + "the reference would need \(Attention.referenceScoreBytes(g)) bytes of scores")
        report.add(["threads": .int(Threading.workers), "case": .string("memory N16384 D64"), "N": .int(16384), "flash_ms": .num(seconds * 1e3, 1),
                    "flash_gflops": .num(g.denseFlops / seconds / 1e9, 1),
                    "flash_MB": .num(Double(extra) / 1e6, 2),
                    "ref_MB": .num(Double(Attention.referenceScoreBytes(g)) / 1e6, 1),
                    "flash_scratch_bytes": .int(FlashAttention.scratchBytes(g)), "flash_peak_rss_growth_bytes": .int(growth)])
        _ = out
    }

    func peakRSS() -> Int {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024  // kilobytes on Linux
        #else
        getrusage(RUSAGE_SELF, &usage)
        return usage.ru_maxrss  // bytes on macOS
        #endif
    }
}
