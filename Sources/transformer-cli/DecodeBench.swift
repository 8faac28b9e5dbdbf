import ArgumentParser
import Foundation
import Transformer

/// Prefill and decode speed of small random-weight models, with and without the KV cache.
struct DecodeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Prefill / decode tokens/s per architecture, KV cache vs recompute, MLA modes, MoE vs dense.",
        discussion: "Random weights (no checkpoint needed): 8 layers, hidden 512, per architecture.")

    @Option(help: "Decode steps timed per measurement.") var steps = 16
    @Option(help: "Timed repetitions (best is reported).") var repeats = 3
    @Option(help: "Decoder layers of the synthetic models.") var layers = 8
    @Option(help: "Write the rows as JSON to this path.") var json: String?
    @Option(help: "Thread counts to run, comma-separated (e.g. 1,2): every model at each count, with the scaling.")
    var threads: String?
    @Option(help: "Only the models whose name contains one of these comma-separated words (e.g. 'GQA').") var only: String?
    @Option(help: "Comma-separated context lengths replacing each model's defaults.") var contexts: String?
    @Flag(help: "Only decode, the selected models interleaved round by round (fairer ratios on a busy machine).")
    var interleave = false

    func validate() throws {
        try requireInRange("--steps", [steps], 1...4096)
        try requireInRange("--repeats", [repeats], 1...1000)
        try requireInRange("--layers", [layers], 1...256)
    }

    func run() throws {
        let counts = try ThreadList.parse(threads)
        print(CPU.summary)
        print("decode: random-weight models, \(layers) layers, hidden 512; best of \(repeats)")
        var report = Report(columns: ["threads", "model", "context", "prefill_tps", "decode_tps", "recompute_tps", "cache_speedup", "kv_bytes_tok"])
        print(report.header())
        let short = [128, 2048], long = [1024, 4096]
        let models: [(String, [String: Any], MultiHeadLatentAttention.Mode?, [Int])] = [
            ("llama MHA 8/8", llama(kvHeads: 8, intermediate: 1536), nil, short),
            ("llama GQA 8/2", llama(kvHeads: 2, intermediate: 1536), nil, short),
            ("llama MQA 8/1", llama(kvHeads: 1, intermediate: 1536), nil, short),
            ("mixtral 8x768 top2", mixtral(), nil, short),
            ("dense, same active", llama(kvHeads: 2, intermediate: 1536), nil, short),
            ("deepseek MLA absorbed", deepSeek(), .absorbed, long),
            ("deepseek MLA naive", deepSeek(), .naive, long),
            // Model families at the llama GQA 8/2 size (decode target: within 10 % of it).
            ("qwen2 GQA 8/2", family("qwen2"), nil, short),
            ("qwen3 GQA 8/2", family("qwen3"), nil, short),
            ("gemma2 GQA 8/2", family("gemma2"), nil, short),
            ("phi3 GQA 8/2", family("phi3"), nil, short),
        ]
        let words = only?.split(separator: ",").map(String.init)
        if interleave {
            let chosen = models.filter { m in words.map { $0.contains { m.0.contains($0) } } ?? true }
            let built = try chosen.map { ($0.0, try build($0.1, mlaMode: $0.2)) }
            return try interleaved(built, contexts: try self.contexts.map(parseTokens) ?? short)
        }
        for (name, dict, mode, contexts) in models where words.map({ $0.contains { name.contains($0) } }) ?? true {
            stderrPrint("[decode] \(name)")
            let model = try build(dict, mlaMode: mode)
            // Thread counts interleaved per context, so a slow spell of the machine hits every count alike.
            for context in try self.contexts.map(parseTokens) ?? contexts {
                for n in counts {
                    Threading.workers = n
                    report.add(measure(name, model, context: context))
                }
            }
        }
        ThreadList.printScaling(report.rows, counts: counts, key: ["model", "context"], time: "decode_s")
        try report.write(json: json, benchmark: "decode", extra: ["cpu": .string(CPU.summary), "layers": .int(layers)])
    }

    // MARK: Configs (HF field names)

    func base(_ type: String) -> [String: Any] {
        ["model_type": type, "vocab_size": 4096, "hidden_size": 512, "num_hidden_layers": layers,
         "num_attention_heads": 8, "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0]
    }

    func llama(kvHeads: Int, intermediate: Int) -> [String: Any] {
        var c = base("llama")
        c["num_key_value_heads"] = kvHeads
        c["intermediate_size"] = intermediate
        return c
    }

    /// The llama GQA 8/2 shape with a family's features: Qwen2 q/k/v biases; Qwen3 q/k norms; Gemma 2 GeGLU,
    /// sandwich norms, soft-caps 50/30 and a 4096 window on even layers; Phi-3 LongRoPE (original context 4096).
    func family(_ type: String) -> [String: Any] {
        var c = llama(kvHeads: 2, intermediate: 1536)
        c["model_type"] = type
        c["head_dim"] = 64
        switch type {
        case "gemma2":
            c.merge(["hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh", "query_pre_attn_scalar": 64,
                     "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "sliding_window": 4096]) { $1 }
        case "phi3":
            c["original_max_position_embeddings"] = 4096
            let short: [Double] = (0..<32).map { 1 + Double($0) / 32 }
            let long: [Double] = (0..<32).map { 1 + Double($0) / 4 }
            let scaling: [String: Any] = ["type": "longrope", "short_factor": short, "long_factor": long]
            c["rope_scaling"] = scaling
        default: break
        }
        return c
    }

    /// 8 experts of intermediate 768, top-2: the same active feed-forward weights as a dense 1536 MLP.
    func mixtral() -> [String: Any] {
        var c = base("mixtral")
        c["num_key_value_heads"] = 2
        c["intermediate_size"] = 768
        c["num_local_experts"] = 8
        c["num_experts_per_tok"] = 2
        return c
    }

    /// DeepSeek-V3 in miniature: MLA (q LoRA 256, kv LoRA 128, nope 64 + rope 32, v 64), first layer dense,
    /// then 8 routed experts (2 groups, 1 kept) top-2 plus one shared expert.
    func deepSeek() -> [String: Any] {
        var c = base("deepseek_v3")
        c["num_key_value_heads"] = 8
        c["intermediate_size"] = 1536
        c.merge(["q_lora_rank": 256, "kv_lora_rank": 128, "qk_nope_head_dim": 64, "qk_rope_head_dim": 32,
                 "v_head_dim": 64, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
                 "n_shared_experts": 1, "moe_intermediate_size": 384, "first_k_dense_replace": 1,
                 "routed_scaling_factor": 2.5, "norm_topk_prob": true]) { $1 }
        return c
    }

    func build(_ dict: [String: Any], mlaMode: MultiHeadLatentAttention.Mode?) throws -> any CausalLanguageModel {
        let config = try JSONDecoder().decode(ModelConfig.self, from: try JSONSerialization.data(withJSONObject: dict))
        if let mlaMode { return try DeepSeekV3.build(config: config, weights: .random(seed: 7), attentionMode: mlaMode) }
        guard case .causalLM(let m) = try ModelLoader.build(config: config, weights: .random(seed: 7)) else {
            throw ValidationError("not a causal LM")
        }
        return m
    }

    // MARK: Measurement

    /// Decode tokens/s of each model after a `context`-token prompt, the models timed in turn (`steps` steps each)
    /// for `repeats` rounds, best round kept; the ratio is against the first model.
    func interleaved(_ models: [(String, any CausalLanguageModel)], contexts: [Int]) throws {
        var report = Report(columns: ["model", "context", "decode_tps", "ratio"])
        print(report.header())
        for context in contexts {
            let prompt = (0..<context).map { ($0 * 7919) % 4096 }
            let caches = models.map { $0.1.makeCache(capacity: context + steps + 1) }
            for ((_, m), cache) in zip(models, caches) { _ = try m.forward(prompt.map { $0 % m.vocabularySize }, cache: cache) }
            var best = [Double](repeating: .infinity, count: models.count)
            for _ in 0..<repeats {
                for (i, (_, m)) in models.enumerated() {
                    caches[i].truncate(to: context)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    for s in 0..<steps { _ = try m.forward([s % m.vocabularySize], cache: caches[i]) }
                    best[i] = min(best[i], Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                }
            }
            for (i, (name, _)) in models.enumerated() {
                report.add(["model": .string(name), "context": .int(context), "decode_tps": .num(Double(steps) / best[i], 1),
                            "ratio": .num(best[0] / best[i], 3)])
            }
        }
        try report.write(json: json, benchmark: "decode-interleaved", extra: ["workers": .int(Threading.workers), "layers": .int(layers)])
    }

    func measure(_ name: String, _ model: any CausalLanguageModel, context: Int) -> [String: JSONValue] {
        let prompt = (0..<context).map { ($0 * 7919) % model.vocabularySize }
        let cache = model.makeCache(capacity: context + steps + 1)
        // Prefill throughput over the whole context.
        let prefill = bestTime(repeats: repeats) {
            cache.reset()
            _ = try! model.forward(prompt, cache: cache)
        }
        // Cached decode: `steps` one-token steps after the prompt.
        let decode = bestTime(repeats: repeats) {
            cache.truncate(to: context)
            for s in 0..<steps { _ = try! model.forward([s % model.vocabularySize], cache: cache) }
        }
        // Without a cache each new token recomputes the whole sequence: one forward over context + 1 tokens.
        let recompute = bestTime(repeats: max(1, repeats - 1)) { _ = try! model.logits(prompt + [1]) }
        let decodeTPS = Double(steps) / decode
        return ["threads": .int(Threading.workers), "model": .string(name), "context": .int(context),
                "decode_s": .num(decode, 6), "prefill_tps": .num(Double(context) / prefill, 1),
                "decode_tps": .num(decodeTPS, 1), "recompute_tps": .num(1 / recompute, 2),
                "cache_speedup": .num(decodeTPS * recompute, 1), "kv_bytes_tok": .int(cache.bytesPerToken),
                "params": .int(model.parameterCount)]
    }
}
