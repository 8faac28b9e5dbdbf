import ArgumentParser
import Foundation
import Transformer

/// `transformer-cli bench serve`: what continuous batching buys, measured on the ``BatchScheduler`` the server runs
/// (no HTTP in the timed path).
///
/// - Aggregate decode tokens/s with 1, 2, 4, 8 concurrent streams (greedy, fixed token budget each): the tokens
///   decoded after every stream's first token, over the time from the last first token to the last finish; the
///   ratio is against the single stream of the same run.
/// - Time to first token of a ~512-token prompt on a cold slot, then of a follow-up that extends the finished one
///   (prompt + reply + a new question) and so reuses the slot's cache: only the new tokens are prefilled.
struct ServeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Continuous batching: aggregate decode tok/s for 1–8 streams; TTFT cold vs prefix reuse.")

    @Option(help: "GGUF file or model directory with tokenizer.json.") var model: String
    @Option(help: "Comma-separated concurrent stream counts.") var streams = "1,2,4,8"
    @Option(help: "Tokens generated per stream.") var tokens = 64
    @Option(help: "Prompt tokens for the time-to-first-token measurement.") var promptTokens = 512
    @Option(help: "Timed repetitions (best is reported).") var repeats = 3
    @OptionGroup var threading: ThreadsOption
    @Option(help: "Write the rows as JSON to this path.") var json: String?

    final class Waiter: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        var completion: BatchScheduler.Completion?
        func handle(_ e: BatchScheduler.Event) {
            if case .finished(let c) = e { completion = c; done.signal() }
            if case .failed = e { done.signal() }
        }
    }

    func run() throws {
        try threading.apply()
        let counts = streams.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--streams must be positive integers") }
        guard tokens >= 2, promptTokens >= 16, repeats >= 1 else { throw ValidationError("--tokens ≥ 2, --prompt-tokens ≥ 16, --repeats ≥ 1") }
        let generator = try ModelLoader.open(model).textGenerator()
        let scheduler = try BatchScheduler(generator: generator, configuration: .init(
            parallel: counts.max()!, contextLength: max(1024, promptTokens + 2 * tokens + 64), maxQueued: 0))
        scheduler.start()
        defer { scheduler.shutdown() }
        print("serve: \(URL(fileURLWithPath: model).lastPathComponent), \(Threading.workers) workers, \(tokens) tokens per stream, "
              + "best of \(repeats)")
        var report = Report(columns: ["streams", "decode_tps", "ratio_vs_1", "steps", "ttft_ms"])
        print(report.header())
        var single: Double?
        // Prompts SmolLM2 continues greedily for at least 64 tokens (none stops at EOS early), so k streams decode
        // together for the whole window; a stream that stops early is reported below.
        let stories = ["Once upon a time", "The history of the city", "In the year 2050",
                       "Here is a recipe for chocolate chip cookies:", "The best way to learn", "A letter to my friend",
                       "Deep in the forest", "The scientist said"]
        for k in counts {
            var best = 0.0, bestSteps = 0, bestTTFT = Double.infinity
            for rep in 0...repeats {  // the first run warms up
                let waiters = (0..<k).map { _ in Waiter() }
                let steps0 = scheduler.steps
                for (i, w) in waiters.enumerated() {
                    let prompt = generator.tokenizer.encode(stories[i % stories.count] + (i >= stories.count ? " \(i)" : ""))
                    try scheduler.submit(prompt: prompt, options: TextGenerationOptions(maxNewTokens: tokens)) { w.handle($0) }
                }
                for w in waiters { w.done.wait() }
                let done = waiters.compactMap(\.completion)
                guard done.count == k, let lastFirst = done.compactMap(\.timeToFirstToken).max() else { continue }
                let window = done.map(\.totalSeconds).max()! - lastFirst
                let decoded = done.reduce(0) { $0 + $1.tokens.count - 1 }
                let early = done.filter { $0.tokens.count < tokens }.count
                if early > 0, rep == 1 {
                    stderrPrint("bench serve: \(early) of \(k) streams stopped before \(tokens) tokens (EOS); fewer than \(k) "
                                + "decode together for part of the window")
                }
                if rep > 0, window > 0, Double(decoded) / window > best {
                    (best, bestSteps, bestTTFT) = (Double(decoded) / window, scheduler.steps - steps0, lastFirst)
                }
            }
            if k == 1 { single = best }
            report.add(["streams": .int(k), "decode_tps": .num(best, 1), "ratio_vs_1": single.map { .num(best / $0) } ?? .string("-"),
                        "steps": .int(bestSteps), "ttft_ms": .num(bestTTFT * 1000, 1)])
        }

        // Time to first token: a long prompt on a cold slot, then a follow-up turn that reuses its cache.
        var ttft = Report(columns: ["prompt_tokens", "cold_ttft_ms", "followup_fed", "followup_ttft_ms", "speedup"])
        print(ttft.header())
        let filler = "The quick brown fox jumps over the lazy dog while the cat watches from the window. "
        var bestCold = Double.infinity, bestFollow = Double.infinity, fed = 0, length = 0
        for rep in 0...repeats {
            // A different first word each time, so no slot holds any of it.
            var prompt = generator.tokenizer.encode("Story \(rep * 7919 % 1000): ")
            let fill = generator.tokenizer.encode(filler, addSpecialTokens: false)
            while prompt.count < promptTokens { prompt += fill }
            prompt = Array(prompt.prefix(promptTokens))
            let a = Waiter()
            try scheduler.submit(prompt: prompt, options: TextGenerationOptions(maxNewTokens: 16)) { a.handle($0) }
            a.done.wait()
            guard let first = a.completion, let cold = first.timeToFirstToken else { continue }
            let follow = prompt + first.tokens + generator.tokenizer.encode(" And then what happened next?", addSpecialTokens: false)
            let b = Waiter()
            try scheduler.submit(prompt: follow, options: TextGenerationOptions(maxNewTokens: 1)) { b.handle($0) }
            b.done.wait()
            guard let second = b.completion, let warm = second.timeToFirstToken else { continue }
            if rep > 0 {
                bestCold = min(bestCold, cold)
                if warm < bestFollow { (bestFollow, fed) = (warm, second.promptTokens - second.cachedPromptTokens) }
            }
            length = prompt.count
        }
        ttft.add(["prompt_tokens": .int(length), "cold_ttft_ms": .num(bestCold * 1000, 1), "followup_fed": .int(fed),
                  "followup_ttft_ms": .num(bestFollow * 1000, 1), "speedup": .num(bestCold / bestFollow, 1)])
        var all = report
        all.rows += ttft.rows
        try all.write(json: json, benchmark: "serve", extra: ["workers": .int(Threading.workers), "tokens": .int(tokens)])
    }
}
