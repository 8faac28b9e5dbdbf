import Foundation
import XCTest
@testable import Transformer

/// DeepSeek-V3 against Hugging Face `DeepseekV3ForCausalLM` (fixtures from `scripts/fixtures/models.py`), in both
/// MLA modes.
///
/// Tolerances (as ``ModelTests``): logits |ours − HF| ≤ 1e-4 · max|HF| + 1e-5; greedy ids identical; cached decode
/// (prefill half, then one token at a time) vs full recompute ≤ 1e-5 · max|logits|; naive vs absorbed logits
/// ≤ 1e-5 · max|logits|.
final class DeepSeekV3Tests: XCTestCase {
    typealias Mode = MultiHeadLatentAttention.Mode
    static let root = ModelTests.root
    static let fixtures = ["deepseek_v3_qlora", "deepseek_v3_noqlora", "deepseek_v3_yarn", "deepseek_v3_yarn_legacy"]

    static func directory(_ name: String) -> URL { root.appendingPathComponent(name) }

    static func load(_ name: String, mode: Mode) throws -> DecoderModel {
        let dir = directory(name)
        return try DeepSeekV3.build(config: try ModelConfig.load(directory: dir),
                                    weights: Weights(try SafeTensorsCheckpoint(directory: dir)), attentionMode: mode)
    }

    struct Reference {
        let inputIds: [Int]
        let logits: Tensor
        let greedy: [Int]
    }

    static func reference(_ name: String) throws -> Reference {
        let file = try SafeTensorsFile(url: directory(name).appendingPathComponent("reference.safetensors"))
        return Reference(inputIds: try file.integers("input_ids"), logits: try file.tensor("logits"),
                         greedy: try file.integers("greedy_ids"))
    }

    static func maxAbs(_ t: Tensor) -> Float { t.withUnsafeBufferPointer { $0.map(abs).max() ?? 1 } }

    // MARK: Against HF

    func checkAgainstHF(_ name: String, _ mode: Mode, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try Self.load(name, mode: mode)
        let ref = try Self.reference(name)
        // 1. Full forward pass against HF logits.
        let logits = try model.logits(ref.inputIds)
        XCTAssertEqual(logits.shape, ref.logits.shape, "\(name) \(mode): shape", file: file, line: line)
        let scale = Self.maxAbs(ref.logits)
        let diff = logits.maxAbsDifference(ref.logits)
        XCTAssertLessThanOrEqual(diff, 1e-4 * scale + 1e-5, "\(name) \(mode) logits: max |diff| \(diff), max |ref| \(scale)",
                                 file: file, line: line)
        // 2. Cached decode: prefill half, then one token at a time.
        let cache = model.makeCache(capacity: ref.inputIds.count)
        let split = ref.inputIds.count / 2
        var rows = [try model.forward(Array(ref.inputIds[..<split]), cache: cache)]
        for t in ref.inputIds[split...] { rows.append(try model.forward([t], cache: cache)) }
        let cached = Tensor.concatenate(rows, axis: 0)
        let cachedDiff = cached.maxAbsDifference(logits)
        XCTAssertLessThanOrEqual(cachedDiff, 1e-5 * Self.maxAbs(logits), "\(name) \(mode): cached vs recomputed",
                                 file: file, line: line)
        // 3. Greedy continuation identical to HF generate(do_sample=False).
        let out = try model.generate(prompt: ref.inputIds, options: GenerationOptions(maxNewTokens: ref.greedy.count))
        XCTAssertEqual(out.tokens, ref.greedy, "\(name) \(mode): greedy continuation", file: file, line: line)
        // 4. Past the cache: an error, not a crash.
        XCTAssertThrowsError(try model.forward([0], cache: cache), file: file, line: line) {
            XCTAssertTrue("\($0)".contains("context overflow"), "\($0)")
        }
        print("[DeepSeekV3] \(name) \(mode): logits max|diff| \(diff) (rel \(diff / scale), max|ref| \(scale)); "
              + "cached vs full \(cachedDiff) (rel \(cachedDiff / Self.maxAbs(logits)))")
    }

