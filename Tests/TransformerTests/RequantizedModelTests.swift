import Foundation
import XCTest
@testable import Transformer

/// SmolLM2-135M-Instruct re-quantised by llama.cpp (Q4_K_M, Q5_K_M, Q6_K, Q8_0; `scripts/requant-smollm.sh` writes
/// them into models/ and the reference `Fixtures/smollm/requant_greedy.json`): on each file, the greedy continuation
/// of every prompt equals HF transformers' on the same file (HF dequantises the GGUF to f32 with gguf-py; we multiply
/// from the blocks in place). Token ids must be identical. Files that are absent are skipped.
final class RequantizedModelTests: XCTestCase {
    struct Fixture: Decodable {
        struct Run: Decodable { let ids: [Int]; let greedy: [Int] }
        struct File: Decodable {
            let file: String
            let bytes: Int
            let tensor_types: [String: Int]
            let hf: [String: Run]
        }
        let new_tokens: Int
        let files: [String: File]
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func fixture() throws -> Fixture {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
            .appendingPathComponent("smollm/requant_greedy.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func check(_ variant: String) throws {
        let f = try fixture()
        let entry = try XCTUnwrap(f.files[variant], variant)
        let url = Self.root.appendingPathComponent("models").appendingPathComponent(entry.file)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("\(url.path) is absent: run scripts/requant-smollm.sh --no-fixture")
        }
        let checkpoint = try GGUFCheckpoint(url: url)
        XCTAssertEqual(checkpoint.file.fileSize, entry.bytes, "\(variant): not the file the fixture was made from")
        var types: [String: Int] = [:]
        for info in checkpoint.file.tensors.values { types[info.type.name, default: 0] += 1 }
        XCTAssertEqual(types, entry.tensor_types, variant)
        let model = try Llama.build(config: try checkpoint.config(), weights: Weights(checkpoint))
        // Every matrix is multiplied from the file's blocks in place (no float copy), except the Q/K rows reordered.
        let mlp = try XCTUnwrap(model.layers[0].feedForward as? SwiGLU)
        XCTAssertNil(mlp.down.dense)
        XCTAssertEqual(mlp.down.quantized?.isMapped, true)
        for (name, run) in entry.hf.sorted(by: { $0.key < $1.key }) {
            let out = try model.generate(prompt: run.ids, options: GenerationOptions(maxNewTokens: run.greedy.count))
            XCTAssertEqual(out.tokens, run.greedy, "\(variant) \(name): \(f.new_tokens) greedy tokens")
        }
    }

    func testQ4_K_M() throws { try check("Q4_K_M") }
    func testQ5_K_M() throws { try check("Q5_K_M") }
    func testQ6_K() throws { try check("Q6_K") }
    func testQ8_0() throws { try check("Q8_0") }
}
