import Foundation
import XCTest
@testable import Transformer

/// Generation controls (penalties, min-p, stop strings), ``ChatSession``, batched decoding and ``BatchScheduler``
/// against Hugging Face: the tiny random chat model and its references from `scripts/fixtures/serve.py`
/// (`Fixtures/chat_model/cases.json`), and the `llama_gqa` model of `scripts/fixtures/models.py`.
///
/// Tolerances: processed logits ≤ 1e-5 absolute (HF: float32 element-wise; OpenAI's formula evaluated in float64
/// then rounded); greedy ids and decoded text identical (every greedy margin in the fixture is ≥ 1e-3); batched logits
/// vs HF ≤ 1e-4 · max|HF| + 1e-5 (as ModelTests), batched vs the same sequence decoded alone ≤ 1e-5 relative.
final class GenerationControlsTests: XCTestCase {
    static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
    static let chatDir = fixtures.appendingPathComponent("chat_model")

    struct Chat: Decodable {
        let messages: [ChatMessage]
        let prompt_ids: [Int]
        let greedy_ids: [Int]
        let text: String
        let finish_reason: String
    }

    struct Cases: Decodable {
        struct Completion: Decodable { let prompt: String; let prompt_ids: [Int]; let greedy_ids: [Int]; let text: String }
        struct Repetition: Decodable { let prompt_ids: [Int]; let penalty: Float; let greedy_ids: [Int] }
        struct Processors: Decodable {
            let logits: [Float]
            let history: [Int]
            let repetition_penalty: Float
            let repetition_out: [Float]
            let generated: [Int]
            let frequency_penalty: Float
            let presence_penalty: Float
            let frequency_presence_out: [Float]
            let temperature: Float
            let min_p: Float
            let min_p_kept: [Int]
        }
        struct Turn: Decodable { let user: String; let prompt_ids: [Int]; let greedy_ids: [Int]; let text: String }
        struct Session: Decodable { let system: String; let turns: [Turn] }
        let chat: [Chat]
        let completion: Completion
        let repetition: Repetition
        let processors: Processors
        let session: Session
    }

    static let cases = try! JSONDecoder().decode(Cases.self, from: Data(contentsOf: chatDir.appendingPathComponent("cases.json")))
    static let generator = try! ModelLoader.open(chatDir.path).textGenerator()

    // MARK: - Logits processors

