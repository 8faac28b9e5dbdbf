import Foundation

/// Hugging Face folders for ``EncoderClassifier``: `config.json`, `model.safetensors` (F32, HF names), and the
/// tokenizer files (``WordLevelTokenizer/save(to:maxLength:)``).
///
/// - rope → `RoFormerForSequenceClassification` (`model_type: roformer`, `embedding_size = hidden_size`,
///   `rotary_value: false`; the frozen sin|cos table `roformer.encoder.embed_positions.weight` is written too).
/// - absolute → `BertForSequenceClassification` (`position_embedding_type: absolute`).
/// - sinusoidal / none → also `BertForSequenceClassification`: HF has no class for them, but a BERT whose
///   `position_embeddings` table holds the fixed sinusoids (scaled, see ``PositionEncoding/sinusoidal``) or zeros computes exactly the same function, so HF loads
///   and runs it unchanged. The extra config key `transformer_engine_position` records the scheme (HF keeps unknown
///   keys as attributes), so the engine freezes the table again on `--resume`.
///
/// Every config sets `attention_probs_dropout_prob: 0` (the engine does not drop attention probabilities),
/// `hidden_act: gelu` (erf), `layer_norm_eps: 1e-12`, `pad_token_id: 0`, and `id2label` / `label2id` with the
/// label strings.
public enum HFExport {
    /// Extra config key naming the position scheme.
    public static let positionKey = "transformer_engine_position"

    /// `config.json` contents for `model` with `labels` (index = class id).
    public static func configJSON(_ c: EncoderClassifierConfig, labels: [String]) -> [String: Any] {
        var id2label: [String: String] = [:], label2id: [String: Int] = [:]
        for (i, l) in labels.enumerated() { id2label[String(i)] = l; label2id[l] = i }
        var j: [String: Any] = [
            "vocab_size": c.vocabSize, "hidden_size": c.hiddenSize, "num_hidden_layers": c.layers,
            "num_attention_heads": c.heads, "intermediate_size": c.intermediateSize, "hidden_act": "gelu",
            "hidden_dropout_prob": Double(c.dropout), "attention_probs_dropout_prob": 0.0,
            "max_position_embeddings": c.maxPositions, "type_vocab_size": c.typeVocabSize,
            "initializer_range": 0.02, "layer_norm_eps": Double(c.layerNormEps), "pad_token_id": 0,
            "id2label": id2label, "label2id": label2id, "problem_type": "single_label_classification",
            "torch_dtype": "float32", positionKey: c.position.rawValue,
        ]
        if c.position == .rope {
            j["model_type"] = "roformer"
            j["architectures"] = ["RoFormerForSequenceClassification"]
            j["embedding_size"] = c.hiddenSize
            j["rotary_value"] = false
        } else {
            j["model_type"] = "bert"
            j["architectures"] = ["BertForSequenceClassification"]
            j["position_embedding_type"] = "absolute"
            j["classifier_dropout"] = NSNull()
        }
        return j
    }

