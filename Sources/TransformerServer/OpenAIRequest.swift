import Foundation
import Transformer

/// A parsed and validated `/v1/chat/completions` or `/v1/completions` request body.
///
/// Fields follow OpenAI's API reference: `messages` (chat) or `prompt` (completions), `max_tokens` /
/// `max_completion_tokens`, `temperature` [0, 2], `top_p` [0, 1], `seed`, `stop` (a string or up to 16 strings),
/// `frequency_penalty` / `presence_penalty` [-2, 2], `stream`, `stream_options.include_usage`, `n` (only 1). Like
/// llama.cpp's server it also takes `top_k`, `min_p` and `repeat_penalty` (alias `repetition_penalty`). Unknown
/// fields are ignored; a known field of the wrong type or out of range is a 400 naming it.
struct GenerationRequest {
    enum Input {
        case messages([ChatMessage])
        case text(String)
        case tokens([Int])
    }

    var input: Input
    var maxTokens: Int?
    var temperature: Float = 1
    var topP: Float?
    var topK: Int?
    var minP: Float?
    var repeatPenalty: Float = 1
    var frequencyPenalty: Float = 0
    var presencePenalty: Float = 0
    var seed: UInt64?
    var stop: [String] = []
    var stream = false
    var includeUsage = false
    var model: String?

    /// Parses `body` for the chat endpoint (`chat == true`) or the completions endpoint.
    static func parse(_ body: Data, chat: Bool) throws -> GenerationRequest {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        } catch {
            throw OpenAIError.invalid("We could not parse the JSON body of your request. (The body must be valid JSON.)")
        }
        guard let json = object as? [String: Any] else {
            throw OpenAIError.invalid("The request body must be a JSON object.")
        }
        let p = Fields(json)
        var r: GenerationRequest
        if chat {
            guard let raw = json["messages"], !(raw is NSNull) else {
                throw OpenAIError.invalid("Missing required parameter: 'messages'.", param: "messages", code: "missing_required_parameter")
            }
            guard let list = raw as? [Any] else {
                throw OpenAIError.invalid("Invalid type for 'messages': expected an array of objects.", param: "messages", code: "invalid_type")
            }
            guard !list.isEmpty else {
                throw OpenAIError.invalid("Invalid 'messages': empty array. Expected an array with minimum length 1.",
                                          param: "messages", code: "empty_array")
            }
            r = GenerationRequest(input: .messages(try list.enumerated().map { try message($1, index: $0) }))
        } else {
            guard let raw = json["prompt"], !(raw is NSNull) else {
                throw OpenAIError.invalid("Missing required parameter: 'prompt'.", param: "prompt", code: "missing_required_parameter")
            }
            if let s = raw as? String {
                r = GenerationRequest(input: .text(s))
            } else if let list = raw as? [Any], list.count == 1, let s = list[0] as? String {
                r = GenerationRequest(input: .text(s))
            } else if let list = raw as? [Any], !list.isEmpty, list.allSatisfy({ isInteger($0) }) {
                r = GenerationRequest(input: .tokens(list.map { ($0 as! NSNumber).intValue }))
            } else {
                throw OpenAIError.invalid("Invalid 'prompt': expected a string, a list of one string, or a list of token ids.",
                                          param: "prompt", code: "invalid_type")
            }
        }
        r.model = try p.string("model")
        if let n = try p.int("n"), n != 1 {
            throw OpenAIError.invalid("Invalid 'n': only n = 1 is supported.", param: "n", code: "unsupported_value")
        }
        let maxTokens = try p.int("max_completion_tokens") ?? p.int("max_tokens")
        if let m = maxTokens, m < 1 {
            let name = json["max_completion_tokens"] != nil ? "max_completion_tokens" : "max_tokens"
            throw OpenAIError.invalid("Invalid '\(name)': integer below minimum value. Expected a value >= 1, but got \(m) instead.",
                                      param: name, code: "integer_below_min_value")
        }
        r.maxTokens = maxTokens
        r.temperature = try p.number("temperature", in: 0...2) ?? 1
        r.topP = try p.number("top_p", in: 0...1)
        r.minP = try p.number("min_p", in: 0...1)
        if let k = try p.int("top_k") {
            guard k >= 0 else { throw OpenAIError.invalid("Invalid 'top_k': expected a value >= 0.", param: "top_k") }
            r.topK = k == 0 ? nil : k
        }
        r.repeatPenalty = try p.number("repeat_penalty", in: 0.01...10) ?? p.number("repetition_penalty", in: 0.01...10) ?? 1
        r.frequencyPenalty = try p.number("frequency_penalty", in: -2...2) ?? 0
        r.presencePenalty = try p.number("presence_penalty", in: -2...2) ?? 0
        if let s = try p.int("seed") { r.seed = UInt64(bitPattern: Int64(s)) }
        if let raw = json["stop"], !(raw is NSNull) {
            if let s = raw as? String {
                r.stop = [s]
            } else if let list = raw as? [Any], list.count <= 16, list.allSatisfy({ $0 is String }) {
                r.stop = list.map { $0 as! String }
            } else {
                throw OpenAIError.invalid("Invalid 'stop': expected a string or an array of at most 16 strings.",
                                          param: "stop", code: "invalid_type")
            }
        }
        r.stream = try p.bool("stream") ?? false
        if let raw = json["stream_options"], !(raw is NSNull) {
            guard let o = raw as? [String: Any] else {
                throw OpenAIError.invalid("Invalid type for 'stream_options': expected an object.", param: "stream_options", code: "invalid_type")
            }
            guard r.stream else {
                throw OpenAIError.invalid("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                                          param: "stream_options", code: "invalid_value")
            }
            r.includeUsage = try Fields(o, prefix: "stream_options.").bool("include_usage") ?? false
        }
        return r
    }

