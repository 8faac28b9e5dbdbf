import Foundation

/// A llama- (Llama, Mistral, Mixtral), qwen2-, qwen3-, qwen3moe-, gemma2- or phi3-architecture GGUF file (as
/// llama.cpp's converter writes it) seen as a Hugging Face checkpoint: metadata → ``ModelConfig``, tensor names →
/// HF names; matrices in a format with kernels are offered as stored (``quantized(_:)``, read in place from the
/// mapped file), everything else dequantised to f32 (``tensor(_:)``).
///
/// llama.cpp's converter permutes the rows of `attn_q` / `attn_k` within each head from HF's half-split RoPE order
/// `(pair half j, index i)` to interleaved `(i, j)`; ``tensor(_:)`` undoes that permutation, so the weights are
/// exactly HF's and the model runs the ordinary half-split Llama RoPE. Qwen2 / Qwen3 / Gemma 2 files are not
/// permuted (the converter permutes only llama-type models); their tensors are named as llama's, plus the q/k/v
/// biases (Qwen2) and `attn_q_norm` / `attn_k_norm` (Qwen3), and metadata keys start with the architecture's name.
///
/// - Mixtral is architecture `llama` with `llama.expert_count`: the router is `ffn_gate_inp`, and the experts of a
///   layer are stacked into 3-D `ffn_gate_exps` / `ffn_down_exps` / `ffn_up_exps` (HF `w1` / `w2` / `w3`; older
///   files: one `ffn_gate.{e}` … per expert); expert e is matrix e of the stack, read in place. Qwen3-MoE
///   (`qwen3moe`) stacks its experts the same way (HF `gate_proj` / `down_proj` / `up_proj`), with
///   `expert_feed_forward_length`; the top-k weights are renormalised (as llama.cpp does unless
///   `qwen3moe.expert_weights_norm` says otherwise) and a layer without `ffn_gate_inp` is dense.
/// - Phi-3 keeps HF's fused `attn_qkv` and gate | up `ffn_up` (split by rows in place by ``Phi3``) and stores the
///   LongRoPE factors as the tensors `rope_factors_short` / `rope_factors_long`, with
///   `phi3.rope.scaling.original_context_length` and `.attn_factor`.
/// - Gemma 2 stores every norm weight as the `1 + w` the model multiplies by (HF's loader subtracts the 1, so does
///   ``tensor(_:)``), its four norms as `attn_norm`, `post_attention_norm`, `ffn_norm` (HF
///   `pre_feedforward_layernorm`) and `post_ffw_norm`, and the soft-caps and sliding window in metadata. A GGUF has
///   no `query_pre_attn_scalar`: as llama.cpp, the key length is used, except for the 46-layer 27B (hidden / heads).
public struct GGUFCheckpoint: WeightSource {
    /// The underlying GGUF file (metadata, tokenizer arrays, raw tensors).
    public let file: GGUFFile
    /// `general.architecture`: one of ``supportedArchitectures``.
    public let architecture: String
    let heads: Int
    let kvHeads: Int
    /// Rows per head of `attn_q` / `attn_k` (`llama.attention.key_length`, else embedding_length / head_count), when
    /// the metadata determines it.
    let headDim: Int?

    /// GGUF architectures this mapping reads (``config()`` names the HF `model_type` each becomes: the same name, but
    /// `qwen3moe` → `qwen3_moe` and `llama` with experts → `mixtral`).
    public static let supportedArchitectures = ["llama", "qwen2", "qwen3", "qwen3moe", "gemma2", "phi3"]

