import Foundation

/// Bad input to an encoder (``RoFormerForSequenceClassification``): each case names the offending argument.
public enum EncoderInputError: Error, CustomStringConvertible, Equatable {
    case emptyInput
    case tokenOutOfRange(id: Int, vocabularySize: Int)
    case tokenTypeOutOfRange(id: Int, typeVocabularySize: Int)
    /// `argument` (tokenTypes / attentionMask) has `found` entries for `expected` tokens.
    case lengthMismatch(argument: String, expected: Int, found: Int)
    case sequenceTooLong(length: Int, maxPositions: Int)
    case invalidAttentionMask(String)

    public var description: String {
        switch self {
        case .emptyInput: return "no input tokens"
        case .tokenOutOfRange(let id, let vocab): return "token id \(id) is outside the vocabulary (size \(vocab))"
        case .tokenTypeOutOfRange(let id, let n):
            return "token type id \(id) is outside the token type vocabulary (type_vocab_size \(n))"
        case .lengthMismatch(let argument, let expected, let found):
            return "\(argument) has \(found) entries but there are \(expected) tokens"
        case .sequenceTooLong(let length, let maxPositions):
            return "sequence of \(length) tokens is longer than max_position_embeddings (\(maxPositions))"
        case .invalidAttentionMask(let s): return "invalid attentionMask: \(s)"
        }
    }
}

/// RoFormer (Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding") with the sequence
/// classification head, as HF transformers `RoFormerForSequenceClassification` (eval mode: dropout is identity).
///
///     x = LayerNorm(word[ids] + tokenType[types])          [n, embedding_size]   (no absolute positions)
///     x = embeddings_project(x)                              only when embedding_size ≠ hidden_size
///     for each layer (post-LN, bidirectional):
///         q, k, v = x·Wqᵀ, x·Wkᵀ, x·Wvᵀ                      one fused GEMM
///         q, k (and v if rotary_value) ← interleaved RoPE, θᵢ = 10000^(−2i/headDim), positions 0..<n
///         a = FlashAttention(q, k, v), keys past the padding length masked
///         x = LayerNorm(a·Woᵀ + x)
///         x = LayerNorm(act(x·W1ᵀ)·W2ᵀ + x)
///     logits = out_proj(act(dense(x[0])))                   act = ACT2FN[hidden_act] (not tanh as in BERT)
///
/// HF weight names: `roformer.embeddings.{word_embeddings,token_type_embeddings,LayerNorm}`,
/// `roformer.embeddings_project` (optional), `roformer.encoder.layer.{i}.attention.self.{query,key,value}`,
/// `roformer.encoder.layer.{i}.attention.output.{dense,LayerNorm}`, `roformer.encoder.layer.{i}.intermediate.dense`,
/// `roformer.encoder.layer.{i}.output.{dense,LayerNorm}`, `classifier.{dense,out_proj}`. The checkpoint's
/// `roformer.encoder.embed_positions.weight` (HF's frozen sin|cos table, `[max_position_embeddings, headDim]`) is
/// only shape-checked: the same angles are tabulated by ``RoPE`` (`.interleaved`, base 10000).
///
/// Encoder-only: `is_decoder` / cross-attention configurations are not supported (the config field is not read).
public final class RoFormerForSequenceClassification: @unchecked Sendable {
    /// HF `ACT2FN[hidden_act]` entries this engine implements (shared with BERT).
    public typealias Activation = HiddenActivation

    /// One post-LN encoder layer (shared with BERT).
    public typealias Layer = EncoderLayer

    public let vocabularySize: Int
    public let typeVocabularySize: Int
    public let embeddingSize: Int
    public let hiddenSize: Int
    public let heads: Int
    public let headDim: Int
    /// Longest input (`max_position_embeddings`).
    public let maxPositions: Int
    public let numLabels: Int
    public let activation: Activation
    /// Rotary embedding applied to values too (`rotary_value`).
    public let rotaryValue: Bool