    /// Writes `config.json` and `model.safetensors` into `directory` (created if needed).
    public static func save(_ model: EncoderClassifier, labels: [String], to directory: URL) throws {
        guard labels.count == model.config.numLabels else {
            throw TrainingError.invalidConfig("\(labels.count) label names for \(model.config.numLabels) labels")
        }
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let data = try JSONSerialization.data(withJSONObject: configJSON(model.config, labels: labels),
                                                  options: [.prettyPrinted, .sortedKeys])
            try data.write(to: directory.appendingPathComponent("config.json"))
        } catch {
            throw TrainingError.io("cannot write \(directory.path)/config.json: \(error)")
        }
        var tensors = model.namedTensors()
        if model.config.position == .rope {
            // HF RoFormerSinusoidalPositionalEmbedding: [P, D], sin(t·θᵢ) in the first D/2 columns, cos in the rest.
            let (P, D) = (model.config.maxPositions, model.config.headDim)
            var table = [Float](repeating: 0, count: P * D)
            for t in 0..<P {
                for i in 0..<(D / 2) {
                    let angle = Double(t) / Foundation.pow(10_000, Double(2 * i) / Double(D))
                    table[t * D + i] = Float(Foundation.sin(angle))
                    table[t * D + D / 2 + i] = Float(Foundation.cos(angle))
                }
            }
            tensors["roformer.encoder.embed_positions.weight"] = Tensor(shape: [P, D], values: table)
        }
        try SafeTensors.save(tensors, metadata: ["format": "pt"], to: directory.appendingPathComponent("model.safetensors"))
    }

    /// A classifier folder read back: the model (parameters loaded) and its label strings.
    public struct Loaded {
        public let model: EncoderClassifier
        public let labels: [String]
    }

    /// Loads a BERT or RoFormer sequence classifier folder — written by ``save(_:labels:to:)`` or trained with HF
    /// transformers (`BertForSequenceClassification` with absolute positions, `RoFormerForSequenceClassification`
    /// with `embedding_size = hidden_size` and `rotary_value: false`, `hidden_act: gelu`).
    public static func load(directory: URL) throws -> Loaded {
        let url = directory.appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainingError.invalidCheckpoint("cannot read \(url.path)")
        }
        guard let j = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TrainingError.invalidCheckpoint("\(url.path) is not a JSON object")
        }
        func int(_ key: String, default d: Int? = nil) throws -> Int {
            if let v = j[key] as? Int { return v }
            if let d { return d }
            throw TrainingError.invalidCheckpoint("config.json has no integer \(key)")
        }
        guard let type = j["model_type"] as? String, type == "bert" || type == "roformer" else {
            throw TrainingError.invalidCheckpoint("model_type must be bert or roformer, got \(j["model_type"] ?? "nothing")")
        }
        let act = j["hidden_act"] as? String ?? "gelu"
        guard act == "gelu" else { throw TrainingError.invalidCheckpoint("hidden_act \(act) is not supported (only gelu)") }
        var position: PositionEncoding = type == "roformer" ? .rope : .absolute
        if type == "bert" {
            if let p = j["position_embedding_type"] as? String, p != "absolute" {
                throw TrainingError.invalidCheckpoint("position_embedding_type \(p) is not supported (only absolute)")
            }
            if let s = j[positionKey] as? String {
                guard let p = PositionEncoding(rawValue: s), p != .rope else {
                    throw TrainingError.invalidCheckpoint("\(positionKey) '\(s)' is not valid for a BERT model")
                }
                position = p
            }
        } else {
            if let e = j["embedding_size"] as? Int, e != (j["hidden_size"] as? Int) {
                throw TrainingError.invalidCheckpoint("embedding_size ≠ hidden_size (embeddings_project) is not supported")
            }
            if j["rotary_value"] as? Bool == true { throw TrainingError.invalidCheckpoint("rotary_value true is not supported") }
        }
        var labels: [String] = []
        if let id2label = j["id2label"] as? [String: String], !id2label.isEmpty {
            labels = [String](repeating: "", count: id2label.count)
            for (k, v) in id2label {
                guard let i = Int(k), i >= 0, i < labels.count else {
                    throw TrainingError.invalidCheckpoint("id2label key '\(k)' is not an index below \(labels.count)")
                }
                labels[i] = v
            }
        } else {
            labels = (0..<(try int("num_labels", default: 2))).map { "LABEL_\($0)" }
        }
        var c = EncoderClassifierConfig(
            vocabSize: try int("vocab_size"), hiddenSize: try int("hidden_size"), layers: try int("num_hidden_layers"),
            heads: try int("num_attention_heads"), intermediateSize: try int("intermediate_size"),
            maxPositions: try int("max_position_embeddings"), numLabels: labels.count, position: position,
            dropout: Float(j["hidden_dropout_prob"] as? Double ?? 0.1))
        c.typeVocabSize = try int("type_vocab_size", default: 2)
        c.layerNormEps = Float(j["layer_norm_eps"] as? Double ?? 1e-12)
        let model = try EncoderClassifier(config: c)
        let checkpoint: SafeTensorsCheckpoint
        do { checkpoint = try SafeTensorsCheckpoint(directory: directory) } catch {
            throw TrainingError.invalidCheckpoint("\(error)")
        }
        try model.load { name in
            if checkpoint.contains(name) { return try checkpoint.tensor(name) }
            // Some BERT checkpoints (pre-`bert.` prefix conversions) are not supported; say which tensor is missing.
            return nil
        }
        return Loaded(model: model, labels: labels)
    }
}