    /// Opens `url` and checks that its architecture is mapped.
    public init(url: URL) throws {
        file = try GGUFFile(url: url)
        guard let arch = file.architecture else {
            throw ModelError.invalidConfig("\(url.path): GGUF has no general.architecture")
        }
        guard Self.supportedArchitectures.contains(arch) else {
            throw ModelError.unsupportedModelType(
                "\(arch) (GGUF: mapped architectures are \(Self.supportedArchitectures.joined(separator: ", ")))")
        }
        architecture = arch
        heads = try Self.size(file, "\(arch).attention.head_count")
        kvHeads = try Self.size(file, "\(arch).attention.head_count_kv", default: heads)
        guard heads % kvHeads == 0 else {
            throw Self.invalid(file, "\(arch).attention.head_count_kv (\(kvHeads)) does not divide \(arch).attention.head_count (\(heads))")
        }
        if let d = file["\(arch).attention.key_length"]?.int, d > 0 {
            headDim = d
        } else if let width = file["\(arch).embedding_length"]?.int, width > 0, width % heads == 0 {
            headDim = width / heads
        } else {
            headDim = nil
        }
    }

    static func invalid(_ file: GGUFFile, _ message: String) -> ModelError {
        ModelError.invalidConfig("\(file.url.lastPathComponent): GGUF metadata \(message)")
    }

    /// Integer metadata `key`, which must be present (or have a `default`), integral, positive and at most
    /// ``ModelConfig/maxSize``.
    static func size(_ file: GGUFFile, _ key: String, default fallback: Int? = nil) throws -> Int {
        guard let value = file[key] else {
            if let fallback { return fallback }
            throw invalid(file, "has no \(key)")
        }
        guard let v = value.int else { throw invalid(file, "\(key) must be an integer, got \(value)") }
        guard v > 0 && v <= ModelConfig.maxSize else {
            throw invalid(file, "\(key) must be in 1...\(ModelConfig.maxSize), got \(v)")
        }
        return v
    }

    /// Numeric metadata `key` (nil when absent), which must be finite.
    static func number(_ file: GGUFFile, _ key: String) throws -> Double? {
        guard let value = file[key] else { return nil }
        guard let v = value.float else { throw invalid(file, "\(key) must be a number, got \(value)") }
        guard v.isFinite else { throw invalid(file, "\(key) must be finite, got \(v)") }
        return v
    }

    /// Integer metadata `key` (nil when absent), e.g. a token id.
    static func integer(_ file: GGUFFile, _ key: String) throws -> Int? {
        guard let value = file[key] else { return nil }
        guard let v = value.int else { throw invalid(file, "\(key) must be an integer, got \(value)") }
        return v
    }

