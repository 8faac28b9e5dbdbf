import Foundation
import XCTest
@testable import Transformer

/// The one loader (``ModelLoader/open(_:)``: a GGUF file or an HF folder → model, tokenizer, chat template, stop
/// tokens) and the one decoder skeleton (``DecoderModel/assemble``: embedding kept as stored, layers, final norm,
/// tied or separate head) that Llama, Mixtral, DeepSeek-V3 and Gemma 2 are built on.
///
/// Outside references: the HF transformers logits of the model fixtures (`scripts/fixtures/models.py`,
/// `scripts/fixtures/families.py`), tolerance |ours − HF| ≤ 1e-4 · max|HF| + 1e-5 as in ``ModelTests``.
final class ModelLoaderTests: ScratchTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let models = fixtures.appendingPathComponent("models")
    static let families = fixtures.appendingPathComponent("families")

    func assertClose(_ ours: Tensor, _ ref: Tensor, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.shape, ref.shape, "\(label): shape", file: file, line: line)
        guard ours.shape == ref.shape else { return }
        let scale = ref.withUnsafeBufferPointer { $0.map(abs).max() ?? 1 }
        let diff = ours.maxAbsDifference(ref)
        XCTAssertLessThanOrEqual(diff, 1e-4 * scale + 1e-5, "\(label): max |diff| \(diff), max |ref| \(scale)", file: file, line: line)
    }

    /// `llama_gqa` as its HF folder and as a GGUF file written from it: one call opens both, to the same config and
    /// to HF's logits; the GGUF also brings its tokenizer, chat template and stop tokens.
    func testGGUFFileAndHFFolderOpenAlike() throws {
        let dir = Self.models.appendingPathComponent("llama_gqa")
        let gguf = scratch.appendingPathComponent("llama_gqa.gguf")
        try Data(GGUFTestWriter.llama(from: dir).serialize().bytes).write(to: gguf)
        let folder = try ModelLoader.open(dir)
        let file = try ModelLoader.open(gguf.path)
        guard case .huggingFace = folder.source, case .gguf(let f) = file.source else { return XCTFail("sources") }
        XCTAssertEqual(f.url.path, gguf.path)
        for (a, b, field) in [(folder.config.hiddenSize, file.config.hiddenSize, "hidden_size"),
                              (folder.config.numHiddenLayers, file.config.numHiddenLayers, "num_hidden_layers"),
                              (folder.config.numAttentionHeads, file.config.numAttentionHeads, "num_attention_heads"),
                              (folder.config.numKeyValueHeads, file.config.numKeyValueHeads, "num_key_value_heads"),
                              (folder.config.intermediateSize, file.config.intermediateSize, "intermediate_size"),
                              (folder.config.vocabSize, file.config.vocabSize, "vocab_size")] {
            XCTAssertEqual(a, b, field)
        }
        XCTAssertEqual(file.config.rope.ropeTheta.map(Float.init), folder.config.rope.ropeTheta.map(Float.init))
        let reference = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
        let ids = try reference.integers("input_ids")
        assertClose(try folder.causalLM().logits(ids), try reference.tensor("logits"), "HF folder")
        assertClose(try file.causalLM().logits(ids), try reference.tensor("logits"), "GGUF file")

        // The folder has no tokenizer.json: it runs on ids, and asking for text says why not.
        XCTAssertNil(folder.tokenizer)
        assertError(["tokenizer.json"]) { _ = try folder.textGenerator() }
        // The GGUF writer's vocabulary starts <|endoftext|>, <|im_start|>, <|im_end|>, with EOS = 2 (<|im_end|>).
        let tokenizer = try XCTUnwrap(file.tokenizer)
        XCTAssertEqual(tokenizer.vocabularySize, folder.config.vocabSize)
        XCTAssertEqual(file.stopTokens, [0, 2])
        XCTAssertNil(file.chatTemplateError)
        let generator = try file.textGenerator()
        XCTAssertEqual(generator.stopTokens, [0, 2])
        let chat = try generator.chatTokens([.user("hi")])
        XCTAssertEqual(Array(chat.prefix(1)), [1], "the template starts with <|im_start|>")
    }

    /// An HF folder with tokenizer.json and a Jinja template in tokenizer_config.json (the chat fixture).
    func testHFFolderWithTokenizerAndTemplate() throws {
        let opened = try ModelLoader.open(Self.fixtures.appendingPathComponent("chat_model"))
        let tokenizer = try XCTUnwrap(opened.tokenizer)
        XCTAssertNotNil(opened.chatTemplate)
        XCTAssertNil(opened.chatTemplateError)
        if let eos = tokenizer.eosTokenId { XCTAssertTrue(opened.stopTokens.contains(eos)) }
        for eos in opened.config.eosTokenId ?? [] { XCTAssertTrue(opened.stopTokens.contains(eos)) }
        let generator = try opened.textGenerator()
        XCTAssertFalse(try generator.chatTokens([.user("Hello")]).isEmpty)
    }

    /// Every way opening can go wrong is a thrown error that names the culprit.
    func testErrorsNameWhatIsWrong() throws {
        assertError(["no such file or directory", "/nonexistent/model.gguf"]) { _ = try ModelLoader.open("/nonexistent/model.gguf") }

        // A broken tokenizer.json is an error naming the file (not silently a model without a tokenizer).
        let chat = scratch.appendingPathComponent("chat")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("chat_model"), to: chat)
        try Data("{\"model\": {\"type\": \"Nonsense\"}}".utf8).write(to: chat.appendingPathComponent("tokenizer.json"))
        assertError(["tokenizer.json", "Nonsense"]) { _ = try ModelLoader.open(chat) }

        // A chat template that does not parse still opens; the reason is kept and given when a chat needs it.
        try FileManager.default.removeItem(at: chat)
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent("chat_model"), to: chat)
        let configURL = chat.appendingPathComponent("tokenizer_config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["chat_template"] = "{% for m in messages %}{{ m['content'] }"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let opened = try ModelLoader.open(chat)
        XCTAssertNil(opened.chatTemplate)
        XCTAssertNotNil(opened.chatTemplateError)
        assertError(["chat template"]) { _ = try opened.textGenerator().chatTokens([.user("hi")]) }

        // Not a causal LM: a sequence classifier opens, but is not a generator.
        let roformer = try ModelLoader.open(Self.models.appendingPathComponent("roformer"))
        guard case .sequenceClassifier = roformer.model else { return XCTFail("roformer: not a sequence classifier") }
        assertError(["not a causal language model", "roformer"]) { _ = try roformer.causalLM() }

        // A GGUF without tokenizer metadata runs on ids; text generation names the missing key.
        var w = try GGUFTestWriter.llama(from: Self.models.appendingPathComponent("llama_gqa"))
        for key in ["tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.chat_template"] {
            w[key] = nil
        }
        let bare = scratch.appendingPathComponent("bare.gguf")
        try Data(w.serialize().bytes).write(to: bare)
        let noTokenizer = try ModelLoader.open(bare)
        XCTAssertNil(noTokenizer.tokenizer)
        XCTAssertEqual(try noTokenizer.causalLM().logits([1, 2]).shape[0], 2)
        assertError(["tokenizer.ggml.tokens"]) { _ = try noTokenizer.textGenerator() }
    }

    /// A checkpoint that offers every matrix as stored rows (F32 ``QuantizedMatrix``, the path a GGUF's blocks take),
    /// like a GGUF file does, but with HF names: the skeleton must keep the embedding as stored, tie the head to
    /// that same storage, and give HF's logits.
    struct StoredMatrices: WeightSource {
        let base: SafeTensorsCheckpoint
        func contains(_ name: String) -> Bool { base.contains(name) }
        func tensor(_ name: String) throws -> Tensor { try base.tensor(name) }
        func quantized(_ name: String) throws -> QuantizedMatrix? {
            let t = try base.tensor(name)
            guard t.rank == 2, name.hasSuffix(".weight") else { return nil }
            return try t.withUnsafeBufferPointer {
                try QuantizedMatrix(type: .f32, rows: t.shape[0], cols: t.shape[1], bytes: UnsafeRawBufferPointer($0))
            }
        }
    }

    func checkSkeleton(_ dir: URL, tied: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let config = try ModelConfig.load(directory: dir)
        let weights = Weights(StoredMatrices(base: try SafeTensorsCheckpoint(directory: dir)))
        guard case .causalLM(let lm) = try ModelLoader.build(config: config, weights: weights),
              let model = lm as? DecoderModel else { return XCTFail("\(dir.lastPathComponent): not a decoder", file: file, line: line) }
        XCTAssertNil(model.embeddingTable.dense, "\(dir.lastPathComponent): embedding copied to floats", file: file, line: line)
        XCTAssertNotNil(model.embeddingTable.quantized, file: file, line: line)
        XCTAssertEqual(model.lmHead.sharesWeights(with: model.embeddingTable), tied,
                       "\(dir.lastPathComponent): tied head", file: file, line: line)
        XCTAssertNil(model.lmHead.dense, "\(dir.lastPathComponent): head copied to floats", file: file, line: line)
        let reference = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
        assertClose(try model.logits(try reference.integers("input_ids")), try reference.tensor("logits"),
                    "\(dir.lastPathComponent) from stored matrices", file: file, line: line)
    }

    func testSkeletonLlamaTied() throws { try checkSkeleton(Self.models.appendingPathComponent("llama_mqa"), tied: true) }
    func testSkeletonMixtral() throws { try checkSkeleton(Self.models.appendingPathComponent("mixtral"), tied: false) }
    func testSkeletonDeepSeekV3() throws { try checkSkeleton(Self.models.appendingPathComponent("deepseek_v3_qlora"), tied: false) }
    func testSkeletonGemma2Tied() throws { try checkSkeleton(Self.families.appendingPathComponent("gemma2"), tied: true) }
}