    func testQLoraAbsorbed() throws { try checkAgainstHF("deepseek_v3_qlora", .absorbed) }
    func testQLoraNaive() throws { try checkAgainstHF("deepseek_v3_qlora", .naive) }
    func testNoQLoraAbsorbed() throws { try checkAgainstHF("deepseek_v3_noqlora", .absorbed) }
    func testNoQLoraNaive() throws { try checkAgainstHF("deepseek_v3_noqlora", .naive) }
    func testYarnAbsorbed() throws { try checkAgainstHF("deepseek_v3_yarn", .absorbed) }
    func testYarnNaive() throws { try checkAgainstHF("deepseek_v3_yarn", .naive) }
    func testYarnLegacyConfigAbsorbed() throws { try checkAgainstHF("deepseek_v3_yarn_legacy", .absorbed) }
    func testYarnLegacyConfigNaive() throws { try checkAgainstHF("deepseek_v3_yarn_legacy", .naive) }

    // MARK: The two modes

    func testNaiveMatchesAbsorbed() throws {
        for name in Self.fixtures {
            let ids = try Self.reference(name).inputIds
            let naive = try Self.load(name, mode: .naive).logits(ids)
            let absorbed = try Self.load(name, mode: .absorbed).logits(ids)
            let diff = naive.maxAbsDifference(absorbed), scale = Self.maxAbs(naive)
            XCTAssertLessThanOrEqual(diff, 1e-5 * scale, "\(name): naive vs absorbed max |diff| \(diff), max \(scale)")
            print("[DeepSeekV3] \(name): naive vs absorbed max|diff| \(diff) (rel \(diff / scale))")
        }
    }

    func testLoaderUsesAbsorbedMLA() throws {
        let model = try ModelLoader.open(Self.directory("deepseek_v3_qlora")).causalLM()
        let decoder = try XCTUnwrap(model as? DecoderModel)
        XCTAssertEqual(decoder.architecture, "deepseek_v3")
        for layer in decoder.layers {
            let mla = try XCTUnwrap(layer.attention as? MultiHeadLatentAttention)
            XCTAssertEqual(mla.mode, .absorbed)
        }
        // first_k_dense_replace = 1: layer 0 dense, the rest MoE with a shared expert.
        XCTAssertTrue(decoder.layers[0].feedForward is SwiGLU)
        for layer in decoder.layers.dropFirst() {
            let moe = try XCTUnwrap(layer.feedForward as? MixtureOfExperts)
            XCTAssertEqual(moe.experts.count, 8)
            XCTAssertEqual(moe.expertsPerToken, 2)
            XCTAssertNotNil(moe.shared)
        }
        // Every checkpoint parameter is counted once in either mode (`e_score_correction_bias` is a buffer in HF,
        // not a parameter, like HF's `num_parameters()`).
        let file = try SafeTensorsFile(url: Self.directory("deepseek_v3_qlora").appendingPathComponent("model.safetensors"))
        let count = try file.names.filter { !$0.hasSuffix("e_score_correction_bias") }
            .reduce(0) { n, name in n + (try file.tensor(name)).count }
        XCTAssertEqual(decoder.parameterCount, count)
        XCTAssertEqual(try Self.load("deepseek_v3_qlora", mode: .naive).parameterCount, count)
    }

    func testKVCacheBytesPerToken() throws {
        for name in Self.fixtures {
            let c = try ModelConfig.load(directory: Self.directory(name))
            let (layers, heads) = (c.numHiddenLayers!, c.numAttentionHeads!)
            let (r, dr, dn, dv) = (c.kvLoraRank!, c.qkRopeHeadDim!, c.qkNopeHeadDim!, c.vHeadDim!)
            let absorbed = try Self.load(name, mode: .absorbed).makeCache(capacity: 8)
            XCTAssertEqual(absorbed.bytesPerToken, layers * (r + dr) * 4, name)
            XCTAssertTrue(absorbed.layers.allSatisfy { $0.values == nil && $0.valueWidth == 0 }, name)
            let naive = try Self.load(name, mode: .naive).makeCache(capacity: 8)
            XCTAssertEqual(naive.bytesPerToken, layers * heads * (dn + dr + dv) * 4, name)
        }
    }

