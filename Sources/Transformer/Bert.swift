import Foundation

/// BERT encoders as HF transformers runs them (`modeling_bert.py`, eval mode: dropout is identity).
///
///     x = LayerNorm(word[ids] + position[0..<n] + tokenType[types])    absolute, learned positions
///     for each layer: x = EncoderLayer(x)          post-LN, bidirectional, GELU (erf) — shared with RoFormer
///     pooled = tanh(pooler(x[0]))                   `BertPooler` (when the checkpoint has `pooler.dense`)
///
/// HF weight names, with or without the `bert.` prefix (`BertModel` saves none, the task models save `bert.`):
/// `embeddings.{word_embeddings, position_embeddings, token_type_embeddings, LayerNorm}`,
/// `encoder.layer.{i}.…` (see ``EncoderLayer``), `pooler.dense`. Only `position_embedding_type: absolute` is
/// supported; `is_decoder` / cross-attention configurations are not (the fields are not read).
public final class BertModel: @unchecked Sendable {
    public let vocabularySize: Int
    public let typeVocabularySize: Int
    public let hiddenSize: Int
    public let heads: Int
    /// Longest input (`max_position_embeddings`).
    public let maxPositions: Int
    public let activation: HiddenActivation

    public let wordEmbeddings: Tensor       // [vocab, hidden]
    public let positionEmbeddings: Tensor   // [maxPositions, hidden]
    public let tokenTypeEmbeddings: Tensor  // [typeVocab, hidden]
    public let embeddingNorm: LayerNorm
    public let layers: [EncoderLayer]
    /// `pooler.dense`, absent in checkpoints saved with `add_pooling_layer=False`.
    public let pooler: Linear?

    init(activation: HiddenActivation, heads: Int, wordEmbeddings: Tensor, positionEmbeddings: Tensor,
         tokenTypeEmbeddings: Tensor, embeddingNorm: LayerNorm, layers: [EncoderLayer], pooler: Linear?) {
        (vocabularySize, hiddenSize) = (wordEmbeddings.shape[0], wordEmbeddings.shape[1])
        (maxPositions, typeVocabularySize) = (positionEmbeddings.shape[0], tokenTypeEmbeddings.shape[0])
        (self.activation, self.heads) = (activation, heads)
        (self.wordEmbeddings, self.positionEmbeddings, self.tokenTypeEmbeddings, self.embeddingNorm) =
            (wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings, embeddingNorm)
        (self.layers, self.pooler) = (layers, pooler)
    }

    /// Builds the encoder from HF-named weights, validating the config (required: vocab_size, hidden_size,
    /// num_hidden_layers, num_attention_heads, intermediate_size, max_position_embeddings; HF defaults otherwise:
    /// type_vocab_size 2, hidden_act gelu, layer_norm_eps 1e-12). The `bert.` prefix is used when the checkpoint
    /// has it.
    public static func build(config c: ModelConfig, weights w: Weights) throws -> BertModel {
        let vocab = try c.require(c.vocabSize, "vocab_size")
        let hidden = try c.require(c.hiddenSize, "hidden_size")
        let layerCount = try c.require(c.numHiddenLayers, "num_hidden_layers")
        let heads = try c.require(c.numAttentionHeads, "num_attention_heads")
        let intermediate = try c.require(c.intermediateSize, "intermediate_size")
        let maxPositions = try c.require(c.maxPositionEmbeddings, "max_position_embeddings")
        let typeVocab = try c.require(c.typeVocabSize ?? 2, "type_vocab_size")
        try c.check(hidden % heads == 0, "num_attention_heads (\(heads)) does not divide hidden_size (\(hidden))")
        let eps = c.layerNormEps ?? 1e-12
        try c.check(eps >= 0 && eps.isFinite, "layer_norm_eps must be a finite non-negative number, got \(eps)")
        let positionType = c.positionEmbeddingType ?? "absolute"
        try c.check(positionType == "absolute", "position_embedding_type '\(positionType)' is not supported (absolute)")
        let activation = try HiddenActivation.named(c.hiddenAct ?? "gelu", modelType: c.modelType)

        let p = w.contains("bert.embeddings.word_embeddings.weight") ? "bert." : ""
        let e = "\(p)embeddings"
        let layers = try (0..<layerCount).map { i in
            try EncoderLayer.load(w, prefix: "\(p)encoder.layer.\(i)", hidden: hidden, intermediate: intermediate, eps: eps)
        }
        let pooler = w.contains("\(p)pooler.dense.weight")
            ? try w.linear("\(p)pooler.dense", out: hidden, in: hidden, bias: true) : nil
        return BertModel(
            activation: activation, heads: heads,
            wordEmbeddings: try w("\(e).word_embeddings.weight", [vocab, hidden]),
            positionEmbeddings: try w("\(e).position_embeddings.weight", [maxPositions, hidden]),
            tokenTypeEmbeddings: try w("\(e).token_type_embeddings.weight", [typeVocab, hidden]),
            embeddingNorm: LayerNorm(weight: try w("\(e).LayerNorm.weight", [hidden]), bias: try w("\(e).LayerNorm.bias", [hidden]),
                                     eps: Float(eps)),
            layers: layers, pooler: pooler)
    }

