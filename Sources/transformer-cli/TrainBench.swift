import ArgumentParser
import Foundation
import Transformer

/// `transformer-cli bench train`: training throughput of an encoder classifier, and the attention backward's memory.
///
/// Throughput: full training steps (forward, backward, gradient clipping, AdamW) on random token batches of a fixed
/// length with no padding, the same protocol as `scripts/bench_train_peers.py` (PyTorch CPU,
/// `model(**batch).loss.backward(); clip; opt.step()` with the same thread count) so the two examples/s compare.
/// Reported: the median and best step of `--steps` timed steps after 2 warm-up steps.
///
/// Attention memory (`--attention-n`, default 4096): one sequence, all heads, FlashAttention-2 forward then
/// backward; the peak resident set is read (getrusage) before and after the backward, and set against the size of a
/// materialised N×N score matrix per head.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Training examples/s and attention-backward memory.")

    @Option(help: "rope | absolute | sinusoidal | none") var position: String = "rope"
    @Option var layers: Int = 2
    @Option var hidden: Int = 128
    @Option var heads: Int = 4
    @Option var intermediate: Int = 512
    @Option(name: .customLong("seq-len")) var seqLen: Int = 64
    @Option(name: .customLong("batch-size")) var batchSize: Int = 32
    @Option var vocab: Int = 8000
    @Option(help: "Timed steps.") var steps: Int = 10
    @OptionGroup var threading: ThreadsOption
    @Option(name: .customLong("attention-n"), help: "Sequence length for the attention-backward memory check (0: skip).") var attentionN: Int = 4096
    @Option(help: "Write the results as JSON here.") var json: String?

    func run() throws {
        try threading.apply()
        guard let pos = PositionEncoding(rawValue: position) else { throw ValidationError("bad --position \(position)") }
        let config = EncoderClassifierConfig(vocabSize: vocab, hiddenSize: hidden, layers: layers, heads: heads,
                                             intermediateSize: intermediate, maxPositions: seqLen, numLabels: 2,
                                             position: pos, dropout: 0.1)
        let model: EncoderClassifier
        do { model = try EncoderClassifier(config: config) } catch let e as TrainingError { throw ValidationError(e.description) }
        model.initialize(seed: 1)
        var opt = AdamW(parameterCount: model.parameterCount, groups: model.optimizerGroups, weightDecay: 0.01)
        var rng = SeededGenerator(seed: 7)
        let batches = (0..<4).map { _ -> EncoderBatch in
            let seqs = (0..<batchSize).map { _ in [2] + (0..<(seqLen - 2)).map { _ in 5 + Int(rng.next() % UInt64(vocab - 5)) } + [3] }
            return EncoderBatch(sequences: seqs, labels: (0..<batchSize).map { _ in Int(rng.next() % 2) })
        }
        var times: [Double] = [], cpuTimes: [Double] = []
        for s in 0..<(steps + 2) {
            let b = batches[s % batches.count]
            let c0 = processCPUSeconds()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try model.forward(b, training: true, dropoutSeed: UInt64(s))
            model.backward(b)
            opt.clipGradients(model.gradients, maxNorm: 1)
            opt.update(model.parameters, model.gradients, lr: 1e-4)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            if s >= 2 { times.append(dt); cpuTimes.append(processCPUSeconds() - c0) }
        }
        times.sort(); cpuTimes.sort()
        let cpuMedian = cpuTimes[cpuTimes.count / 2]
        let median = times[times.count / 2], best = times[0]
        print("bench train: \(pos.rawValue), \(layers) layers, hidden \(hidden), \(heads) heads, ffn \(intermediate), "
              + "batch \(batchSize) × \(seqLen) tokens, vocab \(vocab), \(Threading.workers) threads, dropout 0.1")
        print(String(format: "  step median %.2f ms, best %.2f ms -> %.1f examples/s (median), %.1f (best)",
                     median * 1e3, best * 1e3, Double(batchSize) / median, Double(batchSize) / best))
        print(String(format: "  process CPU time per step (all threads) median %.2f ms -> %.1f examples per CPU-second",
                     cpuMedian * 1e3, Double(batchSize) / cpuMedian))
        var doc: [String: Any] = ["position": pos.rawValue, "layers": layers, "hidden": hidden, "heads": heads,
                                  "intermediate": intermediate, "seq_len": seqLen, "batch_size": batchSize, "vocab": vocab,
                                  "threads": Threading.workers, "step_ms_median": median * 1e3, "step_ms_best": best * 1e3,
                                  "examples_per_s_median": Double(batchSize) / median, "examples_per_s_best": Double(batchSize) / best,
                                  "cpu_ms_per_step_median": cpuMedian * 1e3, "examples_per_cpu_s": Double(batchSize) / cpuMedian]
        if attentionN > 0 { doc["attention_memory"] = attentionMemory(n: attentionN) }
        if let json {
            try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: json))
            stderrPrint("wrote \(json)")
        }
    }

    /// Peak-RSS growth of the attention backward at sequence length `n` (hidden / heads as configured).
    func attentionMemory(n: Int) -> [String: Any] {
        let (H, D) = (hidden, hidden / heads)
        func alloc(_ count: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            var g = SeededGenerator(seed: seed)
            for i in 0..<count { p[i] = g.nextNormal() }
            return p
        }
        let qkv = alloc(n * 3 * H, seed: 1), dO = alloc(n * H, seed: 2), o = alloc(n * H, seed: 3)
        let lse = alloc(heads * n, seed: 4), grad = alloc(n * 3 * H, seed: 5)
        let workers = min(Threading.workers, heads)
        let per = FlashAttentionTraining.scratchFloats(queries: n)
        let scratch = alloc(workers * per, seed: 6)
        defer { [qkv, dO, o, lse, grad, scratch].forEach { $0.deallocate() } }
        func head(_ h: Int) -> FlashAttentionTraining.Head {
            FlashAttentionTraining.Head(q: qkv + h * D, k: qkv + H + h * D, v: qkv + 2 * H + h * D, qkvStride: 3 * H,
                                        o: o + h * D, oStride: H, lse: lse + h * n, queries: n, keyLength: n, headDim: D,
                                        scale: 1 / Float(D).squareRoot())
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        parallelFor(heads) { (w: Int, h: Int) in FlashAttentionTraining.forward(head(h), scratch: scratch + w * per) }
        let t1 = DispatchTime.now().uptimeNanoseconds
        let before = peakRSSBytes()
        parallelFor(heads) { (w: Int, h: Int) in
            FlashAttentionTraining.backward(head(h), dO: dO + h * D, dOStride: H, dQ: grad + h * D, dK: grad + H + h * D,
                                            dV: grad + 2 * H + h * D, gradStride: 3 * H, scratch: scratch + w * per)
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        let after = peakRSSBytes()
        let nn = n * n * 4
        let scratchBytes = workers * per * 4
        print("attention backward at N = \(n), \(heads) heads × D \(D): forward \(String(format: "%.1f", Double(t1 - t0) * 1e-6)) ms, "
              + "backward \(String(format: "%.1f", Double(t2 - t1) * 1e-6)) ms")
        print("  extra memory: scratch \(scratchBytes / 1024) KiB (\(workers) workers × (2 tiles 64×64 + row vectors + D[N])) "
              + "+ LSE \(heads * n * 4 / 1024) KiB; peak RSS growth during backward \((after - before) / 1024) KiB; "
              + "one materialised N×N score matrix would be \(nn >> 20) MiB per head")
        return ["n": n, "heads": heads, "head_dim": D, "scratch_bytes": scratchBytes, "lse_bytes": heads * n * 4,
                "peak_rss_growth_bytes": after - before, "materialized_nxn_bytes_per_head": nn,
                "forward_ms": Double(t1 - t0) * 1e-6, "backward_ms": Double(t2 - t1) * 1e-6]
    }
}

/// CPU time of the whole process (all threads), seconds.
func processCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Peak resident set size of this process in bytes (getrusage `ru_maxrss`, KiB on Linux).
func peakRSSBytes() -> Int {
    var u = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &u)
    return Int(u.ru_maxrss) * 1024
    #else
    getrusage(RUSAGE_SELF, &u)
    return Int(u.ru_maxrss)
    #endif
}
