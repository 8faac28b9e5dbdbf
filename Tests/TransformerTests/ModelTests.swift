import Foundation
import XCTest
@testable import Transformer

/// Whole models against Hugging Face transformers: tiny random models written by `scripts/fixtures/models.py`
/// (`save_pretrained`), with HF's logits and greedy continuations in `reference.safetensors`.
///
/// Tolerances: logits |ours − HF| ≤ 1e-4 · max|HF| + 1e-5 (fp32 through several layers, different summation
/// orders); greedy ids identical; cached decode vs full recompute ≤ 1e-5 · max|logits|.
final class ModelTests: XCTestCase {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("models")

    struct Reference {
        let inputIds: [Int]
        let logits: Tensor
        let greedy: [Int]?
    }

    func reference(_ name: String) throws -> Reference {
        let file = try SafeTensorsFile(url: Self.root.appendingPathComponent(name).appendingPathComponent("reference.safetensors"))
        return Reference(inputIds: try file.integers("input_ids"), logits: try file.tensor("logits"),
                         greedy: file.contains("greedy_ids") ? try file.integers("greedy_ids") : nil)
    }

    func assertLogitsClose(_ ours: Tensor, _ ref: Tensor, rel: Float = 1e-4, _ label: String,
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.shape, ref.shape, "\(label): shape", file: file, line: line)
        guard ours.shape == ref.shape else { return }
        let scale = ref.withUnsafeBufferPointer { $0.map(abs).max() ?? 1 }
        let diff = ours.maxAbsDifference(ref)
        XCTAssertLessThanOrEqual(diff, rel * scale + 1e-5, "\(label): max |diff| \(diff), max |ref| \(scale)", file: file, line: line)
    }

    func checkCausalLM(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let model = try ModelLoader.open(Self.root.appendingPathComponent(name)).causalLM()
        let ref = try reference(name)
        // 1. Full forward pass against HF logits.
        let logits = try model.logits(ref.inputIds)
        assertLogitsClose(logits, ref.logits, "\(name) logits", file: file, line: line)
        // 2. Cached decode: prefill half, then one token at a time; every row must match the full pass.
        let cache = model.makeCache(capacity: ref.inputIds.count)
        let split = ref.inputIds.count / 2
        var rows = [try model.forward(Array(ref.inputIds[..<split]), cache: cache)]
        for t in ref.inputIds[split...] { rows.append(try model.forward([t], cache: cache)) }
        let cached = Tensor.concatenate(rows, axis: 0)
        let scale = logits.withUnsafeBufferPointer { $0.map(abs).max() ?? 1 }
        XCTAssertLessThanOrEqual(cached.maxAbsDifference(logits), 1e-5 * scale, "\(name): cached vs recomputed",
                                 file: file, line: line)
        // 3. Greedy continuation identical to HF generate(do_sample=False).
        if let greedy = ref.greedy {
            let out = try model.generate(prompt: ref.inputIds, options: GenerationOptions(maxNewTokens: greedy.count))
            XCTAssertEqual(out.tokens, greedy, "\(name): greedy continuation", file: file, line: line)
        }
        // 4. Going past the cache is an error, not a crash.
        XCTAssertThrowsError(try model.forward([0], cache: cache)) { error in
            XCTAssertTrue("\(error)".contains("context overflow"), "\(error)")
        }
    }

    func testLlamaMHA() throws { try checkCausalLM("llama_mha") }
    func testLlamaGQA() throws { try checkCausalLM("llama_gqa") }
    func testLlamaMQA() throws { try checkCausalLM("llama_mqa") }
    func testLlamaBias() throws { try checkCausalLM("llama_bias") }
    func testMixtral() throws { try checkCausalLM("mixtral") }
    func testMixtralSlidingWindow() throws { try checkCausalLM("mixtral_window") }

    func testKVCacheBytesPerToken() throws {
        let model = try ModelLoader.open(Self.root.appendingPathComponent("llama_gqa")).causalLM()
        let config = try ModelConfig.load(directory: Self.root.appendingPathComponent("llama_gqa"))
        let headDim = config.hiddenSize! / config.numAttentionHeads!
        let expected = config.numHiddenLayers! * 2 * config.numKeyValueHeads! * headDim * 4
        XCTAssertEqual(model.makeCache(capacity: 8).bytesPerToken, expected)
    }

    // MARK: Bad input

    func makeModelDirectory(config: [String: Any], copyWeightsFrom source: String = "llama_gqa") throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.root.appendingPathComponent(source).appendingPathComponent("model.safetensors"),
                                         to: dir.appendingPathComponent("model.safetensors"))
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func baseConfig() throws -> [String: Any] {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("llama_gqa/config.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func assertLoadFails(_ config: [String: Any], contains words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try makeModelDirectory(config: config)
        XCTAssertThrowsError(try ModelLoader.open(dir).model, file: file, line: line) { error in
            for w in words { XCTAssertTrue("\(error)".contains(w), "'\(error)' should mention \(w)", file: file, line: line) }
        }
    }

    func testUnsupportedModelType() throws {
        var c = try baseConfig()
        c["model_type"] = "gpt_bigcode"
        try assertLoadFails(c, contains: ["unsupported model_type", "gpt_bigcode"])
    }

    func testHeadsMustDivideHidden() throws {
        var c = try baseConfig()
        c["num_attention_heads"] = 5
        c["head_dim"] = NSNull()
        try assertLoadFails(c, contains: ["num_attention_heads", "hidden_size"])
    }

    func testKVHeadsMustDivideHeads() throws {
        var c = try baseConfig()
        c["num_key_value_heads"] = 3
        try assertLoadFails(c, contains: ["num_key_value_heads"])
    }

    func testShapeDisagreeingWithConfig() throws {
        var c = try baseConfig()
        c["intermediate_size"] = (c["intermediate_size"] as! Int) + 1
        try assertLoadFails(c, contains: ["mlp.gate_proj.weight", "shape"])
    }

    func testMissingTensor() throws {
        var c = try baseConfig()
        c["num_hidden_layers"] = (c["num_hidden_layers"] as! Int) + 1
        try assertLoadFails(c, contains: ["missing tensor", "model.layers.\((c["num_hidden_layers"] as! Int) - 1)."])
    }

    func testMissingConfigField() throws {
        var c = try baseConfig()
        c.removeValue(forKey: "vocab_size")
        try assertLoadFails(c, contains: ["vocab_size"])
    }

    func testTokenOutOfRange() throws {
        let model = try ModelLoader.open(Self.root.appendingPathComponent("llama_gqa")).causalLM()
        XCTAssertThrowsError(try model.logits([1, 100_000])) { XCTAssertTrue("\($0)".contains("100000")) }
        XCTAssertThrowsError(try model.logits([])) { XCTAssertTrue("\($0)".contains("no input")) }
    }
}
