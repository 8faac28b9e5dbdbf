import Foundation

/// One chat message.
public struct ChatMessage: Sendable, Hashable, Codable {
    /// `"system"`, `"user"`, `"assistant"`, ...
    public var role: String
    /// The message text.
    public var content: String

    /// A message with the given role and text.
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    /// A `system` message.
    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    /// A `user` message.
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    /// An `assistant` message.
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// A chat template: a model's Jinja template (GGUF `tokenizer.chat_template`, tokenizer_config.json
/// `chat_template`) rendered by the Jinja interpreter in `Jinja/` exactly as Hugging Face's `apply_chat_template`
/// renders it, or the built-in ChatML format.
///
/// Rendering passes the template what HF passes: `messages`, `add_generation_prompt`, `tools` and `documents`
/// (both `none`), and the special tokens in ``specialTokens`` (`bos_token`, `eos_token`, ...). A template that calls
/// `raise_exception(msg)` makes ``render(_:addGenerationPrompt:)`` throw ``JinjaError/raised(_:)`` with `msg`.
public struct ChatTemplate: Sendable, Hashable {
    /// For the built-in ChatML format: inserted as a first `system` message when the first message is not a system
    /// message (and there is at least one message), as SmolLM2's `{% if loop.first and messages[0]['role'] !=
    /// 'system' %}` does. For a Jinja template, the literal default system prompt found in a ChatML template, if
    /// any (informational; the template itself decides what is rendered).
    public var defaultSystemPrompt: String?
    /// The Jinja source, or nil for the built-in ChatML format.
    public var source: String? { jinja?.source }
    /// Variables such as `bos_token` and `eos_token` passed to the template (HF's `special_tokens_map`).
    public var specialTokens: [String: String]
    let jinja: JinjaTemplate?

    /// The built-in ChatML format, with `defaultSystemPrompt` inserted when the conversation has no system message.
    public init(defaultSystemPrompt: String? = nil) {
        self.defaultSystemPrompt = defaultSystemPrompt
        self.specialTokens = [:]
        self.jinja = nil
    }

    /// Parses a Jinja chat template. Throws ``JinjaError`` when it is not valid Jinja or uses a construct the
    /// interpreter does not implement.
    public init(jinja source: String, specialTokens: [String: String] = [:]) throws {
        self.jinja = try JinjaTemplate(source)
        self.specialTokens = specialTokens
        self.defaultSystemPrompt = Self.literalChatMLSystemPrompt(source)
    }

    /// Plain ChatML, no default system prompt.
    public static let chatML = ChatTemplate()

    static let start = "<|im_start|>"
    static let end = "<|im_end|>"

    /// A template from its Jinja source, or nil if it does not parse (see ``init(jinja:specialTokens:)`` for the
    /// error).
    public static func from(jinja template: String, specialTokens: [String: String] = [:]) -> ChatTemplate? {
        try? ChatTemplate(jinja: template, specialTokens: specialTokens)
    }

    /// A copy with the given special tokens (e.g. `["bos_token": "<s>", "eos_token": "</s>"]`) added.
    public func with(specialTokens more: [String: String]) -> ChatTemplate {
        var c = self
        c.specialTokens.merge(more) { _, new in new }
        return c
    }

    public static func == (a: ChatTemplate, b: ChatTemplate) -> Bool {
        a.defaultSystemPrompt == b.defaultSystemPrompt && a.source == b.source && a.specialTokens == b.specialTokens
    }

    public func hash(into h: inout Hasher) {
        h.combine(defaultSystemPrompt)
        h.combine(source)
        h.combine(specialTokens)
    }

    /// Renders `messages`; with `addGenerationPrompt`, ends with the prompt for the assistant's reply.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        guard jinja != nil else { return renderChatML(messages, addGenerationPrompt: addGenerationPrompt) }
        let values: [JinjaValue] = messages.map { ["role": .string($0.role), "content": .string($0.content)] }
        return try render(messages: values, addGenerationPrompt: addGenerationPrompt)
    }

