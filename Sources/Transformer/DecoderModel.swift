import Foundation

/// The part of a decoder layer that mixes information across positions (self-attention) and owns a cache layer.
public protocol TokenMixer: Sendable {
    /// Floats per position this mixer keeps in its ``KVCache/Layer`` (keys, values).
    var cacheWidths: (key: Int, value: Int) { get }
    /// `x` is `[n, hidden]` for positions `position..<position + n`; writes those rows of `cache`, attends over
    /// `0..<position + n`, and returns `[n, hidden]`.
    func callAsFunction(_ x: Tensor, cache: KVCache.Layer, position: Int) -> Tensor
}

/// The per-position part of a decoder layer (dense MLP or mixture of experts).
public protocol FeedForward: Sendable {
    /// `x` is `[n, hidden]`; returns `[n, hidden]`.
    func callAsFunction(_ x: Tensor) -> Tensor
    /// The same for `[k, hidden]` rows of k independent sequences (a batched decode step), each row computed as it
    /// would be alone (``Linear/rowwise(_:)``). Default: ``callAsFunction(_:)``.
    func rowwise(_ x: Tensor) -> Tensor
}

extension FeedForward {
    public func rowwise(_ x: Tensor) -> Tensor { self(x) }
}

extension SwiGLU: FeedForward {
    public func rowwise(_ x: Tensor) -> Tensor {
        down.rowwise(SwiGLU.activate(gateUp.rowwise(x), intermediate: intermediateSize))
    }
}

/// One pre-norm decoder layer: `x += mix(norm₁(x)); x += ffn(norm₂(x))`.
///
/// Gemma 2 also normalises each branch's output before the residual add ("sandwich" norms):
/// `x += postNorm₁(mix(norm₁(x))); x += postNorm₂(ffn(norm₂(x)))`.
public struct DecoderLayer: Sendable {
    public let attentionNorm: RMSNorm
    public let attention: any TokenMixer
    public let feedForwardNorm: RMSNorm
    public let feedForward: any FeedForward
    /// Norm of the attention output before the residual add (Gemma 2 `post_attention_layernorm`).
    public let postAttentionNorm: RMSNorm?
    /// Norm of the feed-forward output before the residual add (Gemma 2 `post_feedforward_layernorm`).
    public let postFeedForwardNorm: RMSNorm?

    public init(attentionNorm: RMSNorm, attention: any TokenMixer, feedForwardNorm: RMSNorm, feedForward: any FeedForward,
                postAttentionNorm: RMSNorm? = nil, postFeedForwardNorm: RMSNorm? = nil) {
        (self.attentionNorm, self.attention, self.feedForwardNorm, self.feedForward) =
            (attentionNorm, attention, feedForwardNorm, feedForward)
        (self.postAttentionNorm, self.postFeedForwardNorm) = (postAttentionNorm, postFeedForwardNorm)
    }

    public func callAsFunction(_ x: Tensor, cache: KVCache.Layer, position: Int) -> Tensor {
        forward(x, mix: { attention($0, cache: cache, position: position) }, feedForward: { feedForward($0) })
    }

    /// The layer's residual structure with its two sub-layers supplied: one sequence (``callAsFunction(_:cache:position:)``)
    /// or one row per sequence (``DecoderModel/decodeStep(_:caches:)``) run the same norms and adds.
    func forward(_ x: Tensor, mix: (Tensor) -> Tensor, feedForward: (Tensor) -> Tensor) -> Tensor {
        var a = mix(attentionNorm(x))
        if let postAttentionNorm { a = postAttentionNorm(a) }
        let h = x + a
        var f = feedForward(feedForwardNorm(h))
        if let postFeedForwardNorm { f = postFeedForwardNorm(f) }
        return h + f
    }
}

/// A decoder-only causal language model (Llama, Mixtral, DeepSeek-V3 share this skeleton):
///
///     x = embed(tokens)                      [n, hidden]    (× embeddingScale: Gemma's √hidden)
///     for layer in layers: x = layer(x)      attention reads/writes the KV cache
///     logits = lmHead(norm(x))               [n, vocab]     (→ cap·tanh(logits/cap) with a logit soft-cap)
public final class DecoderModel: CausalLanguageModel, @unchecked Sendable {
    public let architecture: String
    /// The token embedding table `[vocab, hidden]`, float or as stored (a GGUF's blocks, often shared with a tied
    /// ``lmHead``); rows are looked up with ``Linear/weightRows(_:)``.
    public let embeddingTable: Linear
    public let layers: [DecoderLayer]
    public let norm: RMSNorm
    public let lmHead: Linear
    /// Longest context the model was configured for (`max_position_embeddings`).
    public let maxPositions: Int
    /// Multiplier of the embedding rows (Gemma: √hidden, rounded to the activation dtype); nil for 1.
    public let embeddingScale: Float?
    /// Final-logit soft-cap (Gemma 2 `final_logit_softcapping`): `z ← cap·tanh(z / cap)`; nil for none.
    public let logitSoftcap: Float?

