import Foundation
import Transformer

/// A small GGUF v3 writer for tests: metadata and tensors in, file bytes out (layout as in `Sources/Tensor/GGUF.swift`).
///
/// It records where every count, length, dimension, type and offset field lands in the output (``fields``), so
/// the fuzz tests can overwrite exactly those with hostile values; and it builds a llama-architecture model file
/// from a Hugging Face checkpoint the way llama.cpp's converter does (``llama(from:config:types:)``), Q/K rows
/// permuted to interleaved order.
struct GGUFTestWriter {
    /// A metadata value with its GGUF type.
    enum Value {
        case uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool)
        case string(String)
        case strings([String]), int32s([Int32])

        var typeCode: UInt32 {
            switch self {
            case .uint32: 4
            case .int32: 5
            case .float32: 6
            case .bool: 7
            case .string: 8
            case .strings, .int32s: 9
            case .uint64: 10
            case .int64: 11
            case .float64: 12
            }
        }
    }

    /// `float32(nan)`, `uint64(2147483648)`, `strings(2)`: for case descriptions.
    static func describe(_ v: Value?) -> String {
        guard let v else { return "absent" }
        switch v {
        case .uint32(let x): return "uint32(\(x))"
        case .int32(let x): return "int32(\(x))"
        case .uint64(let x): return "uint64(\(x))"
        case .int64(let x): return "int64(\(x))"
        case .float32(let x): return "float32(\(x))"
        case .float64(let x): return "float64(\(x))"
        case .bool(let x): return "bool(\(x))"
        case .string(let x): return "string(\(x.debugDescription))"
        case .strings(let a): return "strings(\(a.count))"
        case .int32s(let a): return "int32s(\(a.count))"
        }
    }

    /// One tensor: ggml dims (innermost first), ggml type number, raw data.
    struct TensorEntry {
        var name: String
        var dims: [Int]
        var type: UInt32
        var data: [UInt8]
    }

    /// A field of the written file that holds a count, length, size, type or offset.
    struct Field {
        let offset: Int
        let width: Int
        let label: String
    }

    var metadata: [(key: String, value: Value)] = []
    var tensors: [TensorEntry] = []

    subscript(key: String) -> Value? {
        get { metadata.first { $0.key == key }?.value }
        set {
            if let i = metadata.firstIndex(where: { $0.key == key }) {
                if let newValue { metadata[i].value = newValue } else { metadata.remove(at: i) }
            } else if let newValue {
                metadata.append((key, newValue))
            }
        }
    }

    /// The file, and where its count/length/dimension/type/offset fields are.
    func serialize() -> (bytes: [UInt8], fields: [Field]) {
        var out: [UInt8] = []
        var fields: [Field] = []
        func put<T: FixedWidthInteger>(_ v: T, _ label: String? = nil) {
            if let label { fields.append(Field(offset: out.count, width: MemoryLayout<T>.size, label: label)) }
            withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
        }
        func putString(_ s: String, _ label: String) {
            put(UInt64(s.utf8.count), "\(label) length")
            out.append(contentsOf: s.utf8)
        }
        func putValue(_ v: Value, _ key: String) {
            switch v {
            case .uint32(let x): put(x)
            case .int32(let x): put(x)
            case .uint64(let x): put(x)
            case .int64(let x): put(x)
            case .float32(let x): put(x.bitPattern)
            case .float64(let x): put(x.bitPattern)
            case .bool(let x): put(UInt8(x ? 1 : 0))
            case .string(let s): putString(s, "\(key) string")
            case .strings(let a):
                put(UInt32(8), "\(key) element type")
                put(UInt64(a.count), "\(key) array count")
                for s in a { putString(s, "\(key) element") }
            case .int32s(let a):
                put(UInt32(5), "\(key) element type")
                put(UInt64(a.count), "\(key) array count")
                for x in a { put(x) }
            }
        }
        out.append(contentsOf: Array("GGUF".utf8))
        put(UInt32(3), "version")
        put(UInt64(tensors.count), "tensor_count")
        put(UInt64(metadata.count), "metadata_kv_count")
        for (key, value) in metadata {
            putString(key, "key")
            put(value.typeCode, "\(key) value type")
            putValue(value, key)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            offsets.append(offset)
            offset += (t.data.count + 31) / 32 * 32
        }
        for (t, o) in zip(tensors, offsets) {
            putString(t.name, "tensor name")
            put(UInt32(t.dims.count), "\(t.name) n_dims")
            for (i, d) in t.dims.enumerated() { put(UInt64(d), "\(t.name) dims[\(i)]") }
            put(t.type, "\(t.name) type")
            put(UInt64(o), "\(t.name) offset")
        }
        while out.count % 32 != 0 { out.append(0) }
        for t in tensors {
            out.append(contentsOf: t.data)
            while out.count % 32 != 0 { out.append(0) }
        }
        return (out, fields)
    }

    // MARK: Tensor encodings

    static func f32(_ values: [Float]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    static func f16(_ values: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for v in values { withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    /// ggml's `quantize_row_q8_0_ref`: per 32 values d = max|x| / 127, q = round(x / d).
    static func q8_0(_ values: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for start in stride(from: 0, to: values.count, by: 32) {
            let block = values[start..<min(start + 32, values.count)]
            let amax = block.map(abs).max() ?? 0
            let d = amax / 127
            let id: Float = d == 0 ? 0 : 1 / d
            withUnsafeBytes(of: Float16(d).bitPattern.littleEndian) { out.append(contentsOf: $0) }
            for x in block { out.append(UInt8(bitPattern: Int8((x * id).rounded()))) }
        }
        return out
    }

    // MARK: A llama model

    /// GGUF tensor name for an HF name, as llama.cpp's converter writes it (nil for names it does not map).
    static func ggufName(_ hf: String) -> String? {
        let fixed = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                     "lm_head.weight": "output.weight"]
        if let f = fixed[hf] { return f }
        let parts = hf.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
        let map = ["input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
                   "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
                   "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
                   "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
                   "mlp.down_proj.weight": "ffn_down.weight"]
        return map[parts[3...].joined(separator: ".")].map { "blk.\(layer).\($0)" }
    }

    /// llama.cpp's `permute` of Q/K rows: HF half-split order (head, j, i) → interleaved (head, i, j).
    static func permuteRows(_ t: Tensor, heads: Int) -> Tensor {
        let rows = t.shape[0], cols = t.count / rows, half = rows / heads / 2
        let src = t.withUnsafeBufferPointer { Array($0) }
        var dst = src
        for r in 0..<rows {
            let (head, rest) = r.quotientAndRemainder(dividingBy: 2 * half)
            let (j, i) = rest.quotientAndRemainder(dividingBy: half)
            let fileRow = head * 2 * half + i * 2 + j
            for c in 0..<cols { dst[fileRow * cols + c] = src[r * cols + c] }
        }
        return Tensor(shape: t.shape, values: dst)
    }

    /// A llama GGUF holding the weights of the HF `directory` (`config.json` + `model.safetensors`), with a
    /// byte-level tokenizer of `config.vocab_size` tokens. `type(ggufName)` picks each tensor's encoding
    /// (0 = F32, 1 = F16, 8 = Q8_0; default all F32).
    static func llama(from directory: URL, type: (String) -> UInt32 = { _ in 0 }) throws -> GGUFTestWriter {
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("config.json"))) as! [String: Any]
        func int(_ k: String) -> Int { (config[k] as! NSNumber).intValue }
        let heads = int("num_attention_heads"), kvHeads = int("num_key_value_heads"), vocab = int("vocab_size")
        var w = GGUFTestWriter()
        w["general.architecture"] = .string("llama")
        w["general.alignment"] = .uint32(32)
        w["llama.context_length"] = .uint32(UInt32(int("max_position_embeddings")))
        w["llama.embedding_length"] = .uint32(UInt32(int("hidden_size")))
        w["llama.feed_forward_length"] = .uint32(UInt32(int("intermediate_size")))
        w["llama.block_count"] = .uint32(UInt32(int("num_hidden_layers")))
        w["llama.attention.head_count"] = .uint32(UInt32(heads))
        w["llama.attention.head_count_kv"] = .uint32(UInt32(kvHeads))
        w["llama.rope.freq_base"] = .float32(Float((config["rope_theta"] as? NSNumber)?.doubleValue ?? 10_000))
        w["llama.attention.layer_norm_rms_epsilon"] = .float32(Float((config["rms_norm_eps"] as! NSNumber).doubleValue))
        w["llama.vocab_size"] = .uint32(UInt32(vocab))
        // Tokens: three specials, then single characters (byte-level symbols), then a few merges of them.
        var tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,!?'-Ġ").map(String.init)
        tokens += alphabet
        var merges: [String] = []
        var k = 0
        while tokens.count < vocab {
            let a = alphabet[k % 26], b = alphabet[(k / 26 + 1) % 26]
            if !tokens.contains(a + b) { tokens.append(a + b); merges.append("\(a) \(b)") }
            k += 1
        }
        tokens = Array(tokens.prefix(vocab))
        w["tokenizer.ggml.model"] = .string("gpt2")
        w["tokenizer.ggml.pre"] = .string("smollm")
        w["tokenizer.ggml.tokens"] = .strings(tokens)
        w["tokenizer.ggml.token_type"] = .int32s(tokens.indices.map { $0 < 3 ? 3 : 1 })
        w["tokenizer.ggml.merges"] = .strings(merges)
        w["tokenizer.ggml.bos_token_id"] = .uint32(1)
        w["tokenizer.ggml.eos_token_id"] = .uint32(2)
        w["tokenizer.chat_template"] = .string(
            "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        let file = try SafeTensorsFile(url: directory.appendingPathComponent("model.safetensors"))
        for hf in file.names.sorted() {
            guard let g = ggufName(hf) else { continue }
            var t = try checkpoint.tensor(hf)
            if g.hasSuffix("attn_q.weight") { t = permuteRows(t, heads: heads) }
            if g.hasSuffix("attn_k.weight") { t = permuteRows(t, heads: kvHeads) }
            let values = t.withUnsafeBufferPointer { Array($0) }
            let ty = t.rank == 2 ? type(g) : 0
            let data = ty == 1 ? f16(values) : ty == 8 ? q8_0(values) : f32(values)
            w.tensors.append(TensorEntry(name: g, dims: t.shape.reversed(), type: ty, data: data))
        }
        return w
    }
}

