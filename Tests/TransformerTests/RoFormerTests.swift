import Foundation
import XCTest
@testable import Transformer

/// RoFormer sequence classification against Hugging Face transformers: the tiny random model in
/// `Fixtures/models/roformer` (written by `scripts/fixtures/models.py`; 2 layers, hidden 64, 4 heads, gelu,
/// rotary_value false, 3 labels) with HF's logits and hidden states in `reference.safetensors`.
///
/// Tolerances: logits and last hidden states |ours − HF| ≤ 1e-4 · max|HF| + 1e-5 (fp32, different summation
/// orders); suffix-padded vs unpadded input ≤ 1e-5 · max|logits| (the same arithmetic on the same rows: the
/// padded keys are masked, so only the GEMM blocking can differ).
final class RoFormerTests: XCTestCase {
    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("models").appendingPathComponent("roformer")

    struct Reference {
        let inputIds: [Int]
        let tokenTypes: [Int]
        let logits: Tensor
        let hiddenStates: Tensor  // [L+1, T, H]
    }

    func reference() throws -> Reference {
        let file = try SafeTensorsFile(url: Self.directory.appendingPathComponent("reference.safetensors"))
        return Reference(inputIds: try file.integers("input_ids"), tokenTypes: try file.integers("token_type_ids"),
                         logits: try file.tensor("logits"), hiddenStates: try file.tensor("hidden_states"))
    }

    func loadModel() throws -> RoFormerForSequenceClassification {
        guard case .sequenceClassifier(let model) = try ModelLoader.open(Self.directory).model else {
            XCTFail("roformer should load as a sequence classifier")
            throw ModelError.invalidConfig("not a sequence classifier")
        }
        return model
    }

    func maxAbs(_ t: Tensor) -> Float { t.withUnsafeBufferPointer { $0.map(abs).max() ?? 0 } }

