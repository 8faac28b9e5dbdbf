import Foundation

/// Picks the next token from a row of logits: greedy, or temperature / top-k / top-p / min-p sampling with a seeded
/// generator, after optional repetition, frequency and presence penalties.
///
/// The order is Hugging Face's: penalties (logits processors), then temperature, top-k, top-p (nucleus), min-p,
/// then sampling. Greedy (`temperature == 0`) takes the argmax of the penalised logits.
///
/// Penalties (all off by default):
/// - `repetitionPenalty` (HF `RepetitionPenaltyLogitsProcessor`, llama.cpp `--repeat-penalty`): every token among
///   the `recent` tokens passed to ``next(_:recent:generated:)`` has its logit divided by the penalty when positive,
///   multiplied when negative (each token once).
/// - `frequencyPenalty` / `presencePenalty` (OpenAI): `logit[j] -= count[j]·frequency + (count[j] > 0 ? presence : 0)`,
///   `count[j]` = occurrences of j among the `generated` tokens.
public struct Sampler: Sendable {
    /// 0 means greedy (argmax; the first maximum on ties, like `torch.argmax`).
    public var temperature: Float
    /// Keep only the `topK` most likely tokens.
    public var topK: Int?
    /// Keep the smallest set of most likely tokens whose probability reaches `topP`.
    public var topP: Float?
    /// Drop tokens whose probability is below `minP` times the most likely one's (after temperature).
    public var minP: Float?
    /// Divides positive / multiplies negative logits of recently seen tokens (1 = off).
    public var repetitionPenalty: Float
    /// Subtracted from a token's logit once per time it was generated (OpenAI `frequency_penalty`, 0 = off).
    public var frequencyPenalty: Float
    /// Subtracted once from the logit of every token generated so far (OpenAI `presence_penalty`, 0 = off).
    public var presencePenalty: Float
    var generator: SeededGenerator

    /// Preconditions hold what ``validate(temperature:topK:topP:minP:repetitionPenalty:frequencyPenalty:presencePenalty:)``
    /// checks: call that first on values that come from users.
    public init(temperature: Float = 0, topK: Int? = nil, topP: Float? = nil, minP: Float? = nil,
                repetitionPenalty: Float = 1, frequencyPenalty: Float = 0, presencePenalty: Float = 0, seed: UInt64 = 0) {
        precondition((try? Self.validate(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                         repetitionPenalty: repetitionPenalty, frequencyPenalty: frequencyPenalty,
                                         presencePenalty: presencePenalty)) != nil, "invalid sampler settings")
        (self.temperature, self.topK, self.topP, self.minP) = (temperature, topK, topP, minP)
        (self.repetitionPenalty, self.frequencyPenalty, self.presencePenalty) = (repetitionPenalty, frequencyPenalty, presencePenalty)
        generator = SeededGenerator(seed: seed)
    }

    /// Throws a ``SamplerError`` naming the first setting out of range: temperature ≥ 0, top-k > 0, top-p in (0, 1],
    /// min-p in [0, 1], repetition penalty > 0, frequency and presence penalties finite in [-2, 2] (OpenAI's range).
    public static func validate(temperature: Float = 0, topK: Int? = nil, topP: Float? = nil, minP: Float? = nil,
                                repetitionPenalty: Float = 1, frequencyPenalty: Float = 0, presencePenalty: Float = 0) throws {
        guard temperature.isFinite, temperature >= 0 else { throw SamplerError(parameter: "temperature", message: "temperature must be ≥ 0") }
        if let topK, topK <= 0 { throw SamplerError(parameter: "top_k", message: "top-k must be positive") }
        if let topP, !(topP > 0 && topP <= 1) { throw SamplerError(parameter: "top_p", message: "top-p must be in (0, 1]") }
        if let minP, !(minP >= 0 && minP <= 1) { throw SamplerError(parameter: "min_p", message: "min-p must be in [0, 1]") }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else {
            throw SamplerError(parameter: "repetition_penalty", message: "repetition penalty must be > 0")
        }
        guard frequencyPenalty >= -2, frequencyPenalty <= 2 else {
            throw SamplerError(parameter: "frequency_penalty", message: "frequency penalty must be in [-2, 2]")
        }
        guard presencePenalty >= -2, presencePenalty <= 2 else {
            throw SamplerError(parameter: "presence_penalty", message: "presence penalty must be in [-2, 2]")
        }
    }