    /// Renders messages given as Jinja values (dictionaries that may carry more than `role` and `content`, such as
    /// `tool_calls`). `variables` are added to (and override) the standard ones; `now` is what `strftime_now`
    /// formats.
    public func render(messages: [JinjaValue], addGenerationPrompt: Bool, variables: [String: JinjaValue] = [:],
                       now: Date = Date()) throws -> String {
        guard let jinja else {
            let plain = try messages.map { m -> ChatMessage in
                guard case .object(let o) = m, case .string(let role)? = o["role"], case .string(let content)? = o["content"] else {
                    throw JinjaError.invalidInput("the built-in ChatML template needs messages with string role and content")
                }
                return ChatMessage(role: role, content: content)
            }
            return renderChatML(plain, addGenerationPrompt: addGenerationPrompt)
        }
        var vars: [String: JinjaValue] = [:]
        for (k, v) in specialTokens { vars[k] = .string(v) }
        vars["messages"] = .list(messages)
        vars["tools"] = JinjaValue.none
        vars["documents"] = JinjaValue.none
        vars["add_generation_prompt"] = .bool(addGenerationPrompt)
        vars.merge(variables) { _, new in new }
        return try jinja.render(vars, now: now)
    }

    func renderChatML(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        var s = ""
        if let system = defaultSystemPrompt, let first = messages.first, first.role != "system" {
            s += Self.start + "system\n" + system + Self.end + "\n"
        }
        for m in messages {
            s += Self.start + m.role + "\n" + m.content + Self.end + "\n"
        }
        if addGenerationPrompt {
            s += Self.start + "assistant\n"
        }
        return s
    }

    /// The literal system message `<|im_start|>system\n…<|im_end|>` written as one string literal in a ChatML
    /// template (not built from `message['content']`), if there is one.
    static func literalChatMLSystemPrompt(_ template: String) -> String? {
        guard template.contains(start), template.contains(end) else { return nil }
        var searchFrom = template.startIndex
        let marker = start + "system"
        while let r = template.range(of: marker, range: searchFrom..<template.endIndex) {
            searchFrom = r.upperBound
            var rest = template[r.upperBound...]
            if rest.hasPrefix("\n") {
                rest = rest.dropFirst()
            } else if rest.hasPrefix("\\n") {
                rest = rest.dropFirst(2)
            } else {
                continue
            }
            guard let e = rest.range(of: end) else { continue }
            let literal = rest[..<e.lowerBound]
            let before = r.lowerBound > template.startIndex ? template[template.index(before: r.lowerBound)] : " "
            if literal.contains("{{") || literal.contains("{%") { continue }
            if before == "'" || before == "\"", Self.containsUnescaped(before, in: literal) { continue }
            return unescapeJinja(literal)
        }
        return nil
    }

    static func containsUnescaped(_ quote: Character, in s: Substring) -> Bool {
        var escaped = false
        for c in s {
            if escaped {
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == quote {
                return true
            }
        }
        return false
    }

    /// Jinja string-literal escapes: `\n`, `\t`, `\r`, `\'`, `\"`, `\\`.
    static func unescapeJinja(_ s: Substring) -> String {
        var out = ""
        var it = s.makeIterator()
        while let c = it.next() {
            guard c == "\\", let n = it.next() else {
                out.append(c)
                continue
            }
            switch n {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "'", "\"", "\\": out.append(n)
            default:
                out.append(c)
                out.append(n)
            }
        }
        return out
    }
}

extension ChatTemplate {
    /// The special tokens of a parsed tokenizer_config.json (`bos_token`, `eos_token`, `unk_token`, `pad_token`,
    /// `sep_token`, `cls_token`, `mask_token`: a string or an `{"content": ...}` object), as HF passes them to
    /// templates.
    public static func specialTokens(tokenizerConfig json: [String: Any]) -> [String: String] {
        var out: [String: String] = [:]
        for key in ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token"] {
            if let s = json[key] as? String {
                out[key] = s
            } else if let s = (json[key] as? [String: Any])?["content"] as? String {
                out[key] = s
            }
        }
        return out
    }
}

extension ChatTemplate {
    /// The special tokens of GGUF tokenizer metadata (`tokenizer.ggml.{bos,eos,unknown,padding}_token_id` looked up
    /// in `tokenizer.ggml.tokens`), named as HF passes them to templates.
    public static func specialTokens(gguf f: GGUFFile) -> [String: String] {
        guard let tokens = f["tokenizer.ggml.tokens"]?.strings else { return [:] }
        var out: [String: String] = [:]
        for (key, name) in [("bos_token_id", "bos_token"), ("eos_token_id", "eos_token"),
                            ("unknown_token_id", "unk_token"), ("padding_token_id", "pad_token")] {
            if let id = f["tokenizer.ggml." + key]?.int, id >= 0, id < tokens.count { out[name] = tokens[id] }
        }
        return out
    }
}