    /// A model over an embedding table (float or stored blocks, ``embeddingTable``); families build theirs with
    /// ``assemble(config:weights:vocab:hidden:layers:maxPositions:tiedByDefault:embeddingScale:logitSoftcap:norm:layer:)``.
    public init(architecture: String, embeddingTable: Linear, layers: [DecoderLayer], norm: RMSNorm, lmHead: Linear,
                maxPositions: Int, embeddingScale: Float? = nil, logitSoftcap: Float? = nil) {
        (self.architecture, self.embeddingTable, self.layers, self.norm, self.lmHead, self.maxPositions) =
            (architecture, embeddingTable, layers, norm, lmHead, maxPositions)
        (self.embeddingScale, self.logitSoftcap) = (embeddingScale, logitSoftcap)
    }

    /// The embedding table as floats `[vocab, hidden]` (dequantised into a new tensor when stored quantised).
    public var embedding: Tensor { embeddingTable.weight }

    public var vocabularySize: Int { lmHead.outFeatures }
    public var hiddenSize: Int { embeddingTable.inFeatures }

    /// A KV cache with this model's per-layer widths for `capacity` positions (default: the configured context).
    public func makeCache(capacity: Int? = nil) -> KVCache {
        KVCache(capacity: capacity ?? maxPositions, widths: layers.map { $0.attention.cacheWidths })
    }

    /// Like ``makeCache(capacity:)``, but a capacity that is not positive, beyond ``maxPositions``, or whose cache
    /// would not fit in this machine's memory is an error (``KVCache/checked(capacity:widths:)``), not a crash.
    public func checkedCache(capacity: Int) throws -> KVCache {
        guard capacity <= maxPositions else { throw GenerationError.contextTooLong(needed: capacity, maxPositions: maxPositions) }
        return try KVCache.checked(capacity: capacity, widths: layers.map { $0.attention.cacheWidths })
    }

    /// Final-norm hidden states `[n, hidden]` of `tokens` at positions `cache.length…` (appends them to the cache).
    public func hiddenStates(_ tokens: [Int], cache: KVCache) throws -> Tensor {
        guard !tokens.isEmpty else { throw GenerationError.emptyInput }
        try checkTokens(tokens)
        guard tokens.count <= maxPositions - cache.length else {
            throw GenerationError.contextTooLong(needed: cache.length + tokens.count, maxPositions: maxPositions)
        }
        try cache.reserve(tokens.count)
        let position = cache.length
        var x = embed(tokens)
        for (layer, store) in zip(layers, cache.layers) { x = layer(x, cache: store, position: position) }
        cache.advance(by: tokens.count)
        return norm(x)
    }

    public func forward(_ tokens: [Int], cache: KVCache) throws -> Tensor {
        capped(lmHead(try hiddenStates(tokens, cache: cache)))
    }

    /// The embedding rows of `tokens` `[n, hidden]` (only those rows are dequantised from a stored table), times
    /// ``embeddingScale``. The ids must be in range.
    func embed(_ tokens: [Int]) -> Tensor {
        let x = embeddingTable.weightRows(tokens)
        return embeddingScale.map { x * $0 } ?? x
    }

    /// Throws unless every id is in `0..<vocabulary` (the embedding table's rows).
    func checkTokens(_ tokens: [Int]) throws {
        for t in tokens where t < 0 || t >= embeddingTable.outFeatures {
            throw GenerationError.tokenOutOfRange(id: t, vocabularySize: embeddingTable.outFeatures)
        }
    }

    /// Applies ``logitSoftcap`` (if any) to logits.
    func capped(_ logits: Tensor) -> Tensor {
        guard let cap = logitSoftcap else { return logits }
        var out = logits
        out.withUnsafeMutableBufferPointer { Attention.softcap($0.baseAddress!, count: $0.count, cap: cap) }
        return out
    }

    /// Like ``forward(_:cache:)`` but projects only the last position onto the vocabulary: what generation needs,
    /// and for a long prompt the vocabulary projection of every other position is wasted work.
    public func lastLogits(_ tokens: [Int], cache: KVCache) throws -> Tensor {
        let h = try hiddenStates(tokens, cache: cache)
        return capped(lmHead(h.sliced(axis: 0, (tokens.count - 1)..<tokens.count))).reshaped([-1])
    }

    public var parameterCount: Int {
        var n = embeddingTable.parameterCount + norm.weight.count + (lmHead.sharesWeights(with: embeddingTable) ? 0 : lmHead.parameterCount)
        for l in layers { n += l.parameterCount }
        return n
    }
}

