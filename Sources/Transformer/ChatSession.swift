import Foundation

/// A conversation with a model that keeps its KV cache across turns: each turn feeds only the tokens the cache has
/// not seen (the new user message and the chat-template glue), so a follow-up costs its own length, not the whole
/// conversation's.
///
/// ```swift
/// let llm = try ModelLoader.open("models/SmolLM2-135M-Instruct.Q4_1.gguf").textGenerator()
/// let chat = try ChatSession(generator: llm, systemPrompt: "You are concise.")
/// let first = try chat.respond(to: "What is the capital of France?") { print($0, terminator: ""); return true }
/// let second = try chat.respond(to: "And of Italy?") { print($0, terminator: ""); return true }  // reuses the cache
/// ```
///
/// The streaming callback returns false to stop the reply early (the partial reply stays in the history). When the
/// rendered conversation no longer fits the context, the oldest turns are dropped (the system prompt is kept) and
/// the cache is rebuilt from the shortened conversation.
public final class ChatSession {
    public let generator: TextGenerator
    public let template: ChatTemplate
    /// The KV cache; its first ``cachedTokens``.count positions hold exactly ``cachedTokens``.
    public let cache: KVCache
    /// The conversation so far (system prompt first when there is one).
    public private(set) var messages: [ChatMessage]
    /// The tokens whose keys and values are in ``cache``.
    public private(set) var cachedTokens: [Int] = []
    /// Settings of every reply unless ``respond(to:options:onText:)`` is given others.
    public var options: TextGenerationOptions
    /// Tokens of the last turn taken from the cache, and fed to the model.
    public private(set) var lastTurn: (reused: Int, fed: Int, droppedMessages: Int) = (0, 0, 0)
    private var seed: UInt64 = 0
    private var turns: UInt64 = 0

    /// - Parameters:
    ///   - contextLength: KV-cache positions (default and upper bound: the model's `maxPositions`).
    ///   - seed: seeds each turn's sampler (turn i uses `seed + i`); irrelevant for greedy decoding.
    /// - Throws: when the model declares no supported chat template.
    public init(generator: TextGenerator, systemPrompt: String? = nil, contextLength: Int? = nil,
                options: TextGenerationOptions = TextGenerationOptions(maxNewTokens: 256), seed: UInt64 = 0) throws {
        guard let template = generator.chatTemplate else { throw ModelError.invalidConfig("this model declares no supported chat template") }
        self.generator = generator
        self.template = template
        let capacity = max(1, min(contextLength ?? generator.model.maxPositions, generator.model.maxPositions))
        cache = generator.model.makeCache(capacity: capacity)
        messages = systemPrompt.map { [.system($0)] } ?? []
        self.options = options
        self.seed = seed
    }

    /// Forgets the conversation (keeping the system prompt unless `keepSystemPrompt` is false) and the cache.
    public func reset(keepSystemPrompt: Bool = true) {
        messages = keepSystemPrompt ? messages.filter { $0.role == "system" } : []
        cachedTokens = []
        cache.reset()
        turns = 0
    }

    /// Appends `userText`, generates the assistant's reply (streamed to `onText`, which returns false to stop) and
    /// appends it to ``messages``.
    ///
    /// - Throws: ``GenerationError/contextOverflow(needed:capacity:)`` when even the system prompt and this message
    ///   alone do not fit (the message is then not kept).
    @discardableResult
    public func respond(to userText: String, options: TextGenerationOptions? = nil,
                        onText: (String) -> Bool = { _ in true }) throws -> TextGenerationResult {
        var options = options ?? self.options
        messages.append(.user(userText))
        // Leave room for at least part of a reply: the whole token budget, or a quarter of the context.
        let room = max(1, min(options.maxNewTokens, cache.capacity / 4))
        // A message that cannot fit even after the system prompt alone is refused before anything is dropped.
        let alone = try render(messages.filter { $0.role == "system" } + [.user(userText)])
        guard alone.count + room <= cache.capacity else {
            messages.removeLast()
            throw GenerationError.contextOverflow(needed: alone.count + room, capacity: cache.capacity)
        }
        var all = try render()
        var dropped = 0
        while all.count + room > cache.capacity {
            guard let first = messages.firstIndex(where: { $0.role != "system" }), first < messages.count - 1 else {
                messages.removeLast()
                throw GenerationError.contextOverflow(needed: all.count + room, capacity: cache.capacity)
            }
            // Drop the oldest turn: a user message with the assistant reply that follows it.
            let end = first + 1 < messages.count - 1 && messages[first + 1].role == "assistant" ? first + 2 : first + 1
            dropped += end - first
            messages.removeSubrange(first..<end)
            all = try render()
        }
        // Reuse the cached prefix the rendered conversation shares (at least one token must be fed).
        var shared = 0
        let limit = min(cachedTokens.count, all.count - 1)
        while shared < limit && cachedTokens[shared] == all[shared] { shared += 1 }
        cache.truncate(to: shared)
        cachedTokens.removeLast(cachedTokens.count - shared)
        let prompt = Array(all[shared...])
        options.maxNewTokens = max(1, min(options.maxNewTokens, cache.remaining - prompt.count + 1))
        options.sampler.reseed(seed &+ turns)
        turns += 1
        let result = try generator.generate(prompt: prompt, options: options, cache: cache, onText: onText)
        cachedTokens += prompt + result.tokens.dropLast()
        messages.append(.assistant(result.text))
        lastTurn = (shared, prompt.count, dropped)
        return result
    }

    private func render(_ messages: [ChatMessage]? = nil) throws -> [Int] {
        generator.tokenizer.encode(try template.render(messages ?? self.messages, addGenerationPrompt: true), addSpecialTokens: false)
    }
}