    /// Number of loaded weights.
    public var parameterCount: Int {
        var n = wordEmbeddings.count + positionEmbeddings.count + tokenTypeEmbeddings.count
        n += embeddingNorm.weight.count + (embeddingNorm.bias?.count ?? 0) + (pooler?.parameterCount ?? 0)
        return layers.reduce(n) { $0 + $1.parameterCount }
    }

    /// Last hidden states `[n, hidden]` (HF `last_hidden_state`). `tokenTypes` defaults to zeros; `attentionMask`
    /// (1 = token, 0 = padding) may only mask a suffix: padded keys are ignored by every query, padded rows are
    /// still computed (as HF does).
    public func encode(_ tokens: [Int], tokenTypes: [Int]? = nil, attentionMask: [Int]? = nil) throws -> Tensor {
        let (types, length) = try validateEncoderInput(
            tokens, tokenTypes: tokenTypes, attentionMask: attentionMask, vocabularySize: vocabularySize,
            typeVocabularySize: typeVocabularySize, maxPositions: maxPositions)
        let positions = positionEmbeddings.sliced(axis: 0, 0..<tokens.count)
        var x = embeddingNorm(wordEmbeddings.embedding(tokens) + positions + tokenTypeEmbeddings.embedding(types))
        let mask = length < tokens.count ? AttentionMask(keyLengths: [length]) : AttentionMask.none
        for layer in layers { x = layer(x, heads: heads, activation: activation, mask: mask) }
        return x
    }

    /// HF `pooler_output` `[hidden]`: tanh(dense(first token's hidden state)) of `hiddenStates` `[n, hidden]`.
    public func pooled(_ hiddenStates: Tensor) throws -> Tensor {
        guard let pooler else { throw ModelError.missingTensor("pooler.dense.weight (this checkpoint has no pooler)") }
        return pooler(hiddenStates.sliced(axis: 0, 0..<1)).tanh().reshaped([hiddenSize])
    }
}

/// `BertForSequenceClassification`: `logits = classifier(pooled)` on ``BertModel``'s pooler output.
///
/// HF weight names: `bert.…` (see ``BertModel``) and `classifier.{weight,bias}` `[num_labels, hidden]`.
public final class BertForSequenceClassification: @unchecked Sendable {
    public let bert: BertModel
    public let classifier: Linear
    public var numLabels: Int { classifier.outFeatures }

    init(bert: BertModel, classifier: Linear) { (self.bert, self.classifier) = (bert, classifier) }

    /// Builds the model (`num_labels` from the config or `id2label`, default 2).
    public static func build(config c: ModelConfig, weights w: Weights) throws -> BertForSequenceClassification {
        let bert = try BertModel.build(config: c, weights: w)
        guard bert.pooler != nil else { throw ModelError.missingTensor("bert.pooler.dense.weight") }
        let labels = try c.require(c.numLabels ?? 2, "num_labels")
        return BertForSequenceClassification(
            bert: bert, classifier: try w.linear("classifier", out: labels, in: bert.hiddenSize, bias: true))
    }

    public var parameterCount: Int { bert.parameterCount + classifier.parameterCount }

    /// Classification logits `[numLabels]` for one sequence.
    public func classify(_ tokens: [Int], tokenTypes: [Int]? = nil, attentionMask: [Int]? = nil) throws -> Tensor {
        let h = try bert.encode(tokens, tokenTypes: tokenTypes, attentionMask: attentionMask)
        return classifier(try bert.pooled(h).reshaped([1, bert.hiddenSize])).reshaped([numLabels])
    }
}