extension GGUFTestWriter {
    /// The metadata (in file order) and tensors (with their bytes) of the GGUF file at `url`, to be edited and written
    /// again. Numeric arrays become `int32s` / `strings` (the family fixtures hold no other arrays).
    init(reading url: URL) throws {
        let file = try GGUFFile(url: url)
        let bytes = [UInt8](try Data(contentsOf: url))
        func value(_ v: GGUFValue) -> Value {
            switch v {
            case .uint8(let x): return .uint32(UInt32(x))
            case .uint16(let x): return .uint32(UInt32(x))
            case .uint32(let x): return .uint32(x)
            case .int8(let x): return .int32(Int32(x))
            case .int16(let x): return .int32(Int32(x))
            case .int32(let x): return .int32(x)
            case .uint64(let x): return .uint64(x)
            case .int64(let x): return .int64(x)
            case .float32(let x): return .float32(x)
            case .float64(let x): return .float64(x)
            case .bool(let x): return .bool(x)
            case .string(let x): return .string(x)
            case .array(let a):
                if let strings = v.strings { return .strings(strings) }
                return .int32s(a.map { Int32(truncatingIfNeeded: $0.int ?? 0) })
            }
        }
        metadata = file.metadataKeys.filter { $0 != "general.alignment" }.map { ($0, value(file.metadata[$0]!)) }
        metadata.insert(("general.alignment", .uint32(32)), at: 0)
        tensors = file.tensors.values.sorted { $0.offset < $1.offset }.map { info in
            let start = file.dataOffset + info.offset
            return TensorEntry(name: info.name, dims: info.dimensions, type: info.type.rawValue,
                               data: Array(bytes[start..<(start + info.byteCount)]))
        }
    }
}