    public let wordEmbeddings: Tensor       // [vocab, embedding_size]
    public let tokenTypeEmbeddings: Tensor  // [type_vocab, embedding_size]
    public let embeddingNorm: LayerNorm
    public let embeddingProjection: Linear?
    public let layers: [Layer]
    public let rope: RoPE
    public let classifierDense: Linear
    public let classifierOutput: Linear

    init(vocabularySize: Int, typeVocabularySize: Int, embeddingSize: Int, hiddenSize: Int, heads: Int, maxPositions: Int,
         numLabels: Int, activation: Activation, rotaryValue: Bool, wordEmbeddings: Tensor, tokenTypeEmbeddings: Tensor,
         embeddingNorm: LayerNorm, embeddingProjection: Linear?, layers: [Layer], classifierDense: Linear,
         classifierOutput: Linear) {
        (self.vocabularySize, self.typeVocabularySize, self.embeddingSize, self.hiddenSize, self.heads) =
            (vocabularySize, typeVocabularySize, embeddingSize, hiddenSize, heads)
        headDim = hiddenSize / heads
        (self.maxPositions, self.numLabels, self.activation, self.rotaryValue) = (maxPositions, numLabels, activation, rotaryValue)
        (self.wordEmbeddings, self.tokenTypeEmbeddings, self.embeddingNorm, self.embeddingProjection) =
            (wordEmbeddings, tokenTypeEmbeddings, embeddingNorm, embeddingProjection)
        self.layers = layers
        (self.classifierDense, self.classifierOutput) = (classifierDense, classifierOutput)
        rope = RoPE(rotaryDim: headDim, base: 10_000, maxPositions: maxPositions, layout: .interleaved)
    }

    /// Builds the model from HF-named weights, validating the config (required: vocab_size, hidden_size,
    /// num_hidden_layers, num_attention_heads, intermediate_size, max_position_embeddings; HF defaults otherwise:
    /// embedding_size = hidden_size, type_vocab_size 2, hidden_act gelu, layer_norm_eps 1e-12, rotary_value false,
    /// num_labels 2).
    public static func build(config c: ModelConfig, weights w: Weights) throws -> RoFormerForSequenceClassification {
        let vocab = try c.require(c.vocabSize, "vocab_size")
        let hidden = try c.require(c.hiddenSize, "hidden_size")
        let layerCount = try c.require(c.numHiddenLayers, "num_hidden_layers")
        let heads = try c.require(c.numAttentionHeads, "num_attention_heads")
        let intermediate = try c.require(c.intermediateSize, "intermediate_size")
        let maxPositions = try c.require(c.maxPositionEmbeddings, "max_position_embeddings")
        let typeVocab = try c.require(c.typeVocabSize ?? 2, "type_vocab_size")
        let embeddingSize = try c.require(c.embeddingSize ?? hidden, "embedding_size")
        let numLabels = try c.require(c.numLabels ?? 2, "num_labels")
        try c.check(hidden % heads == 0, "num_attention_heads (\(heads)) does not divide hidden_size (\(hidden))")
        let headDim = hidden / heads
        try c.check(headDim % 2 == 0, "head dimension hidden_size / num_attention_heads = \(headDim) must be even for rotary embeddings")
        let eps = c.layerNormEps ?? 1e-12
        try c.check(eps >= 0 && eps.isFinite, "layer_norm_eps must be a finite non-negative number, got \(eps)")
        let activation = try HiddenActivation.named(c.hiddenAct ?? "gelu", modelType: c.modelType)

        func layerNorm(_ prefix: String, _ size: Int) throws -> LayerNorm {
            LayerNorm(weight: try w("\(prefix).weight", [size]), bias: try w("\(prefix).bias", [size]), eps: Float(eps))
        }

        let e = "roformer.embeddings"
        let word = try w("\(e).word_embeddings.weight", [vocab, embeddingSize])
        let types = try w("\(e).token_type_embeddings.weight", [typeVocab, embeddingSize])
        let embNorm = try layerNorm("\(e).LayerNorm", embeddingSize)
        let projection: Linear?
        if embeddingSize != hidden {
            projection = try w.linear("roformer.embeddings_project", out: hidden, in: embeddingSize, bias: true)
        } else {
            projection = nil
        }
        // HF's frozen sinusoidal table, if saved, must agree with the config (its values are recomputed by RoPE).
        _ = try w.optional("roformer.encoder.embed_positions.weight", [maxPositions, headDim])

        var layers: [Layer] = []
        for i in 0..<layerCount {
            layers.append(try EncoderLayer.load(w, prefix: "roformer.encoder.layer.\(i)", hidden: hidden,
                                                intermediate: intermediate, eps: eps))
        }
        return RoFormerForSequenceClassification(
            vocabularySize: vocab, typeVocabularySize: typeVocab, embeddingSize: embeddingSize, hiddenSize: hidden,
            heads: heads, maxPositions: maxPositions, numLabels: numLabels, activation: activation,
            rotaryValue: c.rotaryValue ?? false, wordEmbeddings: word, tokenTypeEmbeddings: types, embeddingNorm: embNorm,
            embeddingProjection: projection, layers: layers,
            classifierDense: try w.linear("classifier.dense", out: hidden, in: hidden, bias: true),
            classifierOutput: try w.linear("classifier.out_proj", out: numLabels, in: hidden, bias: true))
    }

