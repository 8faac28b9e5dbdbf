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

    func validate() throws {
        try requireInRange("--steps", [steps], 1...4096)
        try requireInRange("--repeats", [repeats], 1...1000)
        try requireInRange("--layers", [layers], 1...256)
    }

    func run() throws {
        print("decode: random-weight models, \(layers) layers, hidden 512, \(Threading.workers) workers; best of \(repeats)")
        var report = Report(columns: ["model", "context", "prefill_tps", "decode_tps", "recompute_tps", "cache_speedup", "kv_bytes_tok"])
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
        ]
        for (name, dict, mode, contexts) in models {
            stderrPrint("[decode] \(name)")
            let model = try build(dict, mlaMode: mode)
            for context in contexts { report.add(measure(name, model, context: context)) }
        }
        try report.write(json: json, benchmark: "decode", extra: ["workers": .int(Threading.workers), "layers": .int(layers)])
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
        return ["model": .string(name), "context": .int(context), "prefill_tps": .num(Double(context) / prefill, 1),
                "decode_tps": .num(decodeTPS, 1), "recompute_tps": .num(1 / recompute, 2),
                "cache_speedup": .num(decodeTPS * recompute, 1), "kv_bytes_tok": .int(cache.bytesPerToken),
                "params": .int(model.parameterCount)]
    }
}