    /// The HF `config.json` this file corresponds to, read field by field from the metadata; a bad value is an error
    /// naming its GGUF key (``ModelConfig/validate()`` then checks the whole).
    public func config() throws -> ModelConfig {
        let f = file
        let a = architecture
        var c = ModelConfig(modelType: a == "qwen3moe" ? "qwen3_moe" : a)
        c.hiddenSize = try Self.size(f, "\(a).embedding_length")
        c.intermediateSize = try Self.size(f, "\(a).feed_forward_length")
        c.numHiddenLayers = try Self.size(f, "\(a).block_count")
        c.numAttentionHeads = heads
        c.numKeyValueHeads = kvHeads
        c.maxPositionEmbeddings = try Self.size(f, "\(a).context_length", default: 2048)
        c.rmsNormEps = try Self.number(f, "\(a).attention.layer_norm_rms_epsilon") ?? 1e-5
        c.rope.ropeTheta = try Self.number(f, "\(a).rope.freq_base") ?? 10_000
        if let theta = c.rope.ropeTheta, !(theta > 1) {
            throw Self.invalid(f, "\(a).rope.freq_base must be > 1, got \(theta)")
        }
        if let eps = c.rmsNormEps, !(eps > 0) {
            throw Self.invalid(f, "\(a).attention.layer_norm_rms_epsilon must be positive, got \(eps)")
        }
        c.tieWordEmbeddings = !file.tensors.keys.contains("output.weight")
        if a == "llama", let experts = f["llama.expert_count"], experts.int != 0 {
            c.modelType = "mixtral"
            c.numLocalExperts = try Self.size(f, "llama.expert_count")
            c.numExpertsPerTok = try Self.size(f, "llama.expert_used_count")
        }
        if a == "qwen3moe" {
            c.numExperts = try Self.size(f, "qwen3moe.expert_count")
            c.numExpertsPerTok = try Self.size(f, "qwen3moe.expert_used_count")
            c.moeIntermediateSize = try Self.size(f, "qwen3moe.expert_feed_forward_length")
            c.normTopkProb = f["qwen3moe.expert_weights_norm"]?.bool ?? true
            c.decoderSparseStep = 1
            c.mlpOnlyLayers = (0..<(c.numHiddenLayers ?? 0)).filter { file.tensors["blk.\($0).ffn_gate_inp.weight"] == nil }
        }
        if a == "phi3" {
            let dim = (c.hiddenSize ?? 0) / heads
            if f["phi3.rope.dimension_count"] != nil, dim > 0 {
                c.rope.partialRotaryFactor = Double(try Self.size(f, "phi3.rope.dimension_count")) / Double(dim)
            }
            if let long = file.tensors["rope_factors_long.weight"], let short = file.tensors["rope_factors_short.weight"] {
                c.rope.ropeType = "longrope"
                c.rope.longFactor = try file.tensor(long.name).scalars.map(Double.init)
                c.rope.shortFactor = try file.tensor(short.name).scalars.map(Double.init)
                c.rope.originalMaxPositionEmbeddings = try Self.size(f, "phi3.rope.scaling.original_context_length")
                c.rope.attentionFactor = try Self.number(f, "phi3.rope.scaling.attn_factor")
            }
        }
        if a == "gemma2" {
            c.attnLogitSoftcapping = try Self.number(f, "gemma2.attn_logit_softcapping")
            c.finalLogitSoftcapping = try Self.number(f, "gemma2.final_logit_softcapping")
            if f["gemma2.attention.sliding_window"] != nil {
                c.slidingWindow = try Self.size(f, "gemma2.attention.sliding_window")
            }
            let layers = try Self.size(f, "gemma2.block_count")
            let keyLength = try Self.size(f, "gemma2.attention.key_length", default: (c.hiddenSize ?? 0) / heads)
            c.queryPreAttnScalar = Double(layers == 46 ? (c.hiddenSize ?? 0) / heads : keyLength)
        }
        if f["\(a).vocab_size"] != nil {
            c.vocabSize = try Self.size(f, "\(a).vocab_size")
        } else if let tokens = f["tokenizer.ggml.tokens"]?.array {
            guard !tokens.isEmpty else { throw Self.invalid(f, "tokenizer.ggml.tokens is empty") }
            c.vocabSize = tokens.count
        } else if let rows = file.tensors["token_embd.weight"]?.shape.first, rows > 0 {
            c.vocabSize = rows
        }
        if f["\(a).attention.key_length"] != nil { c.headDim = try Self.size(f, "\(a).attention.key_length") }
        if let bos = try Self.integer(f, "tokenizer.ggml.bos_token_id") { c.bosTokenId = [bos] }
        if let eos = try Self.integer(f, "tokenizer.ggml.eos_token_id") { c.eosTokenId = [eos] }
        if let typeValue = f["\(a).rope.scaling.type"] {
            guard let type = typeValue.string else {
                throw Self.invalid(f, "\(a).rope.scaling.type must be a string, got \(typeValue)")
            }
            if type != "none" {
                c.rope.ropeType = type
                c.rope.factor = try Self.number(f, "\(a).rope.scaling.factor")
                if let factor = c.rope.factor, !(factor > 0) {
                    throw Self.invalid(f, "\(a).rope.scaling.factor must be positive, got \(factor)")
                }
                if f["\(a).rope.scaling.original_context_length"] != nil {
                    c.rope.originalMaxPositionEmbeddings = try Self.size(f, "\(a).rope.scaling.original_context_length")
                }
            }
        }
        return c
    }