    /// Number of loaded weights. HF's `num_parameters()` additionally counts the frozen sinusoidal table
    /// (`max_position_embeddings × headDim`), which is not a learned weight and is not loaded here.
    public var parameterCount: Int {
        var n = wordEmbeddings.count + tokenTypeEmbeddings.count + embeddingNorm.weight.count + (embeddingNorm.bias?.count ?? 0)
        n += embeddingProjection?.parameterCount ?? 0
        for l in layers { n += l.parameterCount }
        return n + classifierDense.parameterCount + classifierOutput.parameterCount
    }

    /// Checks the inputs; returns the token types (zeros by default) and the number of unpadded tokens.
    func validate(_ tokens: [Int], tokenTypes: [Int]?, attentionMask: [Int]?) throws -> (types: [Int], length: Int) {
        try validateEncoderInput(tokens, tokenTypes: tokenTypes, attentionMask: attentionMask, vocabularySize: vocabularySize,
                                 typeVocabularySize: typeVocabularySize, maxPositions: maxPositions)
    }

    /// Last hidden states `[n, hidden]` (HF `last_hidden_state`). `tokenTypes` defaults to zeros; `attentionMask`
    /// (1 = token, 0 = padding) may only mask a suffix: padded keys are ignored by every query, padded rows are
    /// still computed (as HF does).
    public func encode(_ tokens: [Int], tokenTypes: [Int]? = nil, attentionMask: [Int]? = nil) throws -> Tensor {
        let (types, length) = try validate(tokens, tokenTypes: tokenTypes, attentionMask: attentionMask)
        var x = embeddingNorm(wordEmbeddings.embedding(tokens) + tokenTypeEmbeddings.embedding(types))
        if let embeddingProjection { x = embeddingProjection(x) }
        let mask = length < tokens.count ? AttentionMask(keyLengths: [length]) : AttentionMask.none
        for layer in layers { x = forward(layer, x, mask: mask) }
        return x
    }

    /// Classification logits `[numLabels]` for one sequence (the head reads the first token's hidden state).
    public func classify(_ tokens: [Int], tokenTypes: [Int]? = nil, attentionMask: [Int]? = nil) throws -> Tensor {
        let hiddenStates = try encode(tokens, tokenTypes: tokenTypes, attentionMask: attentionMask)
        let first = hiddenStates.sliced(axis: 0, 0..<1)  // [1, hidden]
        return classifierOutput(activation(classifierDense(first))).reshaped([numLabels])
    }

    /// One post-LN layer on `x [n, hidden]`.
    func forward(_ l: Layer, _ x: Tensor, mask: AttentionMask) -> Tensor {
        l(x, heads: heads, activation: activation, mask: mask, rope: rope, rotaryValue: rotaryValue)
    }
}