    func assertClose(_ ours: Tensor, _ ref: Tensor, rel: Float, abs: Float, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.shape, ref.shape, "\(label): shape", file: file, line: line)
        guard ours.shape == ref.shape else { return }
        let scale = maxAbs(ref), diff = ours.maxAbsDifference(ref)
        XCTAssertLessThanOrEqual(diff, rel * scale + abs, "\(label): max |diff| \(diff), max |ref| \(scale)",
                                 file: file, line: line)
    }

    // MARK: Against Hugging Face

    func testLogitsMatchHF() throws {
        let model = try loadModel()
        let ref = try reference()
        XCTAssertEqual(model.numLabels, 3)
        let logits = try model.classify(ref.inputIds, tokenTypes: ref.tokenTypes)
        XCTAssertEqual(logits.shape, [3])
        assertClose(logits, ref.logits, rel: 1e-4, abs: 1e-5, "logits")
        print("roformer logits: max |ours - HF| = \(logits.maxAbsDifference(ref.logits)), max |HF| = \(maxAbs(ref.logits))")
        // Token types default to zeros (the fixture's), and an all-ones mask is no mask.
        let defaults = try model.classify(ref.inputIds)
        XCTAssertEqual(defaults.maxAbsDifference(logits), 0)
        let ones = try model.classify(ref.inputIds, attentionMask: [Int](repeating: 1, count: ref.inputIds.count))
        XCTAssertEqual(ones.maxAbsDifference(logits), 0)
        XCTAssertEqual(logits.argmax(), ref.logits.argmax())
    }

    func testLastHiddenStatesMatchHF() throws {
        let model = try loadModel()
        let ref = try reference()
        let hidden = try model.encode(ref.inputIds, tokenTypes: ref.tokenTypes)
        let L = model.layers.count, T = ref.inputIds.count
        XCTAssertEqual(ref.hiddenStates.shape, [L + 1, T, model.hiddenSize])
        let last = ref.hiddenStates.sliced(axis: 0, L..<(L + 1)).reshaped([T, model.hiddenSize])
        assertClose(hidden, last, rel: 1e-4, abs: 1e-5, "last hidden state")
        print("roformer last hidden state: max |ours - HF| = \(hidden.maxAbsDifference(last)), max |HF| = \(maxAbs(last))")
    }

    /// The checkpoint's frozen sinusoidal table (HF: sin half | cos half, angle p / 10000^(2i/headDim)) holds the
    /// angles the engine's RoPE (interleaved, base 10000 over the head dim) rotates by.
    func testSinusoidalTableMatchesRoPE() throws {
        let model = try loadModel()
        let table = try SafeTensorsFile(url: Self.directory.appendingPathComponent("model.safetensors"))
            .tensor("roformer.encoder.embed_positions.weight")
        let half = model.headDim / 2
        XCTAssertEqual(table.shape, [model.maxPositions, model.headDim])
        XCTAssertEqual(model.rope.layout, .interleaved)
        XCTAssertEqual(model.rope.rotaryDim, model.headDim)
        var worst = 0.0
        table.withUnsafeBufferPointer { t in
            for p in 0..<model.maxPositions {
                for i in 0..<half {
                    let angle = Double(p) * model.rope.inverseFrequencies[i]
                    worst = max(worst, abs(Double(t[p * model.headDim + i]) - sin(angle)),
                                abs(Double(t[p * model.headDim + half + i]) - cos(angle)))
                }
            }
        }
        XCTAssertLessThanOrEqual(worst, 1e-6)
    }

    func testParameterCount() throws {
        let model = try loadModel()
        let file = try SafeTensorsFile(url: Self.directory.appendingPathComponent("model.safetensors"))
        var expected = 0
        for name in file.names where name != "roformer.encoder.embed_positions.weight" {
            expected += file.info(name)!.shape.reduce(1, *)
        }
        XCTAssertEqual(model.parameterCount, expected)
    }

    // MARK: Padding

    /// Suffix padding is masked out of every key set, so the logits of a padded input equal the unpadded ones and
    /// the unpadded rows of the hidden states are unchanged, whatever the padding ids and types are.
    func testSuffixPaddingMatchesUnpadded() throws {
        let model = try loadModel()
        let ref = try reference()
        let T = ref.inputIds.count
        let plain = try model.classify(ref.inputIds)
        let plainHidden = try model.encode(ref.inputIds)
        for (pads, padId, padType) in [(1, 0, 0), (5, 0, 0), (64 - T, 77, 1)] {
            let ids = ref.inputIds + [Int](repeating: padId, count: pads)
            let types = [Int](repeating: 0, count: T) + [Int](repeating: padType, count: pads)
            let mask = [Int](repeating: 1, count: T) + [Int](repeating: 0, count: pads)
            let padded = try model.classify(ids, tokenTypes: types, attentionMask: mask)
            assertClose(padded, plain, rel: 1e-5, abs: 0, "logits with \(pads) pads")
            assertClose(padded, ref.logits, rel: 1e-4, abs: 1e-5, "padded logits vs HF")
            let hidden = try model.encode(ids, tokenTypes: types, attentionMask: mask)
            XCTAssertEqual(hidden.shape, [T + pads, model.hiddenSize])
            assertClose(hidden.sliced(axis: 0, 0..<T), plainHidden, rel: 1e-5, abs: 0, "hidden rows with \(pads) pads")
            // Without the mask the padding is attended to and the result changes.
            let unmasked = try model.classify(ids, tokenTypes: types)
            XCTAssertGreaterThan(unmasked.maxAbsDifference(plain), 1e-3, "padding must matter when not masked")
        }
    }

    /// Token types reach the embeddings and bidirectional attention sees later tokens.
    func testTokenTypesAndBidirectionality() throws {
        let model = try loadModel()
        let ref = try reference()
        let plain = try model.classify(ref.inputIds)
        let typed = try model.classify(ref.inputIds, tokenTypes: [Int](repeating: 1, count: ref.inputIds.count))
        XCTAssertGreaterThan(typed.maxAbsDifference(plain), 1e-3)
        // Changing the last token changes the first token's state (not causal).
        var changed = ref.inputIds
        changed[changed.count - 1] = (changed[changed.count - 1] + 1) % model.vocabularySize
        XCTAssertGreaterThan(try model.classify(changed).maxAbsDifference(plain), 1e-4)
    }

    // MARK: Bad input

    func assertInputError(_ body: @autoclosure () throws -> Tensor, contains words: [String],
                          file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            for w in words { XCTAssertTrue("\(error)".contains(w), "'\(error)' should mention \(w)", file: file, line: line) }
        }
    }

    func testBadInput() throws {
        let model = try loadModel()
        let ids = [101, 5, 7, 9]
        assertInputError(try model.classify([]), contains: ["no input"])
        assertInputError(try model.encode([]), contains: ["no input"])
        assertInputError(try model.classify([1, 128]), contains: ["128", "vocabulary"])
        assertInputError(try model.classify([-1]), contains: ["-1", "vocabulary"])
        assertInputError(try model.classify(ids, tokenTypes: [0, 0, 2, 0]), contains: ["token type", "2", "type_vocab_size"])
        assertInputError(try model.classify(ids, tokenTypes: [0, 0]), contains: ["tokenTypes", "2 entries", "4 tokens"])
        assertInputError(try model.classify(ids, attentionMask: [1, 1, 1]), contains: ["attentionMask", "3 entries"])
        assertInputError(try model.classify(ids, attentionMask: [1, 0, 1, 1]), contains: ["suffix", "position 1", "position 2"])
        assertInputError(try model.classify(ids, attentionMask: [0, 1, 1, 1]), contains: ["suffix"])
        assertInputError(try model.classify(ids, attentionMask: [0, 0, 0, 0]), contains: ["attentionMask", "no unmasked"])
        assertInputError(try model.classify(ids, attentionMask: [1, 2, 1, 1]), contains: ["0 or 1", "2"])
        assertInputError(try model.classify([Int](repeating: 3, count: 65)), contains: ["65", "max_position_embeddings", "64"])
        XCTAssertEqual(try model.classify([Int](repeating: 3, count: 64)).shape, [3])
    }

    // MARK: Bad config / checkpoint

    func baseConfig() throws -> [String: Any] {
        let data = try Data(contentsOf: Self.directory.appendingPathComponent("config.json"))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    func assertLoadFails(_ config: [String: Any], contains words: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("roformer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: Self.directory.appendingPathComponent("model.safetensors"),
                                         to: dir.appendingPathComponent("model.safetensors"))
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelLoader.open(dir).model, file: file, line: line) { error in
            for w in words { XCTAssertTrue("\(error)".contains(w), "'\(error)' should mention \(w)", file: file, line: line) }
        }
    }

    func testBadConfig() throws {
        var c = try baseConfig()
        c["num_attention_heads"] = 5
        try assertLoadFails(c, contains: ["roformer", "num_attention_heads (5)", "hidden_size (64)"])

        c = try baseConfig()
        c["num_attention_heads"] = 64  // head dim 1: no rotary pairs
        try assertLoadFails(c, contains: ["head dimension", "even"])

        for field in ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                      "max_position_embeddings"] {
            c = try baseConfig()
            c.removeValue(forKey: field)
            try assertLoadFails(c, contains: ["roformer", field])
        }

        c = try baseConfig()
        c["hidden_act"] = "gelu_10"
        try assertLoadFails(c, contains: ["hidden_act", "gelu_10"])

        c = try baseConfig()
        c["type_vocab_size"] = 0
        try assertLoadFails(c, contains: ["type_vocab_size", "positive"])
    }

    func testCheckpointDisagreeingWithConfig() throws {
        var c = try baseConfig()
        c["num_hidden_layers"] = 3
        try assertLoadFails(c, contains: ["missing tensor", "roformer.encoder.layer.2."])

        c = try baseConfig()
        c["intermediate_size"] = 96
        try assertLoadFails(c, contains: ["roformer.encoder.layer.0.intermediate.dense.weight", "shape"])

        c = try baseConfig()
        c["embedding_size"] = 32  // word embeddings are [128, 64]
        try assertLoadFails(c, contains: ["roformer.embeddings.word_embeddings.weight", "shape"])

        c = try baseConfig()
        c["max_position_embeddings"] = 32  // the saved sinusoidal table has 64 rows
        try assertLoadFails(c, contains: ["roformer.encoder.embed_positions.weight", "shape"])

        c = try baseConfig()
        c["num_labels"] = 4
        c.removeValue(forKey: "id2label")
        c.removeValue(forKey: "label2id")
        try assertLoadFails(c, contains: ["classifier.out_proj.weight", "shape"])
    }
}
