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
}

extension SwiGLU: FeedForward {}

/// One pre-norm decoder layer: `x += mix(norm₁(x)); x += ffn(norm₂(x))`.
public struct DecoderLayer: Sendable {
    public let attentionNorm: RMSNorm
    public let attention: any TokenMixer
    public let feedForwardNorm: RMSNorm
    public let feedForward: any FeedForward

    public init(attentionNorm: RMSNorm, attention: any TokenMixer, feedForwardNorm: RMSNorm, feedForward: any FeedForward) {
        (self.attentionNorm, self.attention, self.feedForwardNorm, self.feedForward) =
            (attentionNorm, attention, feedForwardNorm, feedForward)
    }

    public func callAsFunction(_ x: Tensor, cache: KVCache.Layer, position: Int) -> Tensor {
        let h = x + attention(attentionNorm(x), cache: cache, position: position)
        return h + feedForward(feedForwardNorm(h))
    }
}

/// A decoder-only causal language model (Llama, Mixtral, DeepSeek-V3 share this skeleton):
///
///     x = embed(tokens)                      [n, hidden]
///     for layer in layers: x = layer(x)      attention reads/writes the KV cache
///     logits = lmHead(norm(x))               [n, vocab]
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

    public convenience init(architecture: String, embedding: Tensor, layers: [DecoderLayer], norm: RMSNorm, lmHead: Linear, maxPositions: Int) {
        self.init(architecture: architecture, embeddingTable: Linear(weight: embedding), layers: layers, norm: norm,
                  lmHead: lmHead, maxPositions: maxPositions)
    }

    /// A model whose embedding table may be stored quantised (``embeddingTable``).
    public init(architecture: String, embeddingTable: Linear, layers: [DecoderLayer], norm: RMSNorm, lmHead: Linear,
                maxPositions: Int) {
        (self.architecture, self.embeddingTable, self.layers, self.norm, self.lmHead, self.maxPositions) =
            (architecture, embeddingTable, layers, norm, lmHead, maxPositions)
    }

    /// The embedding table as floats `[vocab, hidden]` (dequantised into a new tensor when stored quantised).
    public var embedding: Tensor { embeddingTable.weight }

    public var vocabularySize: Int { lmHead.outFeatures }
    public var hiddenSize: Int { embeddingTable.inFeatures }

    /// A KV cache with this model's per-layer widths for `capacity` positions (default: the configured context).
    public func makeCache(capacity: Int? = nil) -> KVCache {
        KVCache(capacity: capacity ?? maxPositions, widths: layers.map { $0.attention.cacheWidths })
    }

    /// Final-norm hidden states `[n, hidden]` of `tokens` at positions `cache.length…` (appends them to the cache).
    public func hiddenStates(_ tokens: [Int], cache: KVCache) throws -> Tensor {
        guard !tokens.isEmpty else { throw GenerationError.emptyInput }
        for t in tokens where t < 0 || t >= embeddingTable.outFeatures {
            throw GenerationError.tokenOutOfRange(id: t, vocabularySize: embeddingTable.outFeatures)
        }
        try cache.reserve(tokens.count)
        let position = cache.length
        var x = embeddingTable.weightRows(tokens)
        for (layer, store) in zip(layers, cache.layers) { x = layer(x, cache: store, position: position) }
        cache.advance(by: tokens.count)
        return norm(x)
    }

    public func forward(_ tokens: [Int], cache: KVCache) throws -> Tensor {
        lmHead(try hiddenStates(tokens, cache: cache))
    }

    /// Like ``forward(_:cache:)`` but projects only the last position onto the vocabulary: what generation needs,
    /// and for a long prompt the vocabulary projection of every other position is wasted work.
    public func lastLogits(_ tokens: [Int], cache: KVCache) throws -> Tensor {
        let h = try hiddenStates(tokens, cache: cache)
        return lmHead(h.sliced(axis: 0, (tokens.count - 1)..<tokens.count)).reshaped([-1])
    }

    public var parameterCount: Int {
        var n = embeddingTable.parameterCount + norm.weight.count + (lmHead.sharesWeights(with: embeddingTable) ? 0 : lmHead.parameterCount)
        for l in layers { n += l.parameterCount }
        return n
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

    /// Logits for `tokens` from scratch (a fresh cache sized to the input).
    public func logits(_ tokens: [Int]) throws -> Tensor {
        try forward(tokens, cache: makeCache(capacity: max(1, tokens.count)))
    }
}

/// Anything whose weights can be counted.
protocol ParameterCounting { var parameterCount: Int { get } }

extension DecoderLayer {
    var parameterCount: Int {
        attentionNorm.weight.count + feedForwardNorm.weight.count
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
    public var parameterCount: Int { qkv.parameterCount + output.parameterCount }
}