    /// Where an HF weight lives in the file: a tensor, or matrix `expert` of a 3-D stack of experts.
    struct Location: Equatable {
        let name: String
        var expert: Int? = nil
    }

    /// The location of an HF weight name in a file of `architecture` (`file`, when given, picks between the stacked
    /// and the per-expert layouts of Mixtral experts); nil when the name has none.
    static func location(_ hf: String, architecture: String, file: GGUFFile?) -> Location? {
        let fixed = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                     "lm_head.weight": "output.weight"]
        if let f = fixed[hf] { return Location(name: f) }
        let parts = hf.split(separator: ".")
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
        let rest = parts[3...].joined(separator: ".")
        var perLayer = [
            "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
            "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
            "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
            "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
            "self_attn.v_proj.bias": "attn_v.bias", "self_attn.o_proj.bias": "attn_output.bias",
            "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight",
            "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
            "block_sparse_moe.gate.weight": "ffn_gate_inp.weight",
        ]
        if architecture == "phi3" {
            perLayer["self_attn.qkv_proj.weight"] = "attn_qkv.weight"
            perLayer["mlp.gate_up_proj.weight"] = "ffn_up.weight"
        }
        if architecture == "qwen3moe" { perLayer["mlp.gate.weight"] = "ffn_gate_inp.weight" }
        if architecture == "gemma2" {
            perLayer["post_attention_layernorm.weight"] = "post_attention_norm.weight"
            perLayer["pre_feedforward_layernorm.weight"] = "ffn_norm.weight"
            perLayer["post_feedforward_layernorm.weight"] = "post_ffw_norm.weight"
        }
        if let g = perLayer[rest] { return Location(name: "blk.\(layer).\(g)") }
        // Experts: Mixtral block_sparse_moe.experts.{e}.{w1,w2,w3}.weight, Qwen3-MoE mlp.experts.{e}.{gate,down,up}_proj.weight
        let p = rest.split(separator: ".")
        guard p.count == 5, p[0] == "block_sparse_moe" || p[0] == "mlp", p[1] == "experts", let e = Int(p[2]), p[4] == "weight",
              let kind = ["w1": "gate", "w2": "down", "w3": "up", "gate_proj": "gate", "down_proj": "down",
                          "up_proj": "up"][String(p[3])] else { return nil }
        let stacked = "blk.\(layer).ffn_\(kind)_exps.weight"
        if let file, file.tensors[stacked] == nil {
            return Location(name: "blk.\(layer).ffn_\(kind).\(e).weight")
        }
        return Location(name: stacked, expert: e)
    }

    /// `name` and the GGUF tensor it is read from (and which expert of a stack), for error messages.
    public func describe(_ name: String) -> String {
        guard let l = Self.location(name, architecture: architecture, file: file) else { return name }
        return "\(name) (GGUF tensor '\(l.name)'\(l.expert.map { ", expert \($0)" } ?? ""))"
    }

    public func contains(_ name: String) -> Bool {
        guard let l = Self.location(name, architecture: architecture, file: file), let info = file.tensors[l.name] else {
            return false
        }
        guard let e = l.expert else { return true }
        return info.dimensions.count == 3 && e < info.dimensions[2]
    }

    public func tensor(_ name: String) throws -> Tensor {
        let l = try location(name)
        if let e = l.expert {
            let t = try file.tensor(l.name)  // [experts, rows, cols]
            return t.sliced(axis: 0, e..<(e + 1)).reshaped(Array(t.shape.dropFirst()))
        }
        let g = l.name
        if architecture == "gemma2" && g.hasSuffix("norm.weight") {
            return try file.tensor(g) - Tensor.ones(file.tensors[g]!.shape)  // stored as 1 + w
        }
        guard let heads = permutedHeads(g) else { return try file.tensor(g) }
        let rows = try permutableRows(g, heads: heads)
        let t = try file.tensor(g)
        let cols = t.count / max(rows, 1)
        return t.reshaped([rows, cols]).embedding(Self.unpermutedRows(rows, heads: heads)).reshaped(t.shape)
    }

    /// 2-D matrices (and experts of a 3-D stack) in a format with kernels, as stored (rows unpermuted like
    /// ``tensor(_:)``); nil for other types.
    public func quantized(_ name: String) throws -> QuantizedMatrix? {
        let l = try location(name)
        if let e = l.expert { return try file.quantizedMatrix(l.name, index: e) }
        let g = l.name
        guard let heads = permutedHeads(g) else { return try file.quantizedMatrix(g) }
        _ = try permutableRows(g, heads: heads)
        guard let q = try file.quantizedMatrix(g) else { return nil }
        defer { file.releasePages(of: g) }  // the reordered copy replaces the mapped bytes
        return q.permutingRows(Self.unpermutedRows(q.rows, heads: heads))
    }

    /// The row count of the permuted tensor `g` (its outermost dimension), which must split into `heads` heads of an
    /// even number of rows; otherwise the file disagrees with its head counts and this throws naming both.
    private func permutableRows(_ g: String, heads: Int) throws -> Int {
        let shape = file.tensors[g]?.shape ?? []
        let rows = shape.first ?? 1
        let key = g.contains("attn_k") ? "llama.attention.head_count_kv" : "llama.attention.head_count"
        let name = "\(file.url.lastPathComponent): tensor '\(g)' has shape \(shape)"
        guard heads > 0, rows % (2 * heads) == 0 else {
            throw ModelError.invalidConfig("\(name): its \(rows) rows do not split into \(key) = \(heads) heads of an even size")
        }
        if let headDim {
            let (needed, overflow) = heads.multipliedReportingOverflow(by: headDim)
            if overflow || rows != needed {
                let absent = file[key] == nil ? " (absent, so equal to llama.attention.head_count)" : ""
                throw ModelError.invalidConfig("\(name): \(rows) rows, but \(key) = \(heads)\(absent) heads of "
                                               + "\(headDim) rows need \(overflow ? "more" : String(needed))")
            }
        }
        return rows
    }

    private func location(_ name: String) throws -> Location {
        guard let l = Self.location(name, architecture: architecture, file: file), let info = file.tensors[l.name] else {
            throw ModelError.missingTensor(name)
        }
        if let e = l.expert, info.dimensions.count != 3 || e >= info.dimensions[2] {
            throw ModelError.invalidConfig("\(file.url.lastPathComponent): tensor '\(l.name)' has shape \(info.shape), "
                                           + "which holds no expert \(e) (llama.expert_count)")
        }
        return l
    }

    /// The head count of a tensor whose rows llama.cpp permuted (`attn_q` / `attn_k` weights and biases), else nil.
    private func permutedHeads(_ g: String) -> Int? {
        guard architecture == "llama" else { return nil }
        if g.hasSuffix("attn_q.weight") || g.hasSuffix("attn_q.bias") { return heads }
        if g.hasSuffix("attn_k.weight") || g.hasSuffix("attn_k.bias") { return kvHeads }
        return nil
    }

    /// Inverse of llama.cpp's `permute` as a row order: row `[head, j, i]` (HF, j ∈ {0, 1}) of the result is row
    /// `[head, i, j]` of the file.
    static func unpermutedRows(_ rows: Int, heads: Int) -> [Int] {
        let half = rows / heads / 2
        guard half > 0 else { return Array(0..<rows) }  // nothing to permute (no rows); callers check the split
        return (0..<rows).map { r in
            let (head, rest) = r.quotientAndRemainder(dividingBy: 2 * half)
            let (j, i) = rest.quotientAndRemainder(dividingBy: half)
            return head * 2 * half + i * 2 + j
        }
    }
}
