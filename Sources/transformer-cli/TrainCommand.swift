import ArgumentParser
import Foundation
import Transformer

/// `transformer-cli train`: trains an encoder classifier and writes a Hugging Face folder.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a BERT / RoFormer-style encoder classifier on CSV or JSONL data.",
        discussion: """
            Data: CSV with a `text,label` header (RFC 4180 quoting) or JSONL {"text", "label"}. A word-level \
            vocabulary is built from --train. --position rope writes RoFormerForSequenceClassification, the others \
            BertForSequenceClassification (sinusoidal / none as a frozen sinusoidal / zero position table). \
            After every epoch the folder in --out is rewritten (config.json, model.safetensors, tokenizer.json, \
            tokenizer_config.json, optimizer.safetensors, trainer_state.json, eval_results.json); --resume DIR \
            continues from such a folder.
            """)

    @Option(help: "Training data (.csv or .jsonl).") var train: String
    @Option(help: "Evaluation data (.csv or .jsonl).") var eval: String
    @Option(help: "Position scheme: rope | absolute | sinusoidal | none.") var position: String = "rope"
    @Option(help: "Encoder layers.") var layers: Int = 2
    @Option(help: "Hidden size.") var hidden: Int = 128
    @Option(help: "Attention heads.") var heads: Int = 4
    @Option(help: "Feed-forward size.") var intermediate: Int = 512
    @Option(name: .customLong("max-length"), help: "Longest sequence in tokens, [CLS] and [SEP] included.") var maxLength: Int = 64
    @Option(help: "Epochs.") var epochs: Int = 3
    @Option(name: .customLong("batch-size"), help: "Examples per optimiser step.") var batchSize: Int = 32
    @Option(help: "Peak learning rate.") var lr: Double = 1e-3
    @Option(help: "Seed for initialisation, shuffling and dropout.") var seed: UInt64 = 42
    @Option(help: "Output folder.") var out: String
    @Option(name: .customLong("warmup-ratio"), help: "Fraction of the steps spent warming up linearly.") var warmupRatio: Double = 0.1
    @Option(name: .customLong("weight-decay"), help: "AdamW decoupled weight decay (not on biases / LayerNorm).") var weightDecay: Double = 0.01
    @Option(help: "Hidden dropout probability.") var dropout: Double = 0.1
    @Option(help: "Resume from a folder written by train.") var resume: String?
    @Option(help: "Learning-rate decay after warm-up: linear | cosine.") var decay: String = "linear"
    @Option(name: .customLong("min-frequency"), help: "Words seen fewer times in --train become [UNK].") var minFrequency: Int = 2
    @Option(name: .customLong("max-vocab"), help: "Largest vocabulary, special tokens included.") var maxVocab: Int = 30_000
    @Option(name: .customLong("clip-norm"), help: "Global gradient-norm clipping threshold.") var clipNorm: Double = 1.0
    @OptionGroup var threading: ThreadsOption
    @Flag(help: "Print a progress line only at the end of each epoch.") var quiet = false

    func run() throws {
        try threading.apply()
        guard let pos = PositionEncoding(rawValue: position) else {
            throw ValidationError("--position must be rope, absolute, sinusoidal or none, got '\(position)'")
        }
        guard let decayKind = LRSchedule.Decay(rawValue: decay), decayKind != .constant else {
            throw ValidationError("--decay must be linear or cosine, got '\(decay)'")
        }
        let trainExamples = try ClassificationData.load(URL(fileURLWithPath: train), requireLabels: true)
        let evalExamples = try ClassificationData.load(URL(fileURLWithPath: eval), requireLabels: true)

        let model: EncoderClassifier, tokenizer: WordLevelTokenizer, labels: [String], maxLen: Int
        if let resume {
            let dir = URL(fileURLWithPath: resume)
            let loaded = try HFExport.load(directory: dir)
            let tok = try WordLevelTokenizer.load(directory: dir)
            (model, tokenizer, labels) = (loaded.model, tok.tokenizer, loaded.labels)
            maxLen = tok.maxLength ?? model.config.maxPositions
            stderrPrint("resuming from \(resume): \(model.config.position.rawValue), \(model.config.layers) layers, hidden \(model.config.hiddenSize)")
        } else {
            labels = Array(Set(trainExamples.compactMap(\.label))).sorted()
            guard labels.count >= 2 else { throw ValidationError("--train has \(labels.count) distinct label(s); need at least 2") }
            tokenizer = try WordLevelTokenizer.build(from: trainExamples.map(\.text), minFrequency: minFrequency, maxVocabulary: maxVocab)
            let config = EncoderClassifierConfig(vocabSize: tokenizer.count, hiddenSize: hidden, layers: layers, heads: heads,
                                                 intermediateSize: intermediate, maxPositions: maxLength, numLabels: labels.count,
                                                 position: pos, dropout: Float(dropout))
            do { model = try EncoderClassifier(config: config) } catch let e as TrainingError { throw ValidationError(e.description) }
            model.initialize(seed: seed)
            maxLen = maxLength
        }
        let trainData = try ClassifierTrainer.encode(trainExamples, tokenizer: tokenizer, labels: labels, maxLength: maxLen)
        let evalData = try ClassifierTrainer.encode(evalExamples, tokenizer: tokenizer, labels: labels, maxLength: maxLen)
        var options = ClassifierTrainer.Options(epochs: epochs, batchSize: batchSize, learningRate: lr, maxLength: maxLen)
        (options.warmupRatio, options.weightDecay, options.seed, options.decay, options.maxGradNorm) =
            (warmupRatio, weightDecay, seed, decayKind, clipNorm)
        let trainer: ClassifierTrainer
        do {
            trainer = try ClassifierTrainer(model: model, tokenizer: tokenizer, labels: labels, train: trainData, options: options)
        } catch let e as TrainingError { throw ValidationError(e.description) }
        if let resume { try trainer.restoreState(from: URL(fileURLWithPath: resume)) }

        let c = model.config
        stderrPrint("train: \(trainData.count) examples, eval: \(evalData.count), labels: \(labels.joined(separator: ", ")), "
                    + "vocabulary \(tokenizer.count), \(c.position.rawValue) positions, \(c.layers)×\(c.hiddenSize) (\(c.heads) heads, "
                    + "ffn \(c.intermediateSize)), \(model.entries.filter(\.trainable).reduce(0) { $0 + $1.count }) trainable parameters, "
                    + "\(trainer.stepsPerEpoch) steps/epoch, warm-up \(trainer.schedule.warmupSteps) of \(trainer.schedule.totalSteps), "
                    + "\(Threading.workers) threads")
        let outDir = URL(fileURLWithPath: out)
        var lastAccuracy = 0.0
        var history: [[String: Any]] = []
        while trainer.epochsDone < epochs {
            var lastPrint = Date.distantPast
            let summary = try trainer.runEpoch { p in
                let now = Date()
                let last = p.step == p.stepsPerEpoch
                guard last || (!quiet && now.timeIntervalSince(lastPrint) >= 1) else { return }
                lastPrint = now
                let line = String(format: "epoch %d/%d step %d/%d loss %.4f accuracy %.4f %.1f examples/s ETA %@ lr %.2e",
                                  p.epoch, p.epochs, p.step, p.stepsPerEpoch, p.loss, p.accuracy, p.examplesPerSecond,
                                  formatDuration(p.etaSeconds), p.learningRate)
                stderrPrint(line)
            }
            let ev = try ClassifierTrainer.evaluate(model, evalData)
            lastAccuracy = ev.accuracy ?? 0
            print(String(format: "eval epoch %d: loss %.4f accuracy %.4f (%d examples; train loss %.4f accuracy %.4f)",
                         trainer.epochsDone, ev.loss ?? 0, lastAccuracy, evalData.count, summary.loss, summary.accuracy))
            fflush(stdout)
            history.append(["epoch": trainer.epochsDone, "eval_loss": ev.loss ?? 0, "eval_accuracy": lastAccuracy,
                            "train_loss": summary.loss, "train_accuracy": summary.accuracy])
            try trainer.save(to: outDir, extra: ["position": c.position.rawValue])
            let results: [String: Any] = ["eval_accuracy": lastAccuracy, "eval_loss": ev.loss ?? 0, "epochs": history,
                                          "position": c.position.rawValue, "seed": seed, "eval_examples": evalData.count]
            try JSONSerialization.data(withJSONObject: results, options: [.prettyPrinted, .sortedKeys])
                .write(to: outDir.appendingPathComponent("eval_results.json"))
        }
        print(String(format: "final eval accuracy: %.4f", lastAccuracy))
        stderrPrint("wrote \(out)")
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}
