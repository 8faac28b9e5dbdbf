import Foundation
import XCTest
@testable import Transformer

/// The decode path that multiplies one-row inputs straight from the GGUF's quantised blocks (``Linear/quantized``),
/// on the real SmolLM2-135M-Instruct Q4_1 file (skipped when absent; `scripts/get-model.sh` fetches it):
///   * the 64 greedy tokens of every fixture prompt still equal HF's (`Fixtures/smollm/reference.safetensors`, see
///     SmolLMTests);
///   * the logits of every decode step are within 1e-3 · max|logits| of the same model without quantised weights
///     (float products on the dequantised weights) run over the same tokens.
final class QuantizedDecodeTests: XCTestCase {
    static let modelPath: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return ProcessInfo.processInfo.environment["SMOLLM2_GGUF"]
            ?? root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }()

    /// A weight source that hides the quantised form of another, so every product runs in float.
    struct FloatOnly: WeightSource {
        let base: any WeightSource
        func contains(_ name: String) -> Bool { base.contains(name) }
        func tensor(_ name: String) throws -> Tensor { try base.tensor(name) }
    }

    nonisolated(unsafe) static var models: (quantized: DecoderModel, float: DecoderModel)?

    func loadModels() throws -> (quantized: DecoderModel, float: DecoderModel) {
        guard FileManager.default.fileExists(atPath: Self.modelPath) else {
            throw XCTSkip("SmolLM2 GGUF not found at \(Self.modelPath): run scripts/get-model.sh (scripts/test.sh does)")
        }
        if let m = Self.models { return m }
        let checkpoint = try GGUFCheckpoint(url: URL(fileURLWithPath: Self.modelPath))
        let config = try checkpoint.config()
        let m = (quantized: try Llama.build(config: config, weights: Weights(checkpoint)),
                 float: try Llama.build(config: config, weights: Weights(FloatOnly(base: checkpoint))))
        Self.models = m
        return m
    }

    func fixtures() throws -> (SafeTensorsFile, [String]) {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
            .appendingPathComponent("smollm/reference.safetensors")
        let file = try SafeTensorsFile(url: url)
        struct Prompt: Decodable { let name: String }
        struct Config: Decodable { let prompts: [Prompt] }
        let config = try JSONDecoder().decode(Config.self, from: Data(file.metadata["config"]!.utf8))
        return (file, config.prompts.map(\.name))
    }

    func testEveryLinearCarriesQuantisedWeights() throws {
        let (q, f) = try loadModels()
        for layer in q.layers {
            let attention = try XCTUnwrap(layer.attention as? GroupedQueryAttention)
            let mlp = try XCTUnwrap(layer.feedForward as? SwiGLU)
            for (name, linear) in [("qkv", attention.qkv), ("o", attention.output), ("gate|up", mlp.gateUp), ("down", mlp.down)] {
                let m = try XCTUnwrap(linear.quantized, name)
                XCTAssertEqual(m.type, .q4_1, name)
                XCTAssertEqual([m.rows, m.cols], linear.weight.shape, name)
                XCTAssertNil(linear.dense, "\(name): no float copy beside the blocks")
            }
        }
        let head = try XCTUnwrap(q.lmHead.quantized, "tied lm_head gets the quantised token embedding")
        XCTAssertEqual(head.type, .q8_0)
        XCTAssertTrue(q.lmHead.sharesWeights(with: q.embeddingTable))
        XCTAssertTrue(head.isMapped, "the tied head reads the mapped file in place")
        XCTAssertNil(q.embeddingTable.dense)
        XCTAssertNil(f.lmHead.quantized)
        XCTAssertNil((f.layers[0].feedForward as? SwiGLU)?.down.quantized)
        // The quantised blocks are exactly the float weights (Q and K rows unpermuted alike; fused in one order).
        let attention = try XCTUnwrap(q.layers[3].attention as? GroupedQueryAttention)
        XCTAssertEqual(attention.qkv.quantized!.dequantized(), attention.qkv.weight)
        XCTAssertEqual(q.lmHead.quantized!.dequantized(), q.embedding)
    }

    func testGreedyAndDecodeLogitsMatchFloatPath() throws {
        let (q, f) = try loadModels()
        let (file, names) = try fixtures()
        for name in names {
            let ids = try file.integers("\(name).ids")
            let greedy = try file.integers("\(name).greedy")
            // Greedy by hand: the prompt's logits give the first token, then each quantised decode step the next.
            let cache = q.makeCache(capacity: ids.count + greedy.count)
            var tokens = [try q.lastLogits(ids, cache: cache).argmax(axis: -1)[0]]
            var decoded: [Tensor] = []
            for _ in 1..<greedy.count {
                decoded.append(try q.lastLogits([tokens.last!], cache: cache))
                tokens.append(decoded.last!.argmax(axis: -1)[0])
            }
            XCTAssertEqual(tokens, greedy, "\(name): 64 greedy tokens with quantised decode")

            // The float model over the whole sequence at once: row ids.count + t predicts the token after decode step t.
            let reference = try f.forward(ids + greedy.dropLast(), cache: f.makeCache(capacity: ids.count + greedy.count))
            var worst: Float = 0
            for (t, logits) in decoded.enumerated() {
                let row = reference.sliced(axis: 0, (ids.count + t)..<(ids.count + t + 1)).reshaped([-1])
                let scale = row.withUnsafeBufferPointer { $0.map(abs).max()! }
                let diff = logits.maxAbsDifference(row)
                worst = max(worst, diff / scale)
                XCTAssertLessThanOrEqual(diff, 1e-3 * scale, "\(name) decode step \(t): max |diff| \(diff), max |logit| \(scale)")
            }
            print("SmolLM2 \(name): \(decoded.count) quantised decode steps, worst max |diff| / max |logit| = \(worst)")
        }
    }
}