/// Sentence embeddings the way sentence-transformers computes them from a model folder
/// (e.g. all-MiniLM-L6-v2): WordPiece → ``BertModel`` → pooling → L2 normalisation.
///
/// - Pooling from `1_Pooling/config.json`: `pooling_mode_mean_tokens` (mean over the tokens, [CLS] and [SEP]
///   included) or `pooling_mode_cls_token` (the first token); mean without that file.
/// - Normalised to unit length (sentence-transformers' `Normalize` module; the CLI contract prints normalised
///   vectors), unless `normalize` is set false.
/// - Inputs longer than `max_seq_length` (`sentence_bert_config.json`, else `max_position_embeddings`) are
///   truncated as HF truncates: the first `max − 2` word pieces between [CLS] and [SEP].
public struct SentenceEmbedder: Sendable {
    public enum Pooling: String, Sendable { case mean, cls }

    public let model: BertModel
    public let tokenizer: WordPieceTokenizer
    public let pooling: Pooling
    public var normalize: Bool
    public let maxLength: Int

    public init(model: BertModel, tokenizer: WordPieceTokenizer, pooling: Pooling = .mean, normalize: Bool = true,
                maxLength: Int? = nil) {
        (self.model, self.tokenizer, self.pooling, self.normalize) = (model, tokenizer, pooling, normalize)
        self.maxLength = min(maxLength ?? model.maxPositions, model.maxPositions)
    }

    /// Loads a sentence-transformers / HF folder: `config.json` (model_type bert), safetensors, `tokenizer.json`,
    /// optional `1_Pooling/config.json` and `sentence_bert_config.json`.
    public static func load(directory: URL) throws -> SentenceEmbedder {
        let model: BertModel
        switch try ModelLoader.open(directory).model {
        case .encoder(let m): model = m
        case .bertClassifier(let m): model = m.bert
        default: throw ModelError.invalidConfig("\(directory.path): expected model_type bert (a sentence-embedding model)")
        }
        let tokenizerURL = directory.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokenizerURL.path) else {
            throw ModelError.io("\(directory.path) has no tokenizer.json")
        }
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: tokenizerURL)
        func json(_ path: String) throws -> [String: Any]? {
            let url = directory.appendingPathComponent(path)
            guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ModelError.invalidConfig("\(url.path) is not a JSON object")
            }
            return object
        }
        var pooling = Pooling.mean
        if let p = try json("1_Pooling/config.json") {
            let mean = p["pooling_mode_mean_tokens"] as? Bool ?? false, cls = p["pooling_mode_cls_token"] as? Bool ?? false
            let others = ["pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                          "pooling_mode_lasttoken"].filter { p[$0] as? Bool ?? false }
            guard mean != cls, others.isEmpty else {
                throw ModelError.invalidConfig("1_Pooling/config.json: exactly one of mean / cls pooling is supported, got "
                                               + "mean \(mean), cls \(cls)" + (others.isEmpty ? "" : ", \(others.joined(separator: ", "))"))
            }
            pooling = mean ? .mean : .cls
        }
        var maxLength: Int?
        if let s = try json("sentence_bert_config.json"), let m = (s["max_seq_length"] as? NSNumber)?.intValue {
            guard m >= 3 else { throw ModelError.invalidConfig("sentence_bert_config.json: max_seq_length \(m) < 3") }
            maxLength = m
        }
        return SentenceEmbedder(model: model, tokenizer: tokenizer, pooling: pooling, maxLength: maxLength)
    }

    /// Token ids of `text` as the model sees them: [CLS] pieces [SEP], truncated to ``maxLength``.
    public func tokens(_ text: String) -> [Int] { tokenizer.encode(text, maxLength: maxLength) }

    /// The embedding `[hidden]` of `text`.
    public func embed(_ text: String) throws -> Tensor {
        let ids = tokens(text)
        let h = try model.encode(ids)  // [n, hidden]
        var v: Tensor
        switch pooling {
        case .cls: v = h.sliced(axis: 0, 0..<1).reshaped([model.hiddenSize])
        case .mean: v = h.mean(axis: 0)
        }
        if normalize {
            let norm = v.withUnsafeBufferPointer { p in p.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
            v = v * Float(1 / max(norm, 1e-12))
        }
        return v
    }
}
