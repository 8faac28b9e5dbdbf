import Foundation

/// The training loop for ``EncoderClassifier``: seeded shuffling, dynamic padding per batch, AdamW with global-norm
/// clipping and a warm-up + decay schedule, evaluation, and checkpoints that are Hugging Face folders plus the
/// optimiser state (`optimizer.safetensors`: AdamW `m` and `v`; `trainer_state.json`: step, epoch, schedule).
///
/// Determinism: the epoch's order is a Fisher–Yates shuffle from ``SeededGenerator`` seeded by (seed, epoch), each
/// step's dropout masks are seeded by (seed, step), and every kernel splits its work in a fixed way, so the same seed
/// and thread count give the same weights.
public final class ClassifierTrainer {
    public struct Options: Sendable {
        public var epochs: Int
        public var batchSize: Int
        public var learningRate: Double
        public var warmupRatio: Double = 0.1
        public var weightDecay: Double = 0.01
        public var maxGradNorm: Double = 1.0
        public var decay: LRSchedule.Decay = .linear
        public var seed: UInt64 = 42
        public var maxLength: Int
        public init(epochs: Int, batchSize: Int, learningRate: Double, maxLength: Int) {
            (self.epochs, self.batchSize, self.learningRate, self.maxLength) = (epochs, batchSize, learningRate, maxLength)
        }
    }

    /// An encoded example.
    public struct Encoded: Sendable {
        public var ids: [Int]
        public var label: Int?
    }

    /// Reported after every optimiser step.
    public struct Progress: Sendable {
        public var epoch: Int, epochs: Int, step: Int, stepsPerEpoch: Int, globalStep: Int, totalSteps: Int
        public var loss: Double, accuracy: Double, examplesPerSecond: Double, etaSeconds: Double, learningRate: Double
    }

    public let model: EncoderClassifier
    public let tokenizer: WordLevelTokenizer
    public let labels: [String]
    public let options: Options
    public private(set) var optimizer: AdamW
    public let schedule: LRSchedule
    /// Optimiser steps taken.
    public private(set) var globalStep = 0
    /// Completed epochs.
    public private(set) var epochsDone = 0
    let train: [Encoded]

    public var stepsPerEpoch: Int { (train.count + options.batchSize - 1) / options.batchSize }

    /// A trainer over `train` (labels must be in `labels`).
    public init(model: EncoderClassifier, tokenizer: WordLevelTokenizer, labels: [String], train: [Encoded], options: Options) throws {
        guard options.epochs > 0, options.batchSize > 0, options.learningRate > 0, options.learningRate.isFinite else {
            throw TrainingError.invalidConfig("epochs, batch size and learning rate must be positive")
        }
        guard options.warmupRatio >= 0 && options.warmupRatio <= 1 else {
            throw TrainingError.invalidConfig("warm-up ratio must be in [0, 1], got \(options.warmupRatio)")
        }
        guard options.weightDecay >= 0 else { throw TrainingError.invalidConfig("weight decay must be ≥ 0") }
        guard !train.isEmpty else { throw TrainingError.invalidData("no training examples") }
        (self.model, self.tokenizer, self.labels, self.train, self.options) = (model, tokenizer, labels, train, options)
        optimizer = AdamW(parameterCount: model.parameterCount, groups: model.optimizerGroups, weightDecay: options.weightDecay)
        let total = options.epochs * ((train.count + options.batchSize - 1) / options.batchSize)
        schedule = LRSchedule(baseRate: options.learningRate, warmupSteps: LRSchedule.warmup(ratio: options.warmupRatio, totalSteps: total),
                              totalSteps: total, decay: options.decay)
    }

    /// Encodes labelled (or unlabelled) examples; labels not in `labels` are an error.
    public static func encode(_ examples: [ClassificationExample], tokenizer: any ClassificationTokenizer, labels: [String],
                              maxLength: Int) throws -> [Encoded] {
        var index: [String: Int] = [:]
        for (i, l) in labels.enumerated() { index[l] = i }
        return try examples.enumerated().map { n, e in
            var y: Int? = nil
            if let l = e.label {
                guard let i = index[l] else {
                    throw TrainingError.invalidData("example \(n + 1) has label '\(l)', which the training data does not have "
                                                    + "(labels: \(labels.joined(separator: ", ")))")
                }
                y = i
            }
            return Encoded(ids: tokenizer.encode(e.text, maxLength: maxLength), label: y)
        }
    }

    func order(epoch: Int) -> [Int] {
        var idx = Array(0..<train.count)
        var rng = SeededGenerator(seed: options.seed &* 0x2545_F491_4F6C_DD1D &+ UInt64(epoch + 1))
        if idx.count > 1 {
            for i in stride(from: idx.count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                idx.swapAt(i, j)
            }
        }
        return idx
    }