    /// One random MLA layer over a context longer than a key tile (256) and a query block: prefill, chunks and
    /// single-token steps, naive vs absorbed.
    func testAbsorbedMatchesNaiveLongContext() throws {
        let (hidden, heads, qLora, r, dn, dr, dv) = (48, 6, 40, 32, 16, 8, 24)
        var seed: UInt64 = 7
        func linear(_ out: Int, _ inF: Int, bias: Bool = false) -> Linear {
            seed += 1
            return Linear(weight: Tensor.randomNormal([out, inF], std: 1 / Float(inF).squareRoot(), seed: seed),
                          bias: bias ? Tensor.randomNormal([out], std: 0.1, seed: seed + 1000) : nil)
        }
        func norm(_ n: Int) -> RMSNorm {
            seed += 1
            return RMSNorm(weight: Tensor.randomNormal([n], mean: 1, std: 0.1, seed: seed), eps: 1e-6)
        }
        let rope = RoPE(rotaryDim: dr, base: 10_000, maxPositions: 512, layout: .interleaved,
                        scaling: .yarn(factor: 4, originalMaxPositions: 64, mscale: 1, mscaleAllDim: 1))
        let query = MultiHeadLatentAttention.QueryProjection.lowRank(down: linear(qLora, hidden, bias: true),
                                                                     norm: norm(qLora), up: linear(heads * (dn + dr), qLora))
        let (latent, latentNorm, kvUp, output) = (linear(r + dr, hidden, bias: true), norm(r),
                                                  linear(heads * (dn + dv), r), linear(hidden, heads * dv))
        let modes = Mode.allCases.map {
            MultiHeadLatentAttention(query: query, latent: latent, latentNorm: latentNorm, kvUp: kvUp, output: output,
                                     heads: heads, nopeDim: dn, ropeDim: dr, valueDim: dv, rope: rope, mode: $0)
        }
        let total = 300
        let x = Tensor.randomNormal([total, hidden], seed: 99)
        var outputs: [Tensor] = []
        for mla in modes {
            let cache = KVCache(capacity: total, widths: [mla.cacheWidths])
            var rows: [Tensor] = []
            for (start, end) in [(0, 170), (170, 171), (171, 260), (260, 261), (261, 262), (262, total)] {
                rows.append(mla(x.sliced(axis: 0, start..<end), cache: cache.layers[0], position: start))
            }
            let stepped = Tensor.concatenate(rows, axis: 0)
            let full = mla(x, cache: KVCache(capacity: total, widths: [mla.cacheWidths]).layers[0], position: 0)
            XCTAssertLessThanOrEqual(stepped.maxAbsDifference(full), 1e-5 * Self.maxAbs(full), "\(mla.mode) chunked vs full")
            outputs.append(full)
        }
        let diff = outputs[0].maxAbsDifference(outputs[1]), scale = Self.maxAbs(outputs[0])
        XCTAssertLessThanOrEqual(diff, 1e-5 * scale, "naive vs absorbed: \(diff), max \(scale)")
        print("[DeepSeekV3] random MLA, \(total) positions: naive vs absorbed max|diff| \(diff) (rel \(diff / scale))")
    }

    /// transformers-5 in-memory layout of the routed experts (`mlp.experts.gate_up_proj` `[E, 2I, hidden]`,
    /// `mlp.experts.down_proj` `[E, hidden, I]`) built from the per-expert checkpoint: same logits.
    struct FusedExperts: WeightSource {
        let base: SafeTensorsCheckpoint
        let layers: Int, experts: Int

        func contains(_ name: String) -> Bool {
            if name.contains(".mlp.experts.") && !name.hasSuffix("experts.gate_up_proj") && !name.hasSuffix("experts.down_proj") {
                return false
            }
            if name.hasSuffix("experts.gate_up_proj") || name.hasSuffix("experts.down_proj") {
                return base.contains(name.replacingOccurrences(of: "experts.", with: "experts.0.")
                    .replacingOccurrences(of: "gate_up_proj", with: "gate_proj") + ".weight")
            }
            return base.contains(name)
        }

