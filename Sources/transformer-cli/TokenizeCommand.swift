import ArgumentParser
import Foundation
import Transformer

/// `transformer-cli tokenize`: the token ids of a text, as HF's `tokenizer.encode(text)` gives them (special tokens
/// such as BOS added by the tokenizer's post-processor; special tokens written in the text recognised).
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text (one line, space-separated).",
        discussion: """
            --model is a GGUF file (tokenizer.ggml.model gpt2 or llama), a Hugging Face folder with tokenizer.json \
            (and tokenizer_config.json), or a folder with only tokenizer.json.
            """)

    @Option(help: "GGUF file, Hugging Face folder, or folder with tokenizer.json.") var model: String
    @Option(help: "The text to tokenize.") var text: String

    func run() throws {
        let tokenizer = try TokenizerLoader.load(path: model)
        let ids = tokenizer.encode(text, addSpecialTokens: true)
        print(ids.map(String.init).joined(separator: " "))
    }
}
