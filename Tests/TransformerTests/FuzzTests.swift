import Foundation
import XCTest
import Transformer

/// Hostile inputs through the public loaders: every case must end in a thrown error or in a successful load and a
/// 2-token forward pass, never in a crash. A crash (precondition, overflow trap, failed allocation) kills the test
/// process, which fails the suite: that is the check.
///
/// Small valid inputs are mutated with a seeded generator:
/// - a tiny llama GGUF (the `llama_gqa` fixture's weights written by ``GGUFTestWriter``, some tensors Q8_0 / F16,
///   with a tokenizer and chat template): metadata values removed or replaced by hostile ones of any type (0, −1,
///   2^31, 2^62, NaN, ±inf, strings, arrays), RoPE scaling keys added, tensor dims / types changed, tensors dropped
///   or renamed, count / length / dimension / offset fields overwritten (n_tensors, n_kv, string and array lengths
///   up to 2^64 − 1), bytes flipped, files truncated;
/// - the tiny HF model directories (`Fixtures/models/*`, plus a tiny `tokenizer.json` next to one of them):
///   `config.json` fields set to 0, negative, huge, NaN, ±Infinity, strings, null, …, RoPE scaling dictionaries
///   with hostile parameters; safetensors headers with hostile shapes, dtypes, offsets and header lengths;
///   `tokenizer.json` ids, merges and pre-tokenizers; random byte flips and truncations of every file;
/// - the committed GGUF / safetensors test files, byte-mutated, opened and every tensor read.
///
/// `TRANSFORMER_FUZZ_CASES` (default 300) sets the number of cases, `TRANSFORMER_FUZZ_SEED` the seed,
/// `TRANSFORMER_FUZZ_VERBOSE=1` prints each case before running it (so a crash's input can be identified), and
/// `TRANSFORMER_FUZZ_CORPUS=DIR` writes the mutated inputs under DIR instead of running them (what
/// `scripts/fuzz.sh` feeds to `transformer-cli`).
final class FuzzTests: XCTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let models = fixtures.appendingPathComponent("models")
    /// The TensorTests GGUF files (read from the source tree: they belong to the other test bundle).
    static let tensorFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TensorTests/Fixtures")

    /// SplitMix64: a small seeded generator, so every case can be reproduced from (seed, index).
    struct RNG: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }
        mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
    }

    /// What a case's input is and how it is exercised.
    enum Kind: String {
        case ggufModel, hfModel, ggufFile, safetensorsFile
    }

    struct Case {
        let index: Int
        let kind: Kind
        let path: URL
        let description: String
    }

    // MARK: Base inputs

    static let hfModels = ["llama_gqa", "llama_mqa", "llama_bias", "mixtral_window", "deepseek_v3_qlora",
                           "deepseek_v3_yarn", "roformer"]

    /// The tiny llama GGUF, with Q8_0 and F16 tensors among the F32 ones.
    static let baseGGUF: GGUFTestWriter = {
        try! GGUFTestWriter.llama(from: models.appendingPathComponent("llama_gqa")) { name in
            if name.hasSuffix("attn_q.weight") || name.hasSuffix("ffn_down.weight") { return 8 }
            if name.hasSuffix("attn_v.weight") { return 1 }
            return 0
        }
    }()

    /// A tiny byte-level BPE `tokenizer.json` (tokens "a"…"z", "Ġ", three merges, two specials).
    static let baseTokenizer: [String: Any] = {
        var vocab: [String: Any] = [:]
        for (i, c) in "abcdefghijklmnopqrstuvwxyzĠ".enumerated() { vocab[String(c)] = i }
        vocab["ab"] = 27
        vocab["abc"] = 28
        vocab["Ġa"] = 29
        return [
            "model": ["type": "BPE", "vocab": vocab, "merges": ["a b", "ab c", "Ġ a"]] as [String: Any],
            "added_tokens": [["id": 30, "content": "<|endoftext|>", "special": true],
                             ["id": 31, "content": "<|im_end|>", "special": true]],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true] as [String: Any],
            "normalizer": NSNull(),
        ]
    }()

    // MARK: Hostile values

    static let hostileInts: [Int64] = [0, 1, 2, 3, -1, -2, 7, 576, 1 << 31, (1 << 32) - 1, 1 << 32, 1 << 62,
                                       Int64.max, Int64.min]
    static let hostileFloats: [Double] = [.nan, .infinity, -.infinity, 0, -0.0, -1, 0.5, 1, 1e-30, 1e30, 1e300,
                                          -1e300, .leastNonzeroMagnitude]
    /// JSON literal texts (JSONSerialization cannot write NaN or Infinity, so values are spliced in as text).
    static let hostileJSON = ["0", "-1", "1", "2", "3", "7", "576", "2147483648", "4611686018427387904",
                              "9223372036854775807", "18446744073709551615", "-9223372036854775808", "1e308", "-1e308",
                              "1e999", "NaN", "Infinity", "-Infinity", "0.5", "-0.5", "1e-300", "\"x\"", "\"\"", "null",
                              "[]", "{}", "true", "false", "[1, 2]", "1.5"]

    static func hostileValue(_ rng: inout RNG) -> GGUFTestWriter.Value {
        let i = rng.pick(hostileInts), f = rng.pick(hostileFloats)
        switch rng.below(10) {
        case 0: return .uint32(UInt32(truncatingIfNeeded: i))
        case 1: return .int32(Int32(truncatingIfNeeded: i))
        case 2: return .uint64(UInt64(bitPattern: i))
        case 3: return .int64(i)
        case 4: return .float32(Float(f))
        case 5: return .float64(f)
        case 6: return .bool(rng.chance(0.5))
        case 7: return .string(rng.pick(["", "x", "llama", "yarn", "linear", "none", "gpt2"]))
        case 8: return .strings(rng.chance(0.5) ? [] : ["x", "y"])
        default: return .int32s(rng.chance(0.5) ? [] : [Int32(truncatingIfNeeded: i), -1])
        }
    }

    // MARK: Mutations

    /// A structurally mutated GGUF model file.
    static func mutateGGUF(_ rng: inout RNG) -> (bytes: [UInt8], description: String) {
        var w = baseGGUF
        var what: [String] = []
        let rounds = 1 + (rng.chance(0.3) ? rng.below(3) : 0)
        for _ in 0..<rounds {
            switch rng.below(6) {
            case 0, 1:  // a metadata value: removed or replaced
                let keys = w.metadata.map(\.key) + ["llama.attention.key_length", "llama.rope.scaling.factor",
                                                    "llama.rope.scaling.original_context_length", "llama.rope.scaling.type"]
                let key = rng.pick(keys)
                if rng.chance(0.25) {
                    w[key] = nil
                    what.append("remove \(key)")
                } else {
                    let v = hostileValue(&rng)
                    w[key] = v
                    what.append("\(key) = \(GGUFTestWriter.describe(v))")
                }
            case 2:  // RoPE scaling
                w["llama.rope.scaling.type"] = .string(rng.pick(["linear", "yarn", "none", "dynamic", ""]))
                w["llama.rope.scaling.factor"] = rng.chance(0.7) ? .float32(Float(rng.pick(hostileFloats))) : nil
                w["llama.rope.scaling.original_context_length"] = rng.chance(0.7)
                    ? .uint64(UInt64(bitPattern: rng.pick(hostileInts))) : nil
                what.append("rope scaling \(GGUFTestWriter.describe(w["llama.rope.scaling.type"])), "
                            + "factor \(GGUFTestWriter.describe(w["llama.rope.scaling.factor"])), "
                            + "original \(GGUFTestWriter.describe(w["llama.rope.scaling.original_context_length"]))")
            case 3:  // a tensor's dims
                let t = rng.below(w.tensors.count)
                var dims = w.tensors[t].dims
                switch rng.below(4) {
                case 0 where !dims.isEmpty: dims[rng.below(dims.count)] = Int(rng.pick([0, 1, 2, 3, 16, 31, 64, 576, 1 << 31, 1 << 40]))
                case 1: dims.append(rng.pick([1, 2, 0]))
                case 2 where !dims.isEmpty: dims.removeLast()
                default: dims.reverse()
                }
                what.append("\(w.tensors[t].name) dims \(w.tensors[t].dims) -> \(dims)")
                w.tensors[t].dims = dims
            case 4:  // a tensor's type
                let t = rng.below(w.tensors.count)
                let type = UInt32(rng.pick([0, 1, 2, 3, 8, 12, 14, 30, 41, 99]))
                what.append("\(w.tensors[t].name) type \(w.tensors[t].type) -> \(type)")
                w.tensors[t].type = type
            default:  // drop, rename or duplicate a tensor
                let t = rng.below(w.tensors.count)
                switch rng.below(3) {
                case 0:
                    what.append("drop \(w.tensors[t].name)")
                    w.tensors.remove(at: t)
                case 1:
                    let other = w.tensors[rng.below(w.tensors.count)].name
                    what.append("rename \(w.tensors[t].name) -> \(other)")
                    w.tensors[t].name = other
                default:
                    what.append("truncate data of \(w.tensors[t].name)")
                    w.tensors[t].data = Array(w.tensors[t].data.prefix(rng.below(w.tensors[t].data.count + 1)))
                }
            }
        }
        var (bytes, fields) = w.serialize()
        if rng.chance(0.25) {  // a count / length / dim / type / offset field overwritten
            let f = rng.pick(fields)
            let v = UInt64(bitPattern: rng.pick(hostileInts))
            for k in 0..<f.width { bytes[f.offset + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            what.append("field \(f.label) @\(f.offset) = \(f.width == 8 ? v : v & 0xFFFF_FFFF)")
        }
        if rng.chance(0.15) { what.append(mutateBytes(&bytes, &rng)) }
        return (bytes, what.joined(separator: "; "))
    }

    /// Random byte-level damage; returns a description.
    static func mutateBytes(_ bytes: inout [UInt8], _ rng: inout RNG) -> String {
        guard !bytes.isEmpty else { return "empty" }
        switch rng.below(4) {
        case 0:
            let n = 1 + rng.below(8)
            for _ in 0..<n { bytes[rng.below(bytes.count)] ^= UInt8(1 + rng.below(255)) }
            return "flip \(n) bytes"
        case 1:
            let at = rng.below(bytes.count)
            bytes.removeSubrange(at...)
            return "truncate at \(at)"
        case 2:
            let at = rng.below(bytes.count), n = 1 + rng.below(16)
            bytes.insert(contentsOf: (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
            return "insert \(n) bytes at \(at)"
        default:
            let at = rng.below(bytes.count), n = min(1 + rng.below(64), bytes.count - at)
            let fill: UInt8 = rng.pick([0, 0xFF])
            for k in at..<at + n { bytes[k] = fill }
            return "fill \(n) bytes at \(at) with \(fill)"
        }
    }

    /// `object` as JSON with `value` spliced in as literal text at `key` (nil value: key removed).
    static func json(_ object: [String: Any], setting key: String?, to literal: String?) throws -> Data {
        var o = object
        if let key { o[key] = literal == nil ? nil : "__FUZZ_HOSTILE__" }
        var text = String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
        if let literal { text = text.replacingOccurrences(of: "\"__FUZZ_HOSTILE__\"", with: literal) }
        return Data(text.utf8)
    }

    /// A mutated copy of an HF model directory under `dir`.
    static func mutateHF(_ rng: inout RNG, into dir: URL) throws -> String {
        let name = rng.pick(hfModels)
        let src = models.appendingPathComponent(name)
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: src.appendingPathComponent("config.json"))) as! [String: Any]
        var configData = try Data(contentsOf: src.appendingPathComponent("config.json"))
        var weights = [UInt8](try Data(contentsOf: src.appendingPathComponent("model.safetensors")))
        var tokenizer: Data? = nil
        var what = name
        if name == "llama_gqa" || rng.chance(0.1) {
            tokenizer = try JSONSerialization.data(withJSONObject: baseTokenizer, options: [.sortedKeys])
        }
        switch rng.below(10) {
        case 0...4:  // one config field: removed, or a hostile literal
            let extra = ["rope_theta", "head_dim", "partial_rotary_factor", "sliding_window", "num_key_value_heads",
                         "max_position_embeddings", "rms_norm_eps", "layer_norm_eps", "vocab_size", "n_group",
                         "topk_group", "num_experts_per_tok", "first_k_dense_replace", "n_shared_experts",
                         "qk_rope_head_dim", "kv_lora_rank", "eos_token_id", "model_type", "hidden_act", "tie_word_embeddings"]
            let key = rng.pick(config.keys.sorted() + extra)
            let literal: String? = rng.chance(0.15) ? nil : rng.pick(hostileJSON)
            configData = try json(config, setting: key, to: literal)
            what += ": config \(key) = \(literal ?? "<removed>")"
        case 5:  // RoPE scaling with hostile parameters
            let type = rng.pick(["linear", "yarn", "default", "dynamic", "llama3"])
            var scaling: [String: Any] = ["rope_type": type]
            let field = rng.pick(["factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
                                  "mscale_all_dim", "rope_theta", "partial_rotary_factor"])
            scaling["factor"] = 4.0
            scaling["original_max_position_embeddings"] = 64
            scaling[field] = "__FUZZ_HOSTILE__"
            let literal = rng.pick(hostileJSON)
            config[rng.chance(0.5) ? "rope_scaling" : "rope_parameters"] = scaling
            var text = String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self)
            text = text.replacingOccurrences(of: "\"__FUZZ_HOSTILE__\"", with: literal)
            configData = Data(text.utf8)
            what += ": rope \(type) \(field) = \(literal)"
        case 6, 7:  // the safetensors header
            what += ": safetensors " + (try mutateSafetensorsHeader(&weights, &rng))
        case 8 where tokenizer != nil:  // tokenizer.json
            var t = baseTokenizer
            var model = t["model"] as! [String: Any]
            var vocab = model["vocab"] as! [String: Any]
            let literal = rng.pick(hostileJSON)
            switch rng.below(5) {
            case 0: vocab[rng.pick(vocab.keys.sorted())] = "__FUZZ_HOSTILE__"; what += ": tokenizer vocab id = \(literal)"
            case 1: t["added_tokens"] = [["id": "__FUZZ_HOSTILE__", "content": "<x>", "special": true]]; what += ": added token id = \(literal)"
            case 2: model["merges"] = ["a", "a b c", "", "__FUZZ_HOSTILE__"]; what += ": merges with \(literal)"
            case 3: t["pre_tokenizer"] = "__FUZZ_HOSTILE__"; what += ": pre_tokenizer = \(literal)"
            default: model["type"] = "__FUZZ_HOSTILE__"; what += ": model type = \(literal)"
            }
            model["vocab"] = vocab
            t["model"] = model
            var text = String(decoding: try JSONSerialization.data(withJSONObject: t, options: [.sortedKeys]), as: UTF8.self)
            text = text.replacingOccurrences(of: "\"__FUZZ_HOSTILE__\"", with: literal)
            tokenizer = Data(text.utf8)
        default:  // bytes of one file
            switch rng.below(tokenizer == nil ? 2 : 3) {
            case 0:
                var b = [UInt8](configData)
                what += ": config.json " + mutateBytes(&b, &rng)
                configData = Data(b)
            case 1:
                what += ": model.safetensors " + mutateBytes(&weights, &rng)
            default:
                var b = [UInt8](tokenizer!)
                what += ": tokenizer.json " + mutateBytes(&b, &rng)
                tokenizer = Data(b)
            }
        }
        try configData.write(to: dir.appendingPathComponent("config.json"))
        try Data(weights).write(to: dir.appendingPathComponent("model.safetensors"))
        if let tokenizer { try tokenizer.write(to: dir.appendingPathComponent("tokenizer.json")) }
        return what
    }

    /// Rewrites a safetensors file's header with one hostile change (or its length field).
    static func mutateSafetensorsHeader(_ bytes: inout [UInt8], _ rng: inout RNG) throws -> String {
        let n = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        if rng.chance(0.2) {
            let v = UInt64(bitPattern: rng.pick(hostileInts + [Int64(n - 1), Int64(n + 1), Int64(bytes.count)]))
            for k in 0..<8 { bytes[k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            return "header length = \(v)"
        }
        var header = try JSONSerialization.jsonObject(with: Data(bytes[8..<8 + n])) as! [String: Any]
        let data = Array(bytes[(8 + n)...])
        let names = header.keys.filter { $0 != "__metadata__" }.sorted()
        let name = rng.pick(names)
        var entry = header[name] as! [String: Any]
        let literal = rng.pick(hostileJSON)
        let what: String
        switch rng.below(4) {
        case 0:
            var shape = entry["shape"] as! [Any]
            if shape.isEmpty || rng.chance(0.2) { shape.append("__FUZZ_HOSTILE__") } else { shape[rng.below(shape.count)] = "__FUZZ_HOSTILE__" }
            entry["shape"] = shape
            what = "\(name) shape with \(literal)"
        case 1:
            entry["dtype"] = rng.pick(["F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "F8_E4M3", "X", ""])
            what = "\(name) dtype \(entry["dtype"]!)"
        case 2:
            var offsets = entry["data_offsets"] as! [Any]
            offsets[rng.below(2)] = "__FUZZ_HOSTILE__"
            entry["data_offsets"] = offsets
            what = "\(name) data_offsets with \(literal)"
        default:
            header[rng.pick(names)] = "__FUZZ_HOSTILE__"
            what = "entry = \(literal)"
        }
        if !what.hasPrefix("entry") { header[name] = entry }
        var text = String(decoding: try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]), as: UTF8.self)
        text = text.replacingOccurrences(of: "\"__FUZZ_HOSTILE__\"", with: literal)
        while text.utf8.count % 8 != 0 { text += " " }
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(text.utf8.count).littleEndian) { out.append(contentsOf: $0) }
        out += Array(text.utf8) + data
        bytes = out
        return what
    }

    /// Case `index` of the run seeded with `seed`, its files written under `dir`.
    static func makeCase(index: Int, seed: UInt64, dir: URL) throws -> Case {
        var rng = RNG(state: seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(index))
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        switch rng.below(10) {
        case 0...4:
            let (bytes, what) = mutateGGUF(&rng)
            let url = dir.appendingPathComponent("model.gguf")
            try Data(bytes).write(to: url)
            return Case(index: index, kind: .ggufModel, path: url, description: "gguf model: \(what)")
        case 5...7:
            let model = dir.appendingPathComponent("model")
            let what = try mutateHF(&rng, into: model)
            return Case(index: index, kind: .hfModel, path: model, description: "hf \(what)")
        case 8:
            let src = rng.pick([tensorFixtures.appendingPathComponent("gguf/types.gguf.bin"),
                                tensorFixtures.appendingPathComponent("gguf/v2_align64.gguf.bin")])
            var bytes = [UInt8](try Data(contentsOf: src))
            let what = mutateBytes(&bytes, &rng)
            let url = dir.appendingPathComponent("file.gguf")
            try Data(bytes).write(to: url)
            return Case(index: index, kind: .ggufFile, path: url, description: "gguf file \(src.lastPathComponent): \(what)")
        default:
            let src = rng.pick(["rope_llama_linear4.safetensors", "attention/causal_n7_h8g8_d64.safetensors",
                                "models/llama_mqa/reference.safetensors"].map { fixtures.appendingPathComponent($0) })
            var bytes = [UInt8](try Data(contentsOf: src))
            let what = rng.chance(0.5) ? try mutateSafetensorsHeader(&bytes, &rng) : mutateBytes(&bytes, &rng)
            let url = dir.appendingPathComponent("file.safetensors")
            try Data(bytes).write(to: url)
            return Case(index: index, kind: .safetensorsFile, path: url, description: "safetensors \(src.lastPathComponent): \(what)")
        }
    }

    // MARK: Running a case

    /// Loads and exercises one case; returns normally on success, throws what the engine threw.
    static func run(_ c: Case) throws {
        switch c.kind {
        case .ggufModel:
            let t = try ModelLoader.open(c.path.path).textGenerator()
            _ = try t.model.logits([1, 2])
            var prompt = t.tokenizer.encode("ab c")
            if prompt.isEmpty { prompt = [1] }
            try t.generate(prompt: Array(prompt.prefix(4)), maxNewTokens: 2)
            if t.chatTemplate != nil { _ = try t.chatTokens([.user("hi")]) }
        case .hfModel:
            switch try ModelLoader.open(c.path).model {
            case .causalLM(let m):
                _ = try m.logits([0, 1])
                try m.generate(prompt: [0, 1], options: GenerationOptions(maxNewTokens: 2))
            case .sequenceClassifier(let m):
                _ = try m.classify([0, 1])
            case .encoder(let m):
                _ = try m.encode([0, 1])
            case .bertClassifier(let m):
                _ = try m.classify([0, 1])
            }
            if FileManager.default.fileExists(atPath: c.path.appendingPathComponent("tokenizer.json").path) {
                let t = try ModelLoader.open(c.path.path).textGenerator()
                let ids = t.tokenizer.encode("abc a")
                _ = t.tokenizer.decode(ids + [-1, 1 << 40])
                if !ids.isEmpty { try t.generate(prompt: ids, maxNewTokens: 2) }
            }
        case .ggufFile:
            let f = try GGUFFile(url: c.path)
            for name in f.tensorNames {
                _ = try? f.tensor(name)
                _ = try? f.quantizedMatrix(name)
            }
        case .safetensorsFile:
            let f = try SafeTensorsFile(url: c.path)
            for name in f.names {
                _ = try? f.tensor(name)
                _ = try? f.integers(name)
            }
        }
    }

    // MARK: The test

    func testHostileInputsAreErrorsNeverCrashes() throws {
        let env = ProcessInfo.processInfo.environment
        let count = env["TRANSFORMER_FUZZ_CASES"].flatMap(Int.init) ?? 300
        let seed = env["TRANSFORMER_FUZZ_SEED"].flatMap(UInt64.init) ?? 20_261_130
        let verbose = env["TRANSFORMER_FUZZ_VERBOSE"] == "1"
        let fm = FileManager.default
        if let corpus = env["TRANSFORMER_FUZZ_CORPUS"] {
            // Write the inputs only (scripts/fuzz.sh runs the CLI on them).
            let root = URL(fileURLWithPath: corpus)
            var index = Data()
            for i in 0..<count {
                let c = try Self.makeCase(index: i, seed: seed, dir: root.appendingPathComponent(String(format: "%05d", i)))
                index.append(Data("\(String(format: "%05d", i))\t\(c.kind.rawValue)\t\(c.path.path)\t\(c.description)\n".utf8))
            }
            try index.write(to: root.appendingPathComponent("cases.tsv"))
            // The unmutated bases, for the command-line argument cases.
            try Data(Self.baseGGUF.serialize().bytes).write(to: root.appendingPathComponent("base.gguf"))
            let hf = root.appendingPathComponent("base-hf")
            try? fm.removeItem(at: hf)
            try fm.copyItem(at: Self.models.appendingPathComponent("llama_gqa"), to: hf)
            try JSONSerialization.data(withJSONObject: Self.baseTokenizer, options: [.sortedKeys]).write(to: hf.appendingPathComponent("tokenizer.json"))
            return
        }
        let root = fm.temporaryDirectory.appendingPathComponent("transformer-fuzz-\(getpid())")
        defer { try? fm.removeItem(at: root) }
        var loaded = 0, failed = 0
        var kinds: [Kind: (ok: Int, err: Int)] = [:]
        for i in 0..<count {
            let dir = root.appendingPathComponent(String(i))
            let c = try Self.makeCase(index: i, seed: seed, dir: dir)
            if verbose { FileHandle.standardError.write(Data("fuzz case \(i): \(c.description)\n".utf8)) }
            do {
                try Self.run(c)
                if verbose { FileHandle.standardError.write(Data("  -> ok\n".utf8)) }
                loaded += 1
                kinds[c.kind, default: (0, 0)].ok += 1
            } catch {
                XCTAssertFalse("\(error)".isEmpty, "case \(i) (\(c.description)): an error with no description")
                if verbose { FileHandle.standardError.write(Data("  -> error: \(error)\n".utf8)) }
                failed += 1
                kinds[c.kind, default: (0, 0)].err += 1
            }
            try? fm.removeItem(at: dir)
        }
        print("fuzz: \(count) cases (seed \(seed)): \(loaded) loaded and ran, \(failed) rejected with an error, 0 crashes; "
              + kinds.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value.ok)/\($0.value.err)" }
                .joined(separator: ", "))
        if count >= 100 {  // the mutations must reach both outcomes, or the harness is not testing anything
            XCTAssertGreaterThan(loaded, 0, "no mutated input loaded: the mutations are too destructive")
            XCTAssertGreaterThan(failed, 0, "no mutated input was rejected: the mutations do nothing")
        }
    }

    /// The unmutated GGUF base is a faithful llama file: its F32 variant gives HF's logits for `llama_gqa`
    /// (`reference.safetensors`, tolerance as in ``ModelTests``: 1e-4 · max|HF| + 1e-5), so the fuzz cases start
    /// from a valid model.
    func testBaseGGUFMatchesHF() throws {
        let dir = Self.models.appendingPathComponent("llama_gqa")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-base-\(getpid()).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(try GGUFTestWriter.llama(from: dir).serialize().bytes).write(to: url)
        let ref = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
        let t = try ModelLoader.open(url.path).textGenerator()
        let logits = try t.model.logits(try ref.integers("input_ids"))
        let hf = try ref.tensor("logits")
        XCTAssertEqual(logits.shape, hf.shape)
        let scale = hf.withUnsafeBufferPointer { $0.map(abs).max() ?? 1 }
        XCTAssertLessThanOrEqual(logits.maxAbsDifference(hf), 1e-4 * scale + 1e-5)
        // The mixed Q8_0 / F16 base used by the fuzz cases loads and runs too.
        try Data(Self.baseGGUF.serialize().bytes).write(to: url)
        XCTAssertNoThrow(try ModelLoader.open(url.path).textGenerator().model.logits([1, 2]))
    }
}
