import ArgumentParser
import Foundation
import Transformer

/// Parses "1,2,3" into token ids.
func parseTokens(_ s: String) throws -> [Int] {
    let parts = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let ids = parts.compactMap { Int($0) }
    guard !parts.isEmpty, ids.count == parts.count else {
        throw ValidationError("--tokens must be comma-separated integers, got '\(s)'")
    }
    return ids
}

/// `transformer-cli logits`: one forward pass, logits written as safetensors.
struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits", abstract: "Run a forward pass and write the logits to a safetensors file.",
        discussion: """
            Causal LMs write `logits` [tokens, vocab]; sequence classifiers write `logits` [labels]; BERT encoders \
            write `last_hidden_state` [tokens, hidden].
            """)

    @Option(help: "Model directory (config.json + safetensors) or GGUF file.") var model: String
    @Option(help: "Comma-separated token ids.") var tokens: String
    @Option(help: "Output .safetensors path.") var output: String

    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        let ids = try parseTokens(tokens)
        let logits: Tensor
        var name = "logits"
        switch try ModelLoader.open(model).model {
        case .causalLM(let m): logits = try m.logits(ids)
        case .sequenceClassifier(let m): logits = try m.classify(ids)
        case .bertClassifier(let m): logits = try m.classify(ids)
        case .encoder(let m): (logits, name) = (try m.encode(ids), "last_hidden_state")
        }
        try SafeTensors.save([name: logits], to: URL(fileURLWithPath: output))
        stderrPrint("wrote \(name) \(logits.shape) to \(output)")
    }
}

/// `transformer-cli info`: what a model is and what it costs.
struct InfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Architecture, parameters, KV-cache bytes per token; for GGUF files the tensor types (count, bytes), file size, load time and resident memory after load.")

    @Option(help: "Model directory (config.json + safetensors) or GGUF file.") var model: String

    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        let start = Date()
        let opened = try ModelLoader.open(model)
        let loadSeconds = Date().timeIntervalSince(start)
        print("machine:             \(CPU.summary)")
        switch opened.model {
        case .causalLM(let m):
            let cache = m.makeCache(capacity: 1)
            print("architecture:        \(m.architecture)")
            print("parameters:          \(m.parameterCount) (\(String(format: "%.2f", Double(m.parameterCount) / 1e6)) M)")
            print("vocabulary:          \(m.vocabularySize)")
            print("context length:      \(m.maxPositions)")
            print("kv cache bytes/token: \(cache.bytesPerToken) (\(cache.layers.count) layers; "
                  + "\(String(format: "%.1f", Double(cache.bytesPerToken) * Double(m.maxPositions) / 1e6)) MB at full context)")
        case .sequenceClassifier(let m):
            print("architecture:        roformer (sequence classification, \(m.numLabels) labels)")
            print("parameters:          \(m.parameterCount) (\(String(format: "%.2f", Double(m.parameterCount) / 1e6)) M)")
            print("kv cache bytes/token: 0 (encoder: no cache)")
        case .encoder(let m):
            print("architecture:        bert (encoder, hidden \(m.hiddenSize), \(m.layers.count) layers)")
            print("parameters:          \(m.parameterCount) (\(String(format: "%.2f", Double(m.parameterCount) / 1e6)) M)")
            print("context length:      \(m.maxPositions)")
        case .bertClassifier(let m):
            print("architecture:        bert (sequence classification, \(m.numLabels) labels)")
            print("parameters:          \(m.parameterCount) (\(String(format: "%.2f", Double(m.parameterCount) / 1e6)) M)")
            print("context length:      \(m.bert.maxPositions)")
        }
        if let t = opened.tokenizer {
            print("tokenizer:           \(t is BPETokenizer ? "byte-level BPE" : "SentencePiece"), \(t.vocabularySize) tokens; chat template: "
                  + (opened.chatTemplate == nil ? "none" + (opened.chatTemplateError.map { " (\($0))" } ?? "")
                     : opened.chatTemplate?.source == nil ? "ChatML" : "Jinja"))
        }
        printStorage(opened, loadSeconds: loadSeconds)
    }

    /// For a GGUF file: tensors per type (count, bytes) and the file size; then load time and resident memory.
    func printStorage(_ opened: OpenedModel, loadSeconds: Double) {
        func mb(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
        if case .gguf(let file) = opened.source {
            var byType: [GGMLType: (count: Int, bytes: Int)] = [:]
            for info in file.tensors.values { byType[info.type, default: (0, 0)].count += 1; byType[info.type]!.bytes += info.byteCount }
            print("file size:           \(file.fileSize) bytes (\(mb(file.fileSize)))")
            print("tensor types:")
            for (type, v) in byType.sorted(by: { $0.value.bytes > $1.value.bytes }) {
                print("  \(type.name.padding(toLength: 8, withPad: " ", startingAt: 0)) \(String(format: "%4d", v.count)) tensors  "
                      + "\(String(format: "%12d", v.bytes)) bytes (\(mb(v.bytes)))")
            }
        }
        print(String(format: "load time:           %.3f s (weights, tokenizer, chat template)", loadSeconds))
        if case .gguf(let file) = opened.source, let start = Optional(Date()), let checkpoint = try? GGUFCheckpoint(url: file.url),
           (try? ModelLoader.build(config: opened.config, weights: Weights(checkpoint))) != nil {
            print(String(format: "weights load time:   %.3f s (map the file + build the model again, no tokenizer)",
                         Date().timeIntervalSince(start)))
        }
        if let rss = ProcessMemory.residentBytes {
            print("resident memory:     \(rss) bytes (\(mb(rss))) after load (VmRSS)")
        }
    }
}
