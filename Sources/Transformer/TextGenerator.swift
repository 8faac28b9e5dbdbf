import Foundation

/// A causal language model together with its tokenizer and chat template: text in, streamed text out.
///
/// ```swift
/// let llm = try ModelLoader.open("models/SmolLM2-135M-Instruct.Q4_1.gguf").textGenerator()
/// let reply = try llm.reply(to: [.user("What is the capital of France?")], maxNewTokens: 32) { print($0, terminator: "") }
/// ```
public final class TextGenerator: @unchecked Sendable {
    public let model: any CausalLanguageModel
    public let tokenizer: any TextTokenizer
    /// The model's chat template (Jinja), when it declares one that parses.
    public let chatTemplate: ChatTemplate?
    /// Tokens that end a turn or the text (EOS and `<|im_end|>`-style end-of-turn tokens).
    public let stopTokens: Set<Int>
    /// Why the model's chat template could not be used (it does not parse, or uses unsupported Jinja), if so.
    public let chatTemplateError: String?

    /// A generator over parts you already have; ``ModelLoader/open(_:)`` + ``OpenedModel/textGenerator()`` gathers
    /// them from a GGUF file or an HF folder.
    public init(model: any CausalLanguageModel, tokenizer: any TextTokenizer, chatTemplate: ChatTemplate?, stopTokens: Set<Int>,
                chatTemplateError: String? = nil) {
        (self.model, self.tokenizer, self.chatTemplate, self.stopTokens) = (model, tokenizer, chatTemplate, stopTokens)
        self.chatTemplateError = chatTemplateError
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
        let r = try generate(prompt: prompt, options: TextGenerationOptions(maxNewTokens: maxNewTokens, sampler: sampler),
                             cache: cache) { onText($0); return true }
        return GenerationResult(tokens: r.tokens, stats: r.stats)
    }

    /// Generates after `prompt` (token ids) with stop strings and penalties, streaming the decoded text to `onText`,
    /// which returns false to stop (the result then says ``FinishReason/cancelled``).
    ///
    /// Generation ends at a stop token (EOS / end of turn), a stop string (never part of the text), `maxNewTokens`,
    /// or when `onText` returns false. With a `cache` that already holds a conversation, `prompt` continues it; as
    /// with ``CausalLanguageModel/generate(prompt:options:cache:onToken:)`` the last returned token has not been run
    /// through the model.
    @discardableResult
    public func generate(prompt: [Int], options: TextGenerationOptions, cache: KVCache? = nil,
                         onText: (String) -> Bool) throws -> TextGenerationResult {
        var stream = TextStream(tokenizer: tokenizer, stopTokens: stopTokens, options: options)
        var cancelled = false
        let result = try model.generate(prompt: prompt, options: GenerationOptions(
            maxNewTokens: options.maxNewTokens, sampler: options.sampler, stopTokens: stopTokens,
            penaltyWindow: options.penaltyWindow), cache: cache) { id in
            let (text, finished) = stream.accept(id)
            if !text.isEmpty, !onText(text) { cancelled = true; return false }
            return finished == nil
        }
        return TextGenerationResult(text: stream.text, tokens: result.tokens,
                                    finishReason: cancelled ? .cancelled : (stream.finishReason ?? .length), stats: result.stats)
    }

    /// One assistant reply to `messages`, streamed to `onText`; returns the reply's text.
    ///
    /// This renders and runs the whole conversation every time; ``ChatSession`` keeps the KV cache across turns.
    public func reply(to messages: [ChatMessage], maxNewTokens: Int, sampler: Sampler = .greedy,
                      onText: (String) -> Void = { _ in }) throws -> String {
        var text = ""
        try generate(prompt: chatTokens(messages), maxNewTokens: maxNewTokens, sampler: sampler) { text += $0; onText($0) }
        return text
    }
}

/// Why a generation ended (the OpenAI `finish_reason` spelling for the first two).
public enum FinishReason: String, Sendable, Codable {
    /// A stop token (EOS, end of turn) or a stop string.
    case stop
    /// The token limit (or the context) was reached.
    case length
    /// The caller stopped it (a streaming callback returned false, a client went away).
    case cancelled
}

/// Text-level generation settings, shared by the CLI, ``TextGenerator``, ``ChatSession`` and ``BatchScheduler``.
public struct TextGenerationOptions: Sendable {
    /// Most tokens to generate.
    public var maxNewTokens: Int
    /// Sampling and penalties.
    public var sampler: Sampler
    /// Generation stops before any of these strings; they are never emitted (``StopStringMatcher``).
    public var stopStrings: [String]
    /// How many of the latest tokens the repetition penalty looks at.
    public var penaltyWindow: Int

    public init(maxNewTokens: Int, sampler: Sampler = .greedy, stopStrings: [String] = [], penaltyWindow: Int = 64) {
        (self.maxNewTokens, self.sampler, self.stopStrings, self.penaltyWindow) = (maxNewTokens, sampler, stopStrings, penaltyWindow)
    }
}

/// The text of one generation, its tokens, why it ended and its timings.
public struct TextGenerationResult: Sendable {
    /// Everything emitted (stop strings excluded).
    public var text: String
    /// Every sampled token (including a final stop token).
    public var tokens: [Int]
    public var finishReason: FinishReason
    public var stats: GenerationStats
}

/// Turns sampled tokens into emitted text for one sequence: UTF-8-safe streaming decode (special tokens skipped),
/// stop tokens, stop strings and the token limit. Used by ``TextGenerator`` and ``BatchScheduler`` alike.
public struct TextStream: Sendable {
    public let stopTokens: Set<Int>
    public let maxNewTokens: Int
    private var decoder: StreamingDecoder
    private var matcher: StopStringMatcher
    /// Tokens accepted so far.
    public private(set) var tokens: [Int] = []
    /// Text emitted so far.
    public private(set) var text = ""
    /// Set once the sequence is finished.
    public private(set) var finishReason: FinishReason?

    public init(tokenizer: any TextTokenizer, stopTokens: Set<Int>, options: TextGenerationOptions) {
        decoder = tokenizer.streamingDecoder(skipSpecialTokens: true)
        matcher = StopStringMatcher(options.stopStrings)
        self.stopTokens = stopTokens
        maxNewTokens = options.maxNewTokens
    }

    /// Accepts the next sampled token; returns the text to emit now and, when the sequence ended, why.
    public mutating func accept(_ id: Int) -> (text: String, finished: FinishReason?) {
        guard finishReason == nil else { return ("", finishReason) }
        tokens.append(id)
        var out = ""
        if stopTokens.contains(id) {
            out = matcher.append(decoder.finish()) + matcher.finish()
            finishReason = .stop
        } else {
            out = matcher.append(decoder.append(id))
            if matcher.stopped {
                finishReason = .stop
            } else if tokens.count >= maxNewTokens {
                out += matcher.append(decoder.finish())
                out += matcher.finish()
                finishReason = matcher.stopped ? .stop : .length
            }
        }
        text += out
        return (out, finishReason)
    }

    /// Ends the sequence early (cancelled, or out of context) and returns the held-back text.
    public mutating func finish(_ reason: FinishReason) -> String {
        guard finishReason == nil else { return "" }
        finishReason = reason
        guard reason != .cancelled else { return "" }
        let out = matcher.append(decoder.finish()) + matcher.finish()
        text += out
        return out
    }
}