        func tensor(_ name: String) throws -> Tensor {
            let prefix = name.components(separatedBy: "experts.")[0] + "experts."
            if name.hasSuffix("experts.gate_up_proj") {
                return Tensor.stack(try (0..<experts).map { e in
                    Tensor.concatenate([try base.tensor("\(prefix)\(e).gate_proj.weight"),
                                        try base.tensor("\(prefix)\(e).up_proj.weight")], axis: 0)
                })
            }
            if name.hasSuffix("experts.down_proj") {
                return Tensor.stack(try (0..<experts).map { try base.tensor("\(prefix)\($0).down_proj.weight") })
            }
            return try base.tensor(name)
        }
    }

    func testFusedExpertLayout() throws {
        let dir = Self.directory("deepseek_v3_qlora")
        let config = try ModelConfig.load(directory: dir)
        let source = FusedExperts(base: try SafeTensorsCheckpoint(directory: dir), layers: config.numHiddenLayers!,
                                  experts: config.nRoutedExperts!)
        XCTAssertFalse(source.contains("model.layers.1.mlp.experts.0.gate_proj.weight"))
        XCTAssertTrue(source.contains("model.layers.1.mlp.experts.gate_up_proj"))
        let fused = try DeepSeekV3.build(config: config, weights: Weights(source))
        let ids = try Self.reference("deepseek_v3_qlora").inputIds
        XCTAssertEqual(try fused.logits(ids), try Self.load("deepseek_v3_qlora", mode: .absorbed).logits(ids))
    }

    // MARK: Config errors

    func config(_ edit: (inout [String: Any]) -> Void) throws -> ModelConfig {
        let data = try Data(contentsOf: Self.directory("deepseek_v3_qlora").appendingPathComponent("config.json"))
        var dict = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        edit(&dict)
        return try JSONDecoder().decode(ModelConfig.self, from: try JSONSerialization.data(withJSONObject: dict))
    }

    func assertBuildFails(_ edit: (inout [String: Any]) -> Void, message: String,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let c = try config(edit)
        let weights = Weights(try SafeTensorsCheckpoint(directory: Self.directory("deepseek_v3_qlora")))
        XCTAssertThrowsError(try DeepSeekV3.build(config: c, weights: weights), file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(message), "'\(error)' should contain '\(message)'", file: file, line: line)
        }
    }

    func testGroupsMustDivideExperts() throws {
        try assertBuildFails({ $0["n_group"] = 3 }, message: "n_group (3) does not divide n_routed_experts (8)")
    }

    func testTopGroupsAtMostGroups() throws {
        try assertBuildFails({ $0["topk_group"] = 5 }, message: "topk_group (5) exceeds n_group (4)")
    }

    func testExpertsPerTokenAtMostExperts() throws {
        try assertBuildFails({ $0["num_experts_per_tok"] = 9 },
                             message: "num_experts_per_tok (9) exceeds n_routed_experts (8)")
    }

    func testExpertsPerTokenAtMostKeptExperts() throws {
        // 4 groups of 2, 2 kept: 4 candidate experts.
        try assertBuildFails({ $0["num_experts_per_tok"] = 5 },
                             message: "num_experts_per_tok (5) exceeds the 4 experts of the topk_group (2) kept groups")
    }

    func testScoringFunctionMustBeSigmoid() throws {
        try assertBuildFails({ $0["scoring_func"] = "softmax" }, message: "scoring_func 'softmax' is not supported")
    }

    func testTopkMethodMustBeNoAuxTC() throws {
        try assertBuildFails({ $0["topk_method"] = "group_limited_greedy" },
                             message: "topk_method 'group_limited_greedy' is not supported")
    }

    func testKeyValueHeadsMustEqualHeads() throws {
        try assertBuildFails({ $0["num_key_value_heads"] = 2 },
                             message: "num_key_value_heads (2) must equal num_attention_heads (4)")
    }

    func testMissingLatentRank() throws {
        try assertBuildFails({ $0.removeValue(forKey: "kv_lora_rank") }, message: "kv_lora_rank")
    }

    func testShapeMismatchNamesTensor() throws {
        try assertBuildFails({ $0["v_head_dim"] = 10 }, message: "self_attn.kv_b_proj.weight")
    }
}
