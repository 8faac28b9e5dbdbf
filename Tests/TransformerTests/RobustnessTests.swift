import Foundation
import XCTest
import Transformer

/// Regression tests for the crashes a fuzzing run found (issue 10, item 5: bad input is an error, never a crash):
/// one test per cause, each asserting that the input is rejected with an error whose message names the field or
/// tensor at fault. The inputs are the `llama_gqa` fixture as a GGUF (``GGUFTestWriter``) or as its HF directory,
/// with one field changed.
final class RobustnessTests: ScratchTestCase {
    static let llamaDir = FuzzTests.models.appendingPathComponent("llama_gqa")

    /// The llama GGUF after `edit`, written to disk.
    func gguf(_ edit: (inout GGUFTestWriter) -> Void) throws -> String {
        var w = try GGUFTestWriter.llama(from: Self.llamaDir)
        edit(&w)
        let url = scratch.appendingPathComponent("model-\(UUID().uuidString).gguf")
        try Data(w.serialize().bytes).write(to: url)
        return url.path
    }

    /// The llama HF directory with `edit` applied to its config.json.
    func hf(_ edit: (inout [String: Any]) -> Void) throws -> URL {
        let dir = scratch.appendingPathComponent("hf-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.llamaDir, to: dir)
        let url = dir.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        return dir
    }

    func loadGGUF(_ path: String) throws { _ = try ModelLoader.open(path).textGenerator().model.logits([1, 2]) }
    func loadHF(_ dir: URL) throws { _ = try ModelLoader.open(dir).causalLM().logits([0, 1]) }

    // 1. head_count_kv missing or not dividing the heads (was: precondition in Tensor.embedding via the Q/K
    //    un-permutation).
    func testGGUFHeadCountKVMissingOrNotDividing() throws {
        assertError(["llama.attention.head_count_kv", "blk.0.attn_k.weight"]) {
            try loadGGUF(try gguf { $0["llama.attention.head_count_kv"] = nil })
        }
        assertError(["llama.attention.head_count_kv (3) does not divide llama.attention.head_count (4)"]) {
            try loadGGUF(try gguf { $0["llama.attention.head_count_kv"] = .uint32(3) })
        }
        assertError(["llama.attention.head_count_kv", "got 0"]) {
            try loadGGUF(try gguf { $0["llama.attention.head_count_kv"] = .uint32(0) })
        }
    }

    // 2. A tensor whose dims disagree with the heads (was: division by zero in GGUFCheckpoint.unpermutedRows).
    func testGGUFPermutedTensorDimsDisagree() throws {
        let path = try gguf { w in
            let i = w.tensors.firstIndex { $0.name == "blk.1.attn_q.weight" }!
            w.tensors[i].dims = [32, 1]
        }
        assertError(["blk.1.attn_q.weight", "llama.attention.head_count"]) { try loadGGUF(path) }
    }

    // 3. rope.freq_base ≤ 1 or NaN, rope_theta ≤ 1 (was: RoPE.init precondition; NaN gave a JSON-serialisation message).
    func testRopeBaseAtMostOneOrNaN() throws {
        for bad: Float in [1, 0.5, 0, -1] {
            assertError(["llama.rope.freq_base"]) { try loadGGUF(try gguf { $0["llama.rope.freq_base"] = .float32(bad) }) }
        }
        assertError(["llama.rope.freq_base", "finite", "nan"]) {
            try loadGGUF(try gguf { $0["llama.rope.freq_base"] = .float32(.nan) })
        }
        assertError(["llama.rope.freq_base"]) { try loadGGUF(try gguf { $0["llama.rope.freq_base"] = .float64(.infinity) }) }
        do {
            _ = try ModelLoader.open(try gguf { $0["llama.rope.freq_base"] = .float32(.nan) }).textGenerator()
        } catch {
            XCTAssertFalse("\(error)".contains("JSON"), "\(error)")
        }
        assertError(["rope_theta", "got 1.0"]) { try loadHF(try hf { $0["rope_theta"] = 1.0 }) }
    }

    // 4. context_length 2^31 (was: a 274 GB allocation for the RoPE tables).
    func testHugeContextLengthIsRejectedAndLargeOneCostsNothing() throws {
        assertError(["llama.context_length", "2147483648"]) {
            try loadGGUF(try gguf { $0["llama.context_length"] = .uint64(1 << 31) })
        }
        assertError(["max_position_embeddings", "2147483648"]) {
            try loadHF(try hf { $0["max_position_embeddings"] = 1 << 31 })
        }
        // A large but legal context (2^24) loads without tabulating it: the RoPE table stops at 16384 positions.
        let model = try ModelLoader.open(try gguf { $0["llama.context_length"] = .uint32(1 << 24) }).textGenerator().model
        XCTAssertEqual(model.maxPositions, 1 << 24)
        XCTAssertEqual((model as? DecoderModel)?.layers.first.flatMap { ($0.attention as? GroupedQueryAttention)?.rope?.tabulatedPositions },
                       RoPE.maxTabulatedPositions)
        XCTAssertNoThrow(try model.logits([1, 2]))
    }

    // 5. More tokens than max_position_embeddings (was: RoPE.apply precondition), and generation lengths that
    //    overflow.
    func testInputLongerThanContext() throws {
        let model = try ModelLoader.open(try hf { $0["max_position_embeddings"] = 2 }).causalLM()
        assertError(["context overflow", "max_position_embeddings", "3 positions"]) { _ = try model.logits([0, 1, 2]) }
        let cache = model.makeCache(capacity: 8)
        _ = try model.forward([0, 1], cache: cache)
        assertError(["context overflow", "max_position_embeddings"]) { _ = try model.forward([0], cache: cache) }
        assertError(["context overflow"]) {
            try model.generate(prompt: [0], options: GenerationOptions(maxNewTokens: Int.max))
        }
        let partlyFilled = model.makeCache(capacity: 2)
        _ = try model.forward([0], cache: partlyFilled)
        assertError(["context overflow"]) {
            try model.generate(prompt: [0], options: GenerationOptions(maxNewTokens: Int.max), cache: partlyFilled)
        }
        XCTAssertEqual(try model.generate(prompt: [0], options: GenerationOptions(maxNewTokens: Int.min)).tokens, [])
        let gg = try ModelLoader.open(try gguf { $0["llama.context_length"] = .uint32(2) }).textGenerator().model
        assertError(["context overflow", "max_position_embeddings"]) { _ = try gg.logits([0, 1, 2]) }
        XCTAssertNoThrow(try gg.logits([0, 1]))
    }

    // 6. Linear scaling with factor 0, YaRN with original_max_position_embeddings 0 (was: RoPE.init preconditions).
    func testRopeScalingParameters() throws {
        assertError(["rope_scaling.factor", "got 0.0"]) {
            try loadHF(try hf { $0["rope_scaling"] = ["rope_type": "linear", "factor": 0.0] })
        }
        assertError(["rope_scaling.original_max_position_embeddings", "got 0"]) {
            try loadHF(try hf { $0["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 0] })
        }
        assertError(["llama.rope.scaling.factor"]) {
            try loadGGUF(try gguf {
                $0["llama.rope.scaling.type"] = .string("linear")
                $0["llama.rope.scaling.factor"] = .float32(0)
            })
        }
        assertError(["llama.rope.scaling.original_context_length"]) {
            try loadGGUF(try gguf {
                $0["llama.rope.scaling.type"] = .string("yarn")
                $0["llama.rope.scaling.factor"] = .float32(4)
                $0["llama.rope.scaling.original_context_length"] = .uint32(0)
            })
        }
    }

    // Central config validation: a few more fields, each named.
    func testConfigValidationNamesTheField() throws {
        assertError(["rms_norm_eps"]) { try loadHF(try hf { $0["rms_norm_eps"] = -1.0 }) }
        assertError(["num_key_value_heads (3) does not divide num_attention_heads (4)"]) {
            try loadHF(try hf { $0["num_key_value_heads"] = 3 })
        }
        assertError(["vocab_size", "got 0"]) { try loadHF(try hf { $0["vocab_size"] = 0 }) }
        assertError(["hidden_size", "absurdly large"]) { try loadHF(try hf { $0["hidden_size"] = 1 << 40 }) }
        assertError(["partial_rotary_factor"]) { try loadHF(try hf { $0["partial_rotary_factor"] = 1.5 }) }
        assertError(["llama.embedding_length", "must be an integer"]) {
            try loadGGUF(try gguf { $0["llama.embedding_length"] = .string("wide") })
        }
        assertError(["llama.block_count", "got -1"]) { try loadGGUF(try gguf { $0["llama.block_count"] = .int32(-1) }) }
    }

    // tokenizer.json ids that would size a huge table, or index before it.
    func testTokenizerIdsAreBounded() throws {
        for id in ["4611686018427387904", "-3", "1.5"] {
            let json = #"{"model": {"type": "BPE", "vocab": {"a": 0, "b": \#(id)}, "merges": []}, "#
                + #""pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}}"#
            XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: Data(json.utf8))) { error in
                XCTAssertTrue("\(error)".contains("model.vocab"), "\(error)")
            }
        }
    }

    // KV caches sized from user input.
    func testCacheCapacityIsChecked() throws {
        let model = try ModelLoader.open(Self.llamaDir).causalLM()
        assertError(["capacity", "got 0"]) { _ = try model.checkedCache(capacity: 0) }
        assertError(["context overflow", "max_position_embeddings"]) { _ = try model.checkedCache(capacity: 1 << 40) }
        assertError(["does not fit in memory"]) { _ = try KVCache.checked(capacity: 1 << 40, widths: [(key: 1 << 20, value: 1 << 20)]) }
        assertError(["does not fit in memory"]) { _ = try KVCache.checked(capacity: Int.max, widths: [(key: 2, value: 2)]) }
        XCTAssertEqual(try model.checkedCache(capacity: 4).capacity, 4)
    }

    /// Rows past the precomputed RoPE table are computed with the same arithmetic: rotating positions that straddle
    /// the table's end gives bit-identical results for the positions that are also in the table.
    func testRoPEBeyondTableMatchesTable() throws {
        let rope = RoPE(rotaryDim: 16, base: 10_000, maxPositions: 20_000, layout: .halfSplit)
        XCTAssertEqual(rope.tabulatedPositions, RoPE.maxTabulatedPositions)
        let x = Tensor.randomNormal([8, 2, 16], std: 1, seed: 3)
        var straddling = x
        rope.apply(&straddling, positionOffset: RoPE.maxTabulatedPositions - 4)  // 4 rows tabulated, 4 computed
        var tabulated = x.sliced(axis: 0, 0..<4)
        rope.apply(&tabulated, positionOffset: RoPE.maxTabulatedPositions - 4)
        XCTAssertEqual(straddling.sliced(axis: 0, 0..<4).maxAbsDifference(tabulated), 0)
    }

    // MARK: The GGUF families beyond llama (Mixtral, Qwen3-MoE, Gemma 2, Phi-3)

    /// The family fixture `name` (`Fixtures/families/gguf/<name>.q8_0.gguf.bin`) after `edit`, written to disk.
    func family(_ name: String, _ edit: (inout GGUFTestWriter) -> Void) throws -> String {
        let src = FamiliesTests.root.appendingPathComponent("gguf/\(name).q8_0.gguf.bin")
        var w = try GGUFTestWriter(reading: src)
        edit(&w)
        let url = scratch.appendingPathComponent("\(name)-\(UUID().uuidString).gguf")
        try Data(w.serialize().bytes).write(to: url)
        return url.path
    }

    func openAndRun(_ path: String) throws { _ = try ModelLoader.open(path).causalLM().logits([1, 2]) }

    func testGGUFFamilyFilesRoundTripThroughTheWriter() throws {
        // The rewritten, unedited files load and give the same logits as the originals (the edits below are the
        // only difference the errors can come from).
        for name in ["mixtral", "qwen3_moe", "gemma2", "phi3"] {
            let original = try ModelLoader.open(FamiliesTests.root.appendingPathComponent("gguf/\(name).q8_0.gguf.bin"))
            let rewritten = try ModelLoader.open(try family(name) { _ in })
            XCTAssertEqual(try rewritten.causalLM().logits([1, 2, 3]).maxAbsDifference(try original.causalLM().logits([1, 2, 3])),
                           0, name)
        }
    }

    func testGGUFExpertCountsAreChecked() throws {
        assertError(["blk.0.ffn_gate_inp.weight", "[4, 32]", "[8, 32]"]) {
            try openAndRun(try family("mixtral") { $0["llama.expert_count"] = .uint32(8) })
        }
        assertError(["num_experts_per_tok (9) exceeds num_local_experts (4)"]) {
            try openAndRun(try family("mixtral") { $0["llama.expert_used_count"] = .uint32(9) })
        }
        assertError(["has no llama.expert_used_count"]) {
            try openAndRun(try family("mixtral") { $0["llama.expert_used_count"] = nil })
        }
        assertError(["qwen3moe.expert_feed_forward_length", "got 0"]) {
            try openAndRun(try family("qwen3_moe") { $0["qwen3moe.expert_feed_forward_length"] = .uint32(0) })
        }
        assertError(["blk.0.ffn_gate_exps.weight", "[16, 32]", "[20, 32]"]) {
            try openAndRun(try family("qwen3_moe") { $0["qwen3moe.expert_feed_forward_length"] = .uint32(20) })
        }
    }

    func testGGUFGemma2AndPhi3MetadataIsChecked() throws {
        assertError(["gemma2.final_logit_softcapping", "finite"]) {
            try openAndRun(try family("gemma2") { $0["gemma2.final_logit_softcapping"] = .float32(.nan) })
        }
        assertError(["gemma2.attention.sliding_window"]) {
            try openAndRun(try family("gemma2") { $0["gemma2.attention.sliding_window"] = .uint32(0) })
        }
        assertError(["has no phi3.rope.scaling.original_context_length"]) {
            try openAndRun(try family("phi3") { $0["phi3.rope.scaling.original_context_length"] = nil })
        }
        assertError(["phi3.rope.dimension_count"]) {
            try openAndRun(try family("phi3") { $0["phi3.rope.dimension_count"] = .uint32(0) })
        }
        // LongRoPE factors of the wrong length (rotary_dim / 2 = 8 each).
        assertError(["long_factor", "8"]) {
            try openAndRun(try family("phi3") { w in
                let i = w.tensors.firstIndex { $0.name == "rope_factors_long.weight" }!
                w.tensors[i].dims = [5]
                w.tensors[i].data = Array(w.tensors[i].data.prefix(20))
            })
        }
    }
}
