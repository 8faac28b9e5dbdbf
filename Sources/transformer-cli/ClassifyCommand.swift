import ArgumentParser
import Foundation
import Transformer

/// `transformer-cli classify`: labels texts with a classifier folder (trained here or with HF transformers).
struct ClassifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "classify", abstract: "Classify texts with a BERT / RoFormer classifier folder.",
        discussion: "Writes one JSON line per example, {\"label\": ..., \"logits\": [...]}, and `accuracy: 0.xxxx` on stdout when the input has labels.")

    @Option(help: "Classifier folder (config.json, model.safetensors, tokenizer.json: WordLevel as train writes it, or BERT's WordPiece).") var model: String
    @Option(help: "Input data (.csv with a text column, or .jsonl).") var input: String?
    @Option(help: "A single text to classify.") var text: String?
    @Option(help: "Write the JSON lines here instead of stdout.") var output: String?
    @Option(name: .customLong("batch-size"), help: "Examples per forward pass.") var batchSize: Int = 64
    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        guard (input == nil) != (text == nil) else { throw ValidationError("give exactly one of --input FILE or --text \"...\"") }
        let dir = URL(fileURLWithPath: model)
        let loaded = try HFExport.load(directory: dir)
        let tok = try ClassificationTokenizers.load(directory: dir)
        let maxLen = min(tok.maxLength ?? loaded.model.config.maxPositions, loaded.model.config.maxPositions)
        let examples = try input.map { try ClassificationData.load(URL(fileURLWithPath: $0), requireLabels: false) }
            ?? [ClassificationExample(text: text!, label: nil)]
        let labelled = !examples.isEmpty && examples.allSatisfy { !($0.label ?? "").isEmpty }
        let data = try ClassifierTrainer.encode(labelled ? examples : examples.map { ClassificationExample(text: $0.text, label: nil) },
                                                tokenizer: tok.tokenizer, labels: loaded.labels, maxLength: maxLen)
        for d in data where d.ids.contains(where: { $0 >= loaded.model.config.vocabSize }) {
            throw ValidationError("tokenizer produces id \(d.ids.max()!) beyond the model's vocab_size \(loaded.model.config.vocabSize)")
        }
        let ev = try ClassifierTrainer.evaluate(loaded.model, data, batchSize: batchSize)
        var lines = ""
        for (row, p) in zip(ev.logits, ev.predictions) {
            let obj: [String: Any] = ["label": loaded.labels[p], "logits": row.map { Double($0) }]
            let d = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            lines += String(decoding: d, as: UTF8.self) + "\n"
        }
        if let output {
            do { try lines.write(toFile: output, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("cannot write \(output): \(error)")
            }
        } else {
            print(lines, terminator: "")
        }
        if labelled, let acc = ev.accuracy { print(String(format: "accuracy: %.4f", acc)) }
    }
}