    /// Greedy decoding.
    public static let greedy = Sampler()

    /// Restarts the random stream from `seed` (the settings are kept).
    public mutating func reseed(_ seed: UInt64) { generator = SeededGenerator(seed: seed) }

    /// Whether any penalty is on (the sampler then needs the token history).
    public var hasPenalties: Bool { repetitionPenalty != 1 || frequencyPenalty != 0 || presencePenalty != 0 }

    /// The logits after the penalties for `recent` (repetition) and `generated` (frequency / presence) tokens.
    public func penalized(_ logits: UnsafeBufferPointer<Float>, recent: some Collection<Int>, generated: some Collection<Int>) -> [Float] {
        var out = Array(logits)
        if repetitionPenalty != 1 {
            for t in Set(recent) where t >= 0 && t < out.count {
                out[t] = out[t] < 0 ? out[t] * repetitionPenalty : out[t] / repetitionPenalty
            }
        }
        if frequencyPenalty != 0 || presencePenalty != 0 {
            var counts: [Int: Int] = [:]
            for t in generated { counts[t, default: 0] += 1 }
            for (t, c) in counts where t >= 0 && t < out.count {
                out[t] -= Float(c) * frequencyPenalty + presencePenalty
            }
        }
        return out
    }

    /// The next token for `logits` (one row, vocabulary-sized). `recent` are the tokens the repetition penalty looks
    /// at (e.g. the last 64 of prompt + output), `generated` those the frequency / presence penalties count.
    public mutating func next(_ logits: UnsafeBufferPointer<Float>, recent: [Int] = [], generated: [Int] = []) -> Int {
        guard hasPenalties else { return choose(logits) }
        let p = penalized(logits, recent: recent, generated: generated)
        return p.withUnsafeBufferPointer { choose($0) }
    }

    mutating func choose(_ logits: UnsafeBufferPointer<Float>) -> Int {
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
        if let minP, minP > 0 {
            // probs[0] is the largest (unnormalised: exp(0) = 1), so the threshold is minP · probs[0] / total.
            let keep = max(1, probs.prefix { $0 >= minP * probs[0] }.count)
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

/// A sampler setting out of range (``Sampler/validate(temperature:topK:topP:minP:repetitionPenalty:frequencyPenalty:presencePenalty:)``).
public struct SamplerError: Error, CustomStringConvertible, Sendable {
    /// The setting's name as the OpenAI API spells it (`temperature`, `top_p`, …).
    public let parameter: String
    public let message: String
    public var description: String { message }
}

/// What to generate and when to stop.
public struct GenerationOptions: Sendable {
    public var maxNewTokens: Int
    public var sampler: Sampler
    /// Generation stops after emitting any of these (the stop token is included in the output).
    public var stopTokens: Set<Int>
    /// How many of the latest tokens (prompt and output) the repetition penalty looks at (llama.cpp's
    /// `repeat_last_n`, default 64).
    public var penaltyWindow: Int

    public init(maxNewTokens: Int, sampler: Sampler = .greedy, stopTokens: Set<Int> = [], penaltyWindow: Int = 64) {
        (self.maxNewTokens, self.sampler, self.stopTokens, self.penaltyWindow) = (maxNewTokens, sampler, stopTokens, penaltyWindow)
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
            let token = logits.withUnsafeBufferPointer { row in
                guard sampler.hasPenalties else { return sampler.next(row) }
                let recent = Array((prompt + out).suffix(options.penaltyWindow))
                return sampler.next(row, recent: recent, generated: out)
            }
            out.append(token)
            if !onToken(token) || options.stopTokens.contains(token) || out.count == options.maxNewTokens { break }
            logits = try lastLogits([token], cache: cache)
        }
        s.generatedTokens = out.count
        s.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        return GenerationResult(tokens: out, stats: s)
    }
}
