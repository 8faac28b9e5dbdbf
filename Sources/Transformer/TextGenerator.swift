import Foundation

/// A causal language model together with its tokenizer and chat template: text in, streamed text out.
///
/// ```swift
/// let llm = try TextGenerator.load(path: "models/SmolLM2-135M-Instruct.Q4_1.gguf")
/// let reply = try llm.reply(to: [.user("What is the capital of France?")], maxNewTokens: 32) { print($0, terminator: "") }
/// ```
public final class TextGenerator: @unchecked Sendable {
    public let model: any CausalLanguageModel
    public let tokenizer: any TextTokenizer
    /// The model's chat template, when it declares one this engine understands (ChatML).
    public let chatTemplate: ChatTemplate?
    /// Tokens that end a turn or the text (EOS and `<|im_end|>`-style end-of-turn tokens).
    public let stopTokens: Set<Int>
    /// Why the model's chat template could not be used (it does not parse, or uses unsupported Jinja), if so.
    public internal(set) var chatTemplateError: String?

    public init(model: any CausalLanguageModel, tokenizer: any TextTokenizer, chatTemplate: ChatTemplate?, stopTokens: Set<Int>) {
        (self.model, self.tokenizer, self.chatTemplate, self.stopTokens) = (model, tokenizer, chatTemplate, stopTokens)
    }

    /// Loads a GGUF file (llama architecture) or a Hugging Face model directory with a `tokenizer.json`.
    public static func load(path: String) throws -> TextGenerator {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ModelError.io("no such file or directory: \(path)")
        }
        return isDirectory.boolValue ? try loadDirectory(url) : try loadGGUF(url)
    }

    static func loadGGUF(_ url: URL) throws -> TextGenerator {
        let checkpoint = try GGUFCheckpoint(url: url)
        let config = try checkpoint.config()
        guard case .causalLM(let model) = try ModelLoader.build(config: config, weights: Weights(checkpoint)) else {
            throw ModelError.invalidConfig("\(url.path) is not a causal language model")
        }
        let f = checkpoint.file
        guard f["tokenizer.ggml.tokens"]?.strings != nil else {
            throw ModelError.invalidConfig("\(url.lastPathComponent): GGUF has no tokenizer.ggml.tokens")
        }
        let tokenizer: any TextTokenizer
        do {
            tokenizer = try TokenizerLoader.load(gguf: f)
        } catch {
            throw ModelError.invalidConfig("\(url.lastPathComponent): \(error)")
        }
        let special = ChatTemplate.specialTokens(gguf: f)
        var template: ChatTemplate?
        var templateError: String?
        if let source = f["tokenizer.chat_template"]?.string {
            do { template = try ChatTemplate(jinja: source, specialTokens: special) } catch { templateError = "\(error)" }
        }
        let g = TextGenerator(model: model, tokenizer: tokenizer, chatTemplate: template, stopTokens: stops(tokenizer, config.eosTokenId))
        g.chatTemplateError = templateError
        return g
    }

    static func loadDirectory(_ url: URL) throws -> TextGenerator {
        let config = try ModelConfig.load(directory: url)
        let model = try ModelLoader.loadCausalLM(directory: url)
        let tokenizerURL = url.appendingPathComponent("tokenizer.json")
        guard FileManager.default.fileExists(atPath: tokenizerURL.path) else {
            throw ModelError.io("\(url.path) has no tokenizer.json (text generation needs one; use token ids instead)")
        }
        let tokenizer = try TokenizerLoader.load(path: url.path)
        var template: ChatTemplate?
        var templateError: String?
        if let data = FileManager.default.contents(atPath: url.appendingPathComponent("tokenizer_config.json").path),
           let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let jinja = json["chat_template"] as? String {
            do {
                template = try ChatTemplate(jinja: jinja, specialTokens: ChatTemplate.specialTokens(tokenizerConfig: json))
            } catch {
                templateError = "\(error)"
            }
        }
        let g = TextGenerator(model: model, tokenizer: tokenizer, chatTemplate: template, stopTokens: stops(tokenizer, config.eosTokenId))
        g.chatTemplateError = templateError
        return g
    }

    static func stops(_ tokenizer: any TextTokenizer, _ configEOS: [Int]?) -> Set<Int> {
        var s = Set(configEOS ?? [])
        if let eos = tokenizer.eosTokenId { s.insert(eos) }
        for name in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] { if let id = tokenizer.id(for: name) { s.insert(id) } }
        return s
    }

    /// Token ids of a chat rendered with the model's template (ending with the assistant prompt).
    public func chatTokens(_ messages: [ChatMessage]) throws -> [Int] {
        guard let chatTemplate else {
            throw ModelError.invalidConfig("this model declares no supported chat template"
                                           + (chatTemplateError.map { " (\($0))" } ?? ""))
        }
        return tokenizer.encode(try chatTemplate.render(messages, addGenerationPrompt: true), addSpecialTokens: false)
    }

    /// Generates after `prompt` (token ids), streaming decoded text to `onText`; stops at a stop token.
    @discardableResult
    public func generate(prompt: [Int], maxNewTokens: Int, sampler: Sampler = .greedy, cache: KVCache? = nil,
                         onText: (String) -> Void = { _ in }) throws -> GenerationResult {
        var decoder = tokenizer.streamingDecoder(skipSpecialTokens: true)
        let result = try model.generate(prompt: prompt, options: GenerationOptions(maxNewTokens: maxNewTokens, sampler: sampler,
                                                                                  stopTokens: stopTokens), cache: cache) { id in
            let text = decoder.append(id)
            if !text.isEmpty { onText(text) }
            return true
        }
        let tail = decoder.finish()
        if !tail.isEmpty { onText(tail) }
        return result
    }

    /// One assistant reply to `messages`, streamed to `onText`; returns the reply's text.
    public func reply(to messages: [ChatMessage], maxNewTokens: Int, sampler: Sampler = .greedy,
                      onText: (String) -> Void = { _ in }) throws -> String {
        var text = ""
        try generate(prompt: chatTokens(messages), maxNewTokens: maxNewTokens, sampler: sampler) { text += $0; onText($0) }
        return text
    }
}
