import ArgumentParser
import Foundation
import Transformer

/// `transformer-cli chat-template`: renders a chat template for a conversation, exactly as Hugging Face's
/// `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` would, and prints it with nothing
/// added.
struct ChatTemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat-template",
        abstract: "Render a chat template (Jinja) for a conversation; prints the prompt with nothing added.",
        discussion: """
            The template comes from --template, or from --model: a GGUF file (tokenizer.chat_template) or a Hugging \
            Face folder (tokenizer_config.json chat_template, or chat_template.jinja). --messages is a JSON array of \
            messages (or an object with a "messages" array). A template that raises an exception exits non-zero \
            with its message on stderr.
            """)

    @Option(help: "GGUF file or Hugging Face model folder whose chat template to use.") var model: String?
    @Option(help: "A Jinja template file.") var template: String?
    @Option(help: "JSON file: an array of messages ({\"role\": ..., \"content\": ...}).") var messages: String
    @Option(help: "bos_token passed to the template (default: the model's).") var bosToken: String?
    @Option(help: "eos_token passed to the template (default: the model's).") var eosToken: String?
    @Flag(help: "Set add_generation_prompt (end with the assistant's turn header).") var addGenerationPrompt = false

    func validate() throws {
        guard (model == nil) != (template == nil) else { throw ValidationError("give exactly one of --model and --template") }
    }

    func run() throws {
        var chat: ChatTemplate
        if let template {
            guard let data = FileManager.default.contents(atPath: template) else {
                throw ValidationError("cannot read template file \(template)")
            }
            chat = try ChatTemplate(jinja: String(decoding: data, as: UTF8.self))
        } else {
            chat = try Self.modelTemplate(model!)
        }
        var special: [String: String] = [:]
        if let bosToken { special["bos_token"] = bosToken }
        if let eosToken { special["eos_token"] = eosToken }
        chat = chat.with(specialTokens: special)

        guard let data = FileManager.default.contents(atPath: messages) else {
            throw ValidationError("cannot read messages file \(messages)")
        }
        var list: [JinjaValue]
        switch try JinjaValue(json: String(decoding: data, as: UTF8.self)) {
        case .array(let a, _): list = a
        case .object(let o):
            guard case .array(let a, _)? = o["messages"] else { throw ValidationError("\(messages): no \"messages\" array") }
            list = a
        default: throw ValidationError("\(messages): expected a JSON array of messages")
        }
        for m in list {
            guard case .object = m else { throw ValidationError("\(messages): every message must be a JSON object") }
        }
        let text = try chat.render(messages: list, addGenerationPrompt: addGenerationPrompt)
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// The chat template and special tokens of a GGUF file or HF folder.
    static func modelTemplate(_ path: String) throws -> ChatTemplate {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("no such file or directory: \(path)")
        }
        let url = URL(fileURLWithPath: path)
        if !isDirectory.boolValue {
            let f = try GGUFFile(url: url)
            guard let source = f["tokenizer.chat_template"]?.string else {
                throw ValidationError("\(path) has no tokenizer.chat_template")
            }
            return try ChatTemplate(jinja: source, specialTokens: ChatTemplate.specialTokens(gguf: f))
        }
        var config: [String: Any] = [:]
        if let data = FileManager.default.contents(atPath: url.appendingPathComponent("tokenizer_config.json").path) {
            guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ValidationError("\(path)/tokenizer_config.json is not a JSON object")
            }
            config = json
        }
        var source: String?
        if let s = config["chat_template"] as? String {
            source = s
        } else if let named = config["chat_template"] as? [[String: Any]] {
            source = named.first { $0["name"] as? String == "default" }?["template"] as? String
        }
        if source == nil, let data = FileManager.default.contents(atPath: url.appendingPathComponent("chat_template.jinja").path) {
            source = String(decoding: data, as: UTF8.self)
        }
        guard let source else { throw ValidationError("\(path) has no chat template (tokenizer_config.json or chat_template.jinja)") }
        return try ChatTemplate(jinja: source, specialTokens: ChatTemplate.specialTokens(tokenizerConfig: config))
    }
}