extension DecoderModel {
    /// The skeleton every decoder family shares, read in this one place (HF names):
    ///
    ///     model.embed_tokens.weight  [vocab, hidden]   kept as stored (a GGUF's blocks stay blocks)
    ///     layer(0) … layer(count − 1)                  the family's attention and feed-forward
    ///     model.norm                                   the final norm, built by `norm` (Gemma's is `1 + w`)
    ///     lm_head                                      or, tied, the embedding table itself (shared, not copied)
    ///
    /// The head is tied when `tie_word_embeddings` (default `tiedByDefault`: false for Llama and DeepSeek-V3, true for
    /// Gemma 2, as in their HF configs) is set and the checkpoint has no `lm_head.weight`. ``Llama`` (and through it
    /// Mistral, Mixtral, Qwen2/3, Phi-3), ``Gemma2`` and ``DeepSeekV3`` build their models here.
    static func assemble(config c: ModelConfig, weights w: Weights, vocab: Int, hidden: Int, layers count: Int,
                         maxPositions: Int, tiedByDefault: Bool = false, embeddingScale: Float? = nil,
                         logitSoftcap: Float? = nil, norm: (_ prefix: String) throws -> RMSNorm,
                         layer: (Int) throws -> DecoderLayer) throws -> DecoderModel {
        let embedding = try w.table("model.embed_tokens.weight", [vocab, hidden])
        let layers = try (0..<count).map(layer)
        let tied = (c.tieWordEmbeddings ?? tiedByDefault) && !w.contains("lm_head.weight")
        let head = tied ? embedding : try w.linear("lm_head", out: vocab, in: hidden)
        return DecoderModel(architecture: c.modelType, embeddingTable: embedding, layers: layers,
                            norm: try norm("model.norm"), lmHead: head, maxPositions: maxPositions,
                            embeddingScale: embeddingScale, logitSoftcap: logitSoftcap)
    }
}

/// A model that predicts the next token: what generation, the CLI and the benchmarks drive.
public protocol CausalLanguageModel: AnyObject, Sendable {
    var architecture: String { get }
    var vocabularySize: Int { get }
    /// Number of weights.
    var parameterCount: Int { get }
    /// Longest context the model was configured for.
    var maxPositions: Int { get }
    /// A cache for `capacity` positions (default: ``maxPositions``).
    func makeCache(capacity: Int?) -> KVCache
    /// A cache for `capacity` positions, or an error if `capacity` is not positive or the cache cannot be allocated.
    func checkedCache(capacity: Int) throws -> KVCache
    /// Runs `tokens` at positions `cache.length…`, appends them to the cache and returns logits `[n, vocab]`.
    func forward(_ tokens: [Int], cache: KVCache) throws -> Tensor
    /// The same pass, returning only the last position's logits `[vocab]`.
    func lastLogits(_ tokens: [Int], cache: KVCache) throws -> Tensor
}

extension CausalLanguageModel {
    public func lastLogits(_ tokens: [Int], cache: KVCache) throws -> Tensor {
        let logits = try forward(tokens, cache: cache)
        return logits.sliced(axis: 0, (tokens.count - 1)..<tokens.count).reshaped([-1])
    }

    /// The default: capacity must be positive and within ``maxPositions``; then ``makeCache(capacity:)``.
    public func checkedCache(capacity: Int) throws -> KVCache {
        guard capacity > 0 else { throw GenerationError.invalidCapacity(capacity) }
        guard capacity <= maxPositions else { throw GenerationError.contextTooLong(needed: capacity, maxPositions: maxPositions) }
        return makeCache(capacity: capacity)
    }

    /// Logits for `tokens` from scratch (a fresh cache sized to the input).
    public func logits(_ tokens: [Int]) throws -> Tensor {
        guard !tokens.isEmpty else { throw GenerationError.emptyInput }
        guard tokens.count <= maxPositions else {
            throw GenerationError.contextTooLong(needed: tokens.count, maxPositions: maxPositions)
        }
        return try forward(tokens, cache: checkedCache(capacity: tokens.count))
    }
}

/// Anything whose weights can be counted.
protocol ParameterCounting { var parameterCount: Int { get } }

extension DecoderLayer {
    var parameterCount: Int {
        attentionNorm.weight.count + feedForwardNorm.weight.count
            + (postAttentionNorm?.weight.count ?? 0) + (postFeedForwardNorm?.weight.count ?? 0)
            + ((attention as? ParameterCounting)?.parameterCount ?? 0)
            + ((feedForward as? ParameterCounting)?.parameterCount ?? 0)
    }
}

extension Linear: ParameterCounting {
    public var parameterCount: Int { inFeatures * outFeatures + (bias?.count ?? 0) }

    /// True when both hold the same weights storage (a tied embedding and output head).
    public func sharesWeights(with other: Linear) -> Bool {
        if let a = dense, let b = other.dense { return a.sharesStorage(with: b) }
        if let a = quantized, let b = other.quantized { return a.sharesStorage(with: b) }
        return false
    }
}

extension SwiGLU: ParameterCounting {
    public var parameterCount: Int { gateUp.parameterCount + down.parameterCount }
}

extension GroupedQueryAttention: ParameterCounting {
    public var parameterCount: Int {
        qkv.parameterCount + output.parameterCount + (queryNorm?.weight.count ?? 0) + (keyNorm?.weight.count ?? 0)
    }
}

