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

/// A ChatML chat template (`<|im_start|>role\ncontent<|im_end|>\n` per message), as used by SmolLM2, Qwen2 and
/// others, optionally with a default system prompt inserted when the conversation does not start with one.
///
/// This is not a Jinja engine: ``from(jinja:)`` recognises ChatML templates and extracts the default system
/// prompt. For SmolLM2-Instruct, ``render(_:addGenerationPrompt:)`` is byte-identical to HF's
/// `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)`.
public struct ChatTemplate: Sendable, Hashable {
    /// Inserted as a first `system` message when the first message is not a system message (and there is at
    /// least one message), as SmolLM2's `{% if loop.first and messages[0]['role'] != 'system' %}` does.
    public var defaultSystemPrompt: String?

    /// A ChatML template, with `defaultSystemPrompt` inserted when the conversation has no system message.
    public init(defaultSystemPrompt: String? = nil) {
        self.defaultSystemPrompt = defaultSystemPrompt
    }

    /// Plain ChatML, no default system prompt.
    public static let chatML = ChatTemplate()

    static let start = "<|im_start|>"
    static let end = "<|im_end|>"

    /// Recognises a ChatML Jinja template (GGUF `tokenizer.chat_template` or tokenizer_config.json
    /// `chat_template`): it must contain `<|im_start|>` and `<|im_end|>`. A literal system message in the
    /// template, `<|im_start|>system\n…<|im_end|>` written as one string literal (not built from
    /// `message['content']`), becomes ``defaultSystemPrompt``. Returns `nil` for other templates.
    public static func from(jinja template: String) -> ChatTemplate? {
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
            // Inside a Jinja string literal, an unescaped closing quote means the text is built from pieces
            // (`'<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>'`), not a literal prompt.
            let before = r.lowerBound > template.startIndex ? template[template.index(before: r.lowerBound)] : " "
            if literal.contains("{{") || literal.contains("{%") { continue }
            if before == "'" || before == "\"", Self.containsUnescaped(before, in: literal) { continue }
            return ChatTemplate(defaultSystemPrompt: unescapeJinja(literal))
        }
        return ChatTemplate()
    }

    /// Renders `messages`; with `addGenerationPrompt`, appends `<|im_start|>assistant\n` for the reply.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
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