    func testRepetitionPenaltyMatchesHF() {
        let p = Self.cases.processors
        let s = Sampler(repetitionPenalty: p.repetition_penalty)
        let out = p.logits.withUnsafeBufferPointer { s.penalized($0, recent: p.history, generated: []) }
        for (a, b) in zip(out, p.repetition_out) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testFrequencyAndPresencePenaltiesMatchOpenAIFormula() {
        let p = Self.cases.processors
        let s = Sampler(frequencyPenalty: p.frequency_penalty, presencePenalty: p.presence_penalty)
        let out = p.logits.withUnsafeBufferPointer { s.penalized($0, recent: [], generated: p.generated) }
        for (a, b) in zip(out, p.frequency_presence_out) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    func testMinPKeepsWhatHFKeeps() {
        let p = Self.cases.processors
        // Sampling many times must draw only tokens HF's MinPLogitsWarper keeps, and (being frequent enough) all of them.
        var s = Sampler(temperature: p.temperature, minP: p.min_p, seed: 5)
        var seen = Set<Int>()
        p.logits.withUnsafeBufferPointer { row in for _ in 0..<6000 { seen.insert(s.next(row)) } }
        XCTAssertEqual(seen.sorted(), p.min_p_kept)
    }

    func testInvalidSamplerSettingsThrowNamingTheSetting() {
        XCTAssertThrowsError(try Sampler.validate(temperature: -1)) { XCTAssertEqual(($0 as? SamplerError)?.parameter, "temperature") }
        XCTAssertThrowsError(try Sampler.validate(minP: 1.5)) { XCTAssertEqual(($0 as? SamplerError)?.parameter, "min_p") }
        XCTAssertThrowsError(try Sampler.validate(frequencyPenalty: .nan)) { XCTAssertEqual(($0 as? SamplerError)?.parameter, "frequency_penalty") }
        XCTAssertThrowsError(try Sampler.validate(repetitionPenalty: 0)) { XCTAssertEqual(($0 as? SamplerError)?.parameter, "repetition_penalty") }
        XCTAssertNoThrow(try Sampler.validate(temperature: 0.7, topK: 40, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1))
    }

    func testGreedyWithRepetitionPenaltyMatchesHFGenerate() throws {
        let r = Self.cases.repetition
        let out = try Self.generator.model.generate(prompt: r.prompt_ids, options: GenerationOptions(
            maxNewTokens: r.greedy_ids.count, sampler: Sampler(repetitionPenalty: r.penalty), stopTokens: [], penaltyWindow: 1 << 20))
        XCTAssertEqual(out.tokens, r.greedy_ids)
    }

    // MARK: - Text generation and stop strings

    func testChatTemplateAndGreedyTextMatchHF() throws {
        for c in Self.cases.chat {
            XCTAssertEqual(try Self.generator.chatTokens(c.messages), c.prompt_ids)
            var streamed = ""
            let r = try Self.generator.generate(prompt: c.prompt_ids, options: TextGenerationOptions(maxNewTokens: c.greedy_ids.count)) {
                streamed += $0
                return true
            }
            XCTAssertEqual(r.tokens, c.greedy_ids)
            XCTAssertEqual(r.text, c.text)
            XCTAssertEqual(streamed, c.text)
            XCTAssertEqual(r.finishReason.rawValue, c.finish_reason)
        }
    }

    func testStopStringMatcherHoldsBackSplitStops() {
        var m = StopStringMatcher(["User:", "\n\n"])
        XCTAssertEqual(m.append("Hello Us"), "Hello ")
        XCTAssertEqual(m.append("e"), "")
        XCTAssertEqual(m.append("d to"), "Used to")
        XCTAssertEqual(m.append(" it\n"), " it")
        XCTAssertEqual(m.append("\nmore"), "")
        XCTAssertTrue(m.stopped)
        XCTAssertEqual(m.matched, "\n\n")
        XCTAssertEqual(m.append("x"), "")
        var n = StopStringMatcher(["abc"])
        XCTAssertEqual(n.append("xab"), "x")
        XCTAssertEqual(n.finish(), "ab")
    }

    func testStopStringAcrossTokensIsNeverEmitted() throws {
        // A stop string spanning a token boundary of HF's greedy reply: the text must end right before it.
        let c = Self.cases.chat[1]
        var decoder = Self.generator.tokenizer.streamingDecoder(skipSpecialTokens: true)
        let pieces = c.greedy_ids.map { decoder.append($0) }
        let boundary = pieces.prefix(4).joined().count  // the text up to the end of token 4
        let chars = Array(c.text)
        let stop = String(chars[(boundary - 2)..<(boundary + 2)])
        let expected = String(c.text[..<c.text.range(of: stop)!.lowerBound])
        var streamed: [String] = []
        let r = try Self.generator.generate(prompt: c.prompt_ids, options: TextGenerationOptions(
            maxNewTokens: c.greedy_ids.count, stopStrings: [stop])) { streamed.append($0); return true }
        XCTAssertEqual(r.text, expected)
        XCTAssertEqual(streamed.joined(), expected)
        XCTAssertEqual(r.finishReason, .stop)
        XCTAssertLessThan(r.tokens.count, c.greedy_ids.count)
    }

    func testStreamingCallbackStopsGeneration() throws {
        let c = Self.cases.chat[0]
        var calls = 0
        let r = try Self.generator.generate(prompt: c.prompt_ids, options: TextGenerationOptions(maxNewTokens: 12)) { _ in
            calls += 1
            return calls < 2
        }
        XCTAssertEqual(r.finishReason, .cancelled)
        XCTAssertEqual(calls, 2)
        XCTAssertLessThan(r.tokens.count, 12)
    }

    // MARK: - ChatSession

    func testChatSessionMatchesHFAndReusesTheCache() throws {
        let s = Self.cases.session
        let chat = try ChatSession(generator: Self.generator, systemPrompt: s.system)
        for (i, turn) in s.turns.enumerated() {
            let r = try chat.respond(to: turn.user, options: TextGenerationOptions(maxNewTokens: turn.greedy_ids.count))
            XCTAssertEqual(r.tokens, turn.greedy_ids, "turn \(i)")
            XCTAssertEqual(r.text, turn.text, "turn \(i)")
            XCTAssertEqual(chat.lastTurn.reused + chat.lastTurn.fed, turn.prompt_ids.count, "turn \(i)")
            if i > 0 {
                // The follow-up feeds only what the cache has not seen: far less than the whole conversation.
                XCTAssertGreaterThan(chat.lastTurn.reused, s.turns[i - 1].prompt_ids.count)
                XCTAssertLessThan(chat.lastTurn.fed, turn.prompt_ids.count - s.turns[i - 1].prompt_ids.count)
            }
        }
        XCTAssertEqual(chat.messages.map(\.role), ["system", "user", "assistant", "user", "assistant"])
    }

    func testChatSessionDropsOldestTurnsWhenTheContextFills() throws {
        let chat = try ChatSession(generator: Self.generator, systemPrompt: "Be brief.", contextLength: 96,
                                   options: TextGenerationOptions(maxNewTokens: 12))
        for i in 0..<6 { try chat.respond(to: "Question number \(i)?") }
        XCTAssertEqual(chat.messages.first, .system("Be brief."))
        XCTAssertEqual(chat.messages[chat.messages.count - 2], .user("Question number 5?"))
        XCTAssertLessThan(chat.messages.count, 13, "old turns must have been dropped")
        XCTAssertLessThanOrEqual(chat.cache.length, 96)
        // A message that cannot fit even alone is refused and not kept.
        XCTAssertThrowsError(try chat.respond(to: String(repeating: "the lazy dog ", count: 60)))
        XCTAssertEqual(chat.messages.last?.role, "assistant")
    }

    // MARK: - Batched decode and the scheduler

    /// Three sequences at different lengths advanced by one batched step: each row must match HF's logits at that
    /// position (1e-4 · max + 1e-5) and the lone decode step of the same sequence (1e-5 · max; exactly equal when
    /// every matrix is stored quantised, `bitIdentical`).
    func checkBatchedDecode(_ model: any CausalLanguageModel, ids: [Int], hf: Tensor?, bitIdentical: Bool = false,
                            _ label: String, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let model = model as? DecoderModel else { return XCTFail("\(label): not a DecoderModel", file: file, line: line) }
        let lengths = [ids.count - 1, 2, ids.count / 2]
        let batchCaches = lengths.map { _ in model.makeCache(capacity: ids.count) }
        let aloneCaches = lengths.map { _ in model.makeCache(capacity: ids.count) }
        for (i, n) in lengths.enumerated() {
            _ = try model.forward(Array(ids[..<n]), cache: batchCaches[i])
            _ = try model.forward(Array(ids[..<n]), cache: aloneCaches[i])
        }
        let batched = try model.decodeStep(lengths.map { ids[$0] }, caches: batchCaches)
        XCTAssertEqual(batched.shape, [3, model.vocabularySize], label, file: file, line: line)
        for (i, n) in lengths.enumerated() {
            let row = batched.sliced(axis: 0, i..<(i + 1)).reshaped([-1])
            let alone = try model.lastLogits([ids[n]], cache: aloneCaches[i])
            let scale = alone.withUnsafeBufferPointer { $0.map(abs).max()! }
            if bitIdentical {
                XCTAssertEqual(row.maxAbsDifference(alone), 0, "\(label) sequence \(i): batched vs alone", file: file, line: line)
            } else {
                XCTAssertLessThanOrEqual(row.maxAbsDifference(alone), 1e-5 * scale, "\(label) sequence \(i): batched vs alone",
                                         file: file, line: line)
            }
            if let hf {
                let hfRow = hf.sliced(axis: 0, n..<(n + 1)).reshaped([-1])
                let hfScale = hfRow.withUnsafeBufferPointer { $0.map(abs).max()! }
                XCTAssertLessThanOrEqual(row.maxAbsDifference(hfRow), 1e-4 * hfScale + 1e-5, "\(label) sequence \(i) vs HF",
                                         file: file, line: line)
            }
            XCTAssertEqual(batchCaches[i].length, n + 1, file: file, line: line)
        }
        XCTAssertThrowsError(try model.decodeStep([model.vocabularySize], caches: [model.makeCache(capacity: 4)]),
                             file: file, line: line)
    }

    /// Every family's decoder (Gemma 2's sandwich norms, embedding scale and logit soft-cap; Qwen3's q/k norms;
    /// sliding windows; MoE and MLA layers, which run per sequence) against HF and against its own lone steps.
    func testBatchedDecodeGivesEachSequenceItsOwnLogits() throws {
        for path in ["models/llama_gqa", "models/mixtral_window", "models/deepseek_v3_qlora", "families/gemma2",
                     "families/qwen3", "families/qwen2_tied", "families/phi3"] {
            let dir = Self.fixtures.appendingPathComponent(path)
            let ref = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
            try checkBatchedDecode(try ModelLoader.open(dir).causalLM(), ids: try ref.integers("input_ids"),
                                   hf: try ref.tensor("logits"), path)
        }
    }

    /// A GGUF whose matrices are all Q8_0 (tied head included): the batched rows equal the lone steps bit for bit.
    func testBatchedDecodeOnQuantizedModelIsBitIdentical() throws {
        let dir = Self.fixtures.appendingPathComponent("models/llama_gqa")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("batched-q8-\(getpid()).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(GGUFTestWriter.llama(from: dir, type: { $0.hasSuffix("norm.weight") ? 0 : 8 }).serialize().bytes).write(to: url)
        let model = try ModelLoader.open(url).causalLM()
        let ids = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors")).integers("input_ids")
        try checkBatchedDecode(model, ids: ids, hf: nil, bitIdentical: true, "llama_gqa Q8_0")
    }

    /// Collects a scheduler request's events.
    final class Collector: @unchecked Sendable {
        let lock = NSLock()
        var text = ""
        var completion: BatchScheduler.Completion?
        let done = DispatchSemaphore(value: 0)
        func handle(_ e: BatchScheduler.Event) {
            lock.lock(); defer { lock.unlock() }
            switch e {
            case .text(let t): text += t
            case .finished(let c): completion = c; done.signal()
            case .failed(let m): XCTFail(m); done.signal()
            }
        }
    }

    func testSchedulerBatchesRequestsAndMatchesHF() throws {
        let scheduler = try BatchScheduler(generator: Self.generator, configuration: .init(parallel: 3, contextLength: 128, maxQueued: 8))
        scheduler.start()
        defer { scheduler.shutdown() }
        let chats = Self.cases.chat + [Self.cases.chat[0]]
        let collectors = chats.map { _ in Collector() }
        for (c, col) in zip(chats, collectors) {
            try scheduler.submit(prompt: c.prompt_ids, options: TextGenerationOptions(maxNewTokens: c.greedy_ids.count)) { col.handle($0) }
        }
        for (c, col) in zip(chats, collectors) {
            XCTAssertEqual(col.done.wait(timeout: .now() + 60), .success)
            XCTAssertEqual(col.text, c.text)
            XCTAssertEqual(col.completion?.tokens, c.greedy_ids)
            XCTAssertEqual(col.completion?.finishReason.rawValue, c.finish_reason)
        }
        XCTAssertLessThan(scheduler.steps, chats.count * 11, "sequences must have been decoded together")
        // A follow-up whose prompt extends a finished one reuses that slot's cache.
        let first = Self.cases.chat[0]
        let follow = Collector()
        try scheduler.submit(prompt: first.prompt_ids + first.greedy_ids.dropLast(), options: TextGenerationOptions(maxNewTokens: 2)) {
            follow.handle($0)
        }
        XCTAssertEqual(follow.done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(follow.completion?.cachedPromptTokens, first.prompt_ids.count + first.greedy_ids.count - 2)
    }

    func testSchedulerRefusesWhenFullAndCancels() throws {
        let scheduler = try BatchScheduler(generator: Self.generator, configuration: .init(parallel: 1, contextLength: 500, maxQueued: 1))
        XCTAssertThrowsError(try scheduler.submit(prompt: [1, 2], options: TextGenerationOptions(maxNewTokens: 1)) { _ in })  // not started
        scheduler.start()
        defer { scheduler.shutdown() }
        let prompt = Self.cases.chat[0].prompt_ids
        XCTAssertThrowsError(try scheduler.submit(prompt: Array(repeating: 5, count: 500), options: TextGenerationOptions(maxNewTokens: 1)) { _ in }) {
            XCTAssertEqual($0 as? BatchScheduler.SchedulerError, .promptTooLong(tokens: 500, context: 500))
        }
        let a = Collector(), b = Collector()
        let ta = try scheduler.submit(prompt: prompt, options: TextGenerationOptions(maxNewTokens: 400)) { a.handle($0) }
        let tb = try scheduler.submit(prompt: prompt, options: TextGenerationOptions(maxNewTokens: 400)) { b.handle($0) }
        // One running, one waiting (or both still queued): a third does not fit.
        XCTAssertThrowsError(try scheduler.submit(prompt: prompt, options: TextGenerationOptions(maxNewTokens: 1)) { _ in }) {
            XCTAssertEqual($0 as? BatchScheduler.SchedulerError, .queueFull(limit: 1))
        }
        tb.cancel()
        ta.cancel()
        XCTAssertEqual(a.done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(b.done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(a.completion?.finishReason, .cancelled)
        XCTAssertEqual(b.completion?.finishReason, .cancelled)
        XCTAssertLessThan(a.completion?.tokens.count ?? 400, 400)
    }
}
