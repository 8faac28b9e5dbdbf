import ArgumentParser
import Foundation
import Transformer

/// `transformer-cli embed`: a sentence embedding from a BERT sentence-transformers folder.
struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed", abstract: "Print the sentence embedding of a text (pooled, L2-normalised) on one line.",
        discussion: """
            The model folder holds config.json (model_type bert), model.safetensors, tokenizer.json (WordPiece) and \
            optionally 1_Pooling/config.json (mean or cls pooling; default mean) and sentence_bert_config.json \
            (max_seq_length), as sentence-transformers saves them (e.g. all-MiniLM-L6-v2, scripts/get-minilm.sh). \
            Prints the vector's numbers separated by spaces.
            """)

    @Option(help: "Sentence-transformers / HF BERT model folder.") var model: String
    @Option(help: "The text to embed.") var text: String

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("--model must be a model folder, got '\(model)'")
        }
        let embedder = try SentenceEmbedder.load(directory: URL(fileURLWithPath: model))
        let v = try embedder.embed(text)
        print(v.withUnsafeBufferPointer { $0.map { "\($0)" } }.joined(separator: " "))
    }
}