    /// The sampler these settings describe (a random seed unless one was given).
    var sampler: Sampler {
        // OpenAI accepts top_p = 0; the nearest thing is keeping only the most likely token.
        let (topP, topK) = self.topP == 0 ? (nil, 1) : (self.topP, self.topK)
        return Sampler(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repeatPenalty,
                       frequencyPenalty: frequencyPenalty, presencePenalty: presencePenalty,
                       seed: seed ?? UInt64.random(in: 0...UInt64.max))
    }

    private static func message(_ raw: Any, index i: Int) throws -> ChatMessage {
        guard let m = raw as? [String: Any] else {
            throw OpenAIError.invalid("Invalid type for 'messages[\(i)]': expected an object.", param: "messages[\(i)]", code: "invalid_type")
        }
        guard let role = m["role"] as? String else {
            throw OpenAIError.invalid("Missing or invalid 'messages[\(i)].role': expected a string.",
                                      param: "messages[\(i)].role", code: "invalid_type")
        }
        guard ["system", "developer", "user", "assistant"].contains(role) else {
            throw OpenAIError.invalid("Invalid value: '\(role)'. Supported roles are 'system', 'developer', 'user' and 'assistant'.",
                                      param: "messages[\(i)].role", code: "invalid_value")
        }
        let content: String
        if let s = m["content"] as? String {
            content = s
        } else if let parts = m["content"] as? [Any] {
            // Content parts: only text parts are supported.
            var text = ""
            for (j, part) in parts.enumerated() {
                guard let o = part as? [String: Any], o["type"] as? String == "text", let t = o["text"] as? String else {
                    throw OpenAIError.invalid("Invalid 'messages[\(i)].content[\(j)]': only text parts are supported.",
                                              param: "messages[\(i)].content[\(j)]", code: "invalid_value")
                }
                text += t
            }
            content = text
        } else {
            throw OpenAIError.invalid("Missing or invalid 'messages[\(i)].content': expected a string or an array of text parts.",
                                      param: "messages[\(i)].content", code: "invalid_type")
        }
        return ChatMessage(role: role == "developer" ? "system" : role, content: content)
    }

    static func isInteger(_ v: Any) -> Bool {
        guard let n = v as? NSNumber, !isBool(n) else { return false }
        let d = n.doubleValue
        return d.isFinite && d == d.rounded() && abs(d) < 9.0e15
    }

    /// JSON `true`/`false` come back as boolean NSNumbers (Objective-C type "c"); JSON numbers never do.
    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    /// Typed access to optional fields (absent or `null` → nil; anything else of the wrong type → 400).
    struct Fields {
        let json: [String: Any]
        var prefix = ""
        init(_ json: [String: Any], prefix: String = "") { (self.json, self.prefix) = (json, prefix) }

        private func present(_ key: String) -> Any? {
            guard let v = json[key], !(v is NSNull) else { return nil }
            return v
        }

        private func wrongType(_ key: String, _ expected: String) -> OpenAIError {
            .invalid("Invalid type for '\(prefix)\(key)': expected \(expected).", param: prefix + key, code: "invalid_type")
        }

        func string(_ key: String) throws -> String? {
            guard let v = present(key) else { return nil }
            guard let s = v as? String else { throw wrongType(key, "a string") }
            return s
        }

        func int(_ key: String) throws -> Int? {
            guard let v = present(key) else { return nil }
            guard GenerationRequest.isInteger(v) else { throw wrongType(key, "an integer") }
            return (v as! NSNumber).intValue
        }

        func bool(_ key: String) throws -> Bool? {
            guard let v = present(key) else { return nil }
            guard let n = v as? NSNumber, GenerationRequest.isBool(n) else { throw wrongType(key, "a boolean") }
            return n.boolValue
        }

        func number(_ key: String, in range: ClosedRange<Float>) throws -> Float? {
            guard let v = present(key) else { return nil }
            guard let n = v as? NSNumber, !GenerationRequest.isBool(n) else { throw wrongType(key, "a number") }
            let x = n.floatValue
            guard x.isFinite, range.contains(x) else {
                throw OpenAIError.invalid("Invalid '\(prefix)\(key)': \(n) is out of range; expected a value in "
                                          + "[\(range.lowerBound), \(range.upperBound)].", param: prefix + key, code: "invalid_value")
            }
            return x
        }
    }
}