    /// Runs the next epoch; returns its mean training loss and accuracy.
    @discardableResult
    public func runEpoch(progress: ((Progress) -> Void)? = nil) throws -> (loss: Double, accuracy: Double) {
        let epoch = epochsDone
        let ids = order(epoch: epoch)
        let start = Date()
        var lossSum = 0.0, correct = 0, seen = 0
        let B = options.batchSize
        let totalSteps = schedule.totalSteps
        for s in 0..<stepsPerEpoch {
            let chunk = ids[(s * B)..<min(ids.count, (s + 1) * B)]
            let batch = EncoderBatch(sequences: chunk.map { train[$0].ids }, labels: chunk.map { train[$0].label ?? 0 })
            let out = try model.forward(batch, training: true, dropoutSeed: options.seed &* 1_000_003 &+ UInt64(globalStep))
            model.backward(batch)
            optimizer.clipGradients(model.gradients, maxNorm: options.maxGradNorm)
            let lr = schedule.rate(step: globalStep)
            optimizer.update(model.parameters, model.gradients, lr: lr)
            globalStep += 1
            lossSum += out.loss * Double(batch.batch); correct += out.correct; seen += batch.batch
            if let progress {
                let elapsed = Date().timeIntervalSince(start)
                let rate = Double(seen) / max(elapsed, 1e-9)
                let remainingExamples = Double(totalSteps - globalStep) * Double(B)
                progress(Progress(epoch: epoch + 1, epochs: options.epochs, step: s + 1, stepsPerEpoch: stepsPerEpoch,
                                  globalStep: globalStep, totalSteps: totalSteps, loss: lossSum / Double(seen),
                                  accuracy: Double(correct) / Double(seen), examplesPerSecond: rate,
                                  etaSeconds: remainingExamples / max(rate, 1e-9), learningRate: lr))
            }
        }
        epochsDone += 1
        return (lossSum / Double(max(seen, 1)), Double(correct) / Double(max(seen, 1)))
    }

    /// Evaluation result: logits per example, and loss / accuracy over the labelled ones (nil when none are).
    public struct Evaluation: Sendable {
        public var logits: [[Float]]
        public var loss: Double?
        public var accuracy: Double?
        public var predictions: [Int] { logits.map { row in row.indices.max { row[$0] < row[$1] } ?? 0 } }
    }

    /// Runs `model` (eval mode: no dropout) over `data` in batches.
    public static func evaluate(_ model: EncoderClassifier, _ data: [Encoded], batchSize: Int = 64) throws -> Evaluation {
        var logits: [[Float]] = []
        logits.reserveCapacity(data.count)
        var lossSum = 0.0, labelled = 0, correct = 0
        let C = model.config.numLabels
        var i = 0
        while i < data.count {
            let chunk = data[i..<min(data.count, i + max(1, batchSize))]
            let batch = EncoderBatch(sequences: chunk.map(\.ids), labels: [])
            let out = try model.forward(batch, training: false)
            for (k, e) in chunk.enumerated() {
                let row = Array(out.logits[(k * C)..<((k + 1) * C)])
                logits.append(row)
                if let y = e.label {
                    var d = [Float](repeating: 0, count: C)
                    let (l, c) = EncoderClassifier.softmaxCrossEntropy(row, labels: [y], classes: C, dLogits: &d)
                    lossSum += l; correct += c; labelled += 1
                }
            }
            i += chunk.count
        }
        return Evaluation(logits: logits, loss: labelled > 0 ? lossSum / Double(labelled) : nil,
                          accuracy: labelled > 0 ? Double(correct) / Double(labelled) : nil)
    }

    // MARK: Checkpoints

    /// Writes the HF folder (config, weights, tokenizer) and the optimiser state into `directory`.
    public func save(to directory: URL, extra: [String: Any] = [:]) throws {
        try HFExport.save(model, labels: labels, to: directory)
        try tokenizer.save(to: directory, maxLength: options.maxLength)
        try SafeTensors.save(["m": Tensor(optimizer.m), "v": Tensor(optimizer.v)],
                             to: directory.appendingPathComponent("optimizer.safetensors"))
        var state: [String: Any] = ["global_step": globalStep, "epochs_done": epochsDone, "epochs": options.epochs,
                                    "batch_size": options.batchSize, "learning_rate": options.learningRate,
                                    "warmup_steps": schedule.warmupSteps, "total_steps": schedule.totalSteps,
                                    "weight_decay": options.weightDecay, "seed": options.seed, "max_length": options.maxLength]
        for (k, v) in extra { state[k] = v }
        do {
            try JSONSerialization.data(withJSONObject: state, options: [.prettyPrinted, .sortedKeys])
                .write(to: directory.appendingPathComponent("trainer_state.json"))
        } catch { throw TrainingError.io("cannot write trainer_state.json: \(error)") }
    }

    /// Restores the optimiser moments, step and epoch count written by ``save(to:extra:)`` in `directory`
    /// (the model's weights are loaded separately with ``HFExport/load(directory:)``).
    public func restoreState(from directory: URL) throws {
        let st = directory.appendingPathComponent("trainer_state.json")
        guard let d = FileManager.default.contents(atPath: st.path),
              let j = (try? JSONSerialization.jsonObject(with: d)) as? [String: Any],
              let step = j["global_step"] as? Int, let done = j["epochs_done"] as? Int else {
            throw TrainingError.invalidCheckpoint("\(st.path) is missing or has no global_step / epochs_done")
        }
        let f: SafeTensorsFile
        do { f = try SafeTensorsFile(url: directory.appendingPathComponent("optimizer.safetensors")) } catch {
            throw TrainingError.invalidCheckpoint("cannot read optimizer.safetensors: \(error)")
        }
        let m = try f.tensor("m"), v = try f.tensor("v")
        guard m.count == model.parameterCount, v.count == model.parameterCount else {
            throw TrainingError.invalidCheckpoint("optimizer state has \(m.count) entries, the model \(model.parameterCount)")
        }
        optimizer.restore(m: m.withUnsafeBufferPointer { Array($0) }, v: v.withUnsafeBufferPointer { Array($0) }, step: step)
        globalStep = step
        epochsDone = done
    }
}
