import Foundation

/// A llama-architecture GGUF file (as llama.cpp's converter writes it) seen as a Hugging Face checkpoint:
/// metadata → ``ModelConfig``, tensor names → HF names; matrices in a format with kernels are offered as stored
/// (``quantized(_:)``, read in place from the mapped file), everything else dequantised to f32 (``tensor(_:)``).
///
/// llama.cpp's converter permutes the rows of `attn_q` / `attn_k` within each head from HF's half-split RoPE order
/// `(pair half j, index i)` to interleaved `(i, j)`; ``tensor(_:)`` undoes that permutation, so the weights are
/// exactly HF's and the model runs the ordinary half-split Llama RoPE.
public struct GGUFCheckpoint: WeightSource {
    /// The underlying GGUF file (metadata, tokenizer arrays, raw tensors).
    public let file: GGUFFile
    let heads: Int
    let kvHeads: Int

    /// Opens `url` and checks that it is a llama-architecture model.
    public init(url: URL) throws {
        file = try GGUFFile(url: url)
        guard let arch = file.architecture else {
            throw ModelError.invalidConfig("\(url.path): GGUF has no general.architecture")
        }
        guard arch == "llama" else {
            throw ModelError.unsupportedModelType("\(arch) (GGUF: only the llama architecture is mapped)")
        }
        heads = try Self.int(file, "llama.attention.head_count")
        kvHeads = (try? Self.int(file, "llama.attention.head_count_kv")) ?? heads
    }

    static func int(_ file: GGUFFile, _ key: String) throws -> Int {
        guard let v = file[key]?.int else { throw ModelError.invalidConfig("\(file.url.lastPathComponent): GGUF metadata has no \(key)") }
        return v
    }

    /// The HF `config.json` this file corresponds to.
    public func config() throws -> ModelConfig {
        let f = file
        let vocab = f["llama.vocab_size"]?.int ?? f["tokenizer.ggml.tokens"]?.array?.count
        var dict: [String: Any] = [
            "model_type": "llama",
            "hidden_size": try Self.int(f, "llama.embedding_length"),
            "intermediate_size": try Self.int(f, "llama.feed_forward_length"),
            "num_hidden_layers": try Self.int(f, "llama.block_count"),
            "num_attention_heads": heads,
            "num_key_value_heads": kvHeads,
            "max_position_embeddings": f["llama.context_length"]?.int ?? 2048,
            "rms_norm_eps": f["llama.attention.layer_norm_rms_epsilon"]?.float ?? 1e-5,
            "rope_theta": f["llama.rope.freq_base"]?.float ?? 10_000,
            "tie_word_embeddings": !file.tensors.keys.contains("output.weight"),
        ]
        if let vocab { dict["vocab_size"] = vocab }
        if let d = f["llama.attention.key_length"]?.int { dict["head_dim"] = d }
        if let bos = f["tokenizer.ggml.bos_token_id"]?.int { dict["bos_token_id"] = bos }
        if let eos = f["tokenizer.ggml.eos_token_id"]?.int { dict["eos_token_id"] = eos }
        if let type = f["llama.rope.scaling.type"]?.string, type != "none" {
            var scaling: [String: Any] = ["rope_type": type]
            if let factor = f["llama.rope.scaling.factor"]?.float { scaling["factor"] = factor }
            if let original = f["llama.rope.scaling.original_context_length"]?.int {
                scaling["original_max_position_embeddings"] = original
            }
            dict["rope_scaling"] = scaling
        }
        return try JSONDecoder().decode(ModelConfig.self, from: JSONSerialization.data(withJSONObject: dict))
    }

    /// GGUF name for an HF weight name (nil when there is none).
    static func ggufName(_ hf: String) -> String? {
        let fixed = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                     "lm_head.weight": "output.weight"]
        if let f = fixed[hf] { return f }
        let parts = hf.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
        let rest = parts[3...].joined(separator: ".")
        let perLayer = [
            "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
            "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
            "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
            "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.bias": "attn_output.bias",
            "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight",
        ]
        return perLayer[rest].map { "blk.\(layer).\($0)" }
    }

    public func contains(_ name: String) -> Bool {
        Self.ggufName(name).map { file.tensors.keys.contains($0) } ?? false
    }

    public func tensor(_ name: String) throws -> Tensor {
        let g = try ggufName(name)
        let t = try file.tensor(g)
        guard let heads = permutedHeads(g) else { return t }
        let rows = t.shape[0], cols = t.count / max(rows, 1)
        return t.reshaped([rows, cols]).embedding(Self.unpermutedRows(rows, heads: heads)).reshaped(t.shape)
    }

    /// 2-D Q8_0 / Q4_0 / Q4_1 tensors as stored (rows unpermuted like ``tensor(_:)``); nil for other types.
    public func quantized(_ name: String) throws -> QuantizedMatrix? {
        let g = try ggufName(name)
        guard let q = try file.quantizedMatrix(g) else { return nil }
        guard let heads = permutedHeads(g) else { return q }
        defer { file.releasePages(of: g) }  // the reordered copy replaces the mapped bytes
        return q.permutingRows(Self.unpermutedRows(q.rows, heads: heads))
    }

    private func ggufName(_ name: String) throws -> String {
        guard let g = Self.ggufName(name), file.tensors.keys.contains(g) else { throw ModelError.missingTensor(name) }
        return g
    }

    /// The head count of a tensor whose rows llama.cpp permuted (`attn_q` / `attn_k` weights and biases), else nil.
    private func permutedHeads(_ g: String) -> Int? {
        if g.hasSuffix("attn_q.weight") || g.hasSuffix("attn_q.bias") { return heads }
        if g.hasSuffix("attn_k.weight") || g.hasSuffix("attn_k.bias") { return kvHeads }
        return nil
    }

    /// Inverse of llama.cpp's `permute` as a row order: row `[head, j, i]` (HF, j ∈ {0, 1}) of the result is row
    /// `[head, i, j]` of the file.
    static func unpermutedRows(_ rows: Int, heads: Int) -> [Int] {
        let half = rows / heads / 2
        return (0..<rows).map { r in
            let (head, rest) = r.quotientAndRemainder(dividingBy: 2 * half)
            let (j, i) = rest.quotientAndRemainder(dividingBy: half)
            return head * 2 * half + i * 2 + j
        }
    }
}
