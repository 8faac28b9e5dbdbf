import Foundation

/// Picks the next token from a row of logits: greedy, or temperature / top-k / top-p sampling with a seeded generator.
///
/// The order of the filters is Hugging Face's: temperature, then top-k, then top-p (nucleus), then sampling.
public struct Sampler: Sendable {
    /// 0 means greedy (argmax; the first maximum on ties, like `torch.argmax`).
    public var temperature: Float
    /// Keep only the `topK` most likely tokens.
    public var topK: Int?
    /// Keep the smallest set of most likely tokens whose probability reaches `topP`.
    public var topP: Float?
    var generator: SeededGenerator

    public init(temperature: Float = 0, topK: Int? = nil, topP: Float? = nil, seed: UInt64 = 0) {
        precondition(temperature >= 0, "temperature must be ≥ 0")
        precondition(topK.map { $0 > 0 } ?? true, "top-k must be positive")
        precondition(topP.map { $0 > 0 && $0 <= 1 } ?? true, "top-p must be in (0, 1]")
        (self.temperature, self.topK, self.topP) = (temperature, topK, topP)
        generator = SeededGenerator(seed: seed)
    }

    /// Greedy decoding.
    public static let greedy = Sampler()

    /// The next token for `logits` (one row, vocabulary-sized).
    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int {
        if temperature == 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return best
        }
        var order = Array(0..<logits.count)
        order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if let k = topK { order = Array(order.prefix(k)) }
        let m = logits[order[0]]
        var probs = order.map { Foundation.exp((logits[$0] - m) / temperature) }
        var total = probs.reduce(0, +)
        if let p = topP, p < 1 {
            var cumulative: Float = 0
            var keep = 0
            while keep < probs.count {
                cumulative += probs[keep] / total
                keep += 1
                if cumulative >= p { break }
            }
            order = Array(order.prefix(keep))
            probs = Array(probs.prefix(keep))
            total = probs.reduce(0, +)
        }
        var u = generator.nextUniform() * total
        for (i, p) in probs.enumerated() {
            u -= p
            if u < 0 { return order[i] }
        }
        return order[order.count - 1]
    }
}

/// What to generate and when to stop.
public struct GenerationOptions: Sendable {
    public var maxNewTokens: Int
    public var sampler: Sampler
    /// Generation stops after emitting any of these (the stop token is included in the output).
    public var stopTokens: Set<Int>

    public init(maxNewTokens: Int, sampler: Sampler = .greedy, stopTokens: Set<Int> = []) {
        (self.maxNewTokens, self.sampler, self.stopTokens) = (maxNewTokens, sampler, stopTokens)
    }
}

/// Timings of one generation.
public struct GenerationStats: Sendable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var promptSeconds = 0.0
    public var decodeSeconds = 0.0
    public var promptTokensPerSecond: Double { Double(promptTokens) / max(promptSeconds, 1e-9) }
    /// Tokens per second of the one-token decode steps (the first generated token comes from the prompt pass).
    public var decodeTokensPerSecond: Double { Double(max(generatedTokens - 1, 0)) / max(decodeSeconds, 1e-9) }
}

/// New tokens and how long they took.
public struct GenerationResult: Sendable {
    public var tokens: [Int]
    public var stats: GenerationStats
}

extension CausalLanguageModel {
    /// Generates up to `options.maxNewTokens` tokens after `prompt`.
    ///
    /// The prompt is run once (prefill), then one token per step against `cache`; with a cache that already holds a
    /// conversation, `prompt` continues it. `onToken` sees every new token as it is produced and may return false to
    /// stop. Returns the new tokens and timings. The last returned token has not been run through the model yet: a
    /// conversation that continues on the same cache starts its next prompt with it.
    @discardableResult
    public func generate(prompt: [Int], options: GenerationOptions, cache: KVCache? = nil,
                         onToken: (Int) -> Bool = { _ in true }) throws -> GenerationResult {
        guard !prompt.isEmpty else { throw GenerationError.emptyInput }
        // Positions the prompt and every generated token but the last occupy (saturating: maxNewTokens may be huge).
        let (sum, overflow) = prompt.count.addingReportingOverflow(max(options.maxNewTokens, 1) - 1)
        let needed = overflow ? Int.max : sum
        let cache = try cache ?? {
            guard needed <= maxPositions else { throw GenerationError.contextTooLong(needed: needed, maxPositions: maxPositions) }
            return try checkedCache(capacity: min(maxPositions, needed + 1))
        }()
        try cache.reserve(needed)
        var sampler = options.sampler
        var out: [Int] = []
        var s = GenerationStats(promptTokens: prompt.count)
        var t0 = DispatchTime.now().uptimeNanoseconds
        var logits = try lastLogits(prompt, cache: cache)
        s.promptSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        t0 = DispatchTime.now().uptimeNanoseconds
        while out.count < options.maxNewTokens {
            let token = logits.withUnsafeBufferPointer { sampler.next($0) }
            out.append(token)
            if !onToken(token) || options.stopTokens.contains(token) || out.count == options.maxNewTokens { break }
            logits = try lastLogits([token], cache: cache)
        }
        s.generatedTokens = out.count
        s.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        return GenerationResult(tokens: out, stats: s)
    }
}
