import ArgumentParser
import Foundation
import Transformer

/// Sampling flags shared by `generate` and `chat` (and the defaults of `serve`).
struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens.") var topK: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold in (0, 1].") var topP: Float?
    @Option(name: .customLong("min-p"), help: "Drop tokens less likely than min-p × the most likely one, in [0, 1].") var minP: Float?
    @Option(name: .customLong("repeat-penalty"), help: "Divide the logits of recently seen tokens by this (> 0; 1 = off).")
    var repeatPenalty: Float = 1
    @Option(name: .customLong("repeat-last-n"), help: "How many recent tokens the repeat penalty looks at.") var repeatLastN = 64
    @Option(name: .customLong("frequency-penalty"), help: "Subtract this × (times generated) from a token's logit, in [-2, 2].")
    var frequencyPenalty: Float = 0
    @Option(name: .customLong("presence-penalty"), help: "Subtract this from the logit of every token generated so far, in [-2, 2].")
    var presencePenalty: Float = 0
    @Option(name: .customLong("stop"), help: "Stop before this text (repeatable); it is never printed.") var stop: [String] = []
    @Option(help: "Random seed.") var seed: UInt64 = 0

    func validate() throws {
        do {
            try Sampler.validate(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repeatPenalty,
                                 frequencyPenalty: frequencyPenalty, presencePenalty: presencePenalty)
        } catch let e as SamplerError {
            throw ValidationError("--\(e.parameter.replacingOccurrences(of: "_", with: "-").replacingOccurrences(of: "repetition", with: "repeat")): \(e.message)")
        }
        guard repeatLastN >= 0 else { throw ValidationError("--repeat-last-n must be ≥ 0") }
        if stop.contains("") { throw ValidationError("--stop must not be empty") }
    }

    var sampler: Sampler {
        Sampler(temperature: temperature, topK: topK, topP: topP, minP: minP, repetitionPenalty: repeatPenalty,
                frequencyPenalty: frequencyPenalty, presencePenalty: presencePenalty, seed: seed)
    }

    func textOptions(maxNewTokens: Int) -> TextGenerationOptions {
        TextGenerationOptions(maxNewTokens: maxNewTokens, sampler: sampler, stopStrings: stop, penaltyWindow: repeatLastN)
    }
}

func printStats(_ s: GenerationStats) {
    stderrPrint(String(format: "prompt: %d tokens, %.1f tok/s; decode: %d tokens, %.1f tok/s",
                       s.promptTokens, s.promptTokensPerSecond, s.generatedTokens, s.decodeTokensPerSecond))
}

/// `transformer-cli generate`: token ids or text in; ids or streamed text (or JSON) out.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate from a prompt given as token ids (--tokens) or text (-p, -p -, -f).",
        discussion: """
            With --tokens, prints the generated ids on one line (comma-separated). With -p TEXT (-p - reads stdin) or \
            -f FILE, streams the text as it is produced and stops at end-of-turn / EOS or a --stop string; --chat \
            applies the model's chat template. --json prints one JSON object instead (text, tokens, finish reason, \
            timings). Speeds go to stderr.
            """)

    @Option(help: "GGUF file or model directory (config.json + safetensors [+ tokenizer.json]).") var model: String
    @Option(help: "Comma-separated prompt token ids.") var tokens: String?
    @Option(name: [.customShort("p"), .customLong("prompt")], help: "Prompt text ('-' reads it from stdin).") var prompt: String?
    @Option(name: [.customShort("f"), .customLong("file")], help: "Read the prompt text from this file.") var file: String?
    @Flag(help: "Treat the prompt as a user message and apply the chat template.") var chat = false
    @Option(help: "System message (with --chat).") var system: String?
    @Option(name: [.customShort("n"), .customLong("max-new-tokens")], help: "Tokens to generate.") var maxNewTokens = 64
    @Flag(help: "Print one JSON object (text, tokens, finish_reason, timings) instead of streaming.") var json = false
    @OptionGroup var sampling: SamplingOptions

    func validate() throws {
        guard maxNewTokens > 0 else { throw ValidationError("--max-new-tokens must be positive") }
        guard [tokens != nil, prompt != nil, file != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --tokens, -p/--prompt and -f/--file")
        }
        if chat && tokens != nil { throw ValidationError("--chat needs a text prompt (-p or -f)") }
    }

    /// The prompt text from -p, -p - (stdin) or -f.
    func promptText() throws -> String {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read prompt file \(file)") }
            guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("prompt file \(file) is not UTF-8") }
            return text
        }
        if prompt == "-" {
            let data = FileHandle.standardInput.readDataToEndOfFile()
            guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("stdin is not UTF-8 text") }
            return text
        }
        return prompt ?? ""
    }

    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        let opened = try ModelLoader.open(model)
        if let tokens {
            let lm = try opened.causalLM()
            let stops = opened.stopTokens
            let ids = try parseTokens(tokens)
            let result = try lm.generate(prompt: ids, options: GenerationOptions(
                maxNewTokens: maxNewTokens, sampler: sampling.sampler, stopTokens: stops, penaltyWindow: sampling.repeatLastN))
            if json {
                printJSON(["tokens": result.tokens, "prompt_tokens": ids.count, "timings": timings(result.stats)])
            } else {
                print(result.tokens.map(String.init).joined(separator: ","))
                printStats(result.stats)
            }
            return
        }
        guard opened.tokenizer != nil else { throw ValidationError("\(model) has no tokenizer: use --tokens") }
        let text = try opened.textGenerator()
        let promptText = try promptText()
        let ids: [Int]
        if chat {
            ids = try text.chatTokens((system.map { [ChatMessage.system($0)] } ?? []) + [.user(promptText)])
        } else {
            ids = text.tokenizer.encode(promptText)
            if !json { print(promptText, terminator: "") }
        }
        guard !ids.isEmpty else { throw ValidationError("the prompt is empty") }
        let result = try text.generate(prompt: ids, options: sampling.textOptions(maxNewTokens: maxNewTokens)) { piece in
            if !json {
                print(piece, terminator: "")
                fflush(stdout)
            }
            return true
        }
        if json {
            printJSON(["text": result.text, "tokens": result.tokens, "prompt_tokens": ids.count,
                       "finish_reason": result.finishReason.rawValue, "timings": timings(result.stats)])
        } else {
            print()
            printStats(result.stats)
        }
    }

    func timings(_ s: GenerationStats) -> [String: Any] {
        ["prompt_seconds": s.promptSeconds, "decode_seconds": s.decodeSeconds,
         "prompt_tokens_per_second": s.promptTokensPerSecond, "decode_tokens_per_second": s.decodeTokensPerSecond]
    }

    func printJSON(_ object: [String: Any]) {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Ctrl-C during `chat`: the first one stops the current reply; one at the prompt (or a second during the same
/// reply) quits.
final class ChatInterrupts: @unchecked Sendable {
    private let lock = NSLock()
    private var generating = false
    private var interrupted = false
    private var source: DispatchSourceSignal?

    func install() {
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        s.setEventHandler { [self] in
            lock.lock()
            let stopReply = generating && !interrupted
            if stopReply { interrupted = true }
            lock.unlock()
            if !stopReply {
                FileHandle.standardError.write("\n".data(using: .utf8)!)
                exit(130)
            }
        }
        s.resume()
        source = s
    }

    /// Marks a reply as running (true) or done (false); returns whether it was interrupted.
    @discardableResult
    func replying(_ on: Bool) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let was = interrupted
        generating = on
        interrupted = false
        return was
    }

    var isInterrupted: Bool {
        lock.lock()
        defer { lock.unlock() }
        return interrupted
    }
}

/// `transformer-cli chat`: an interactive conversation that keeps the KV cache across turns (``ChatSession``).
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Interactive chat (reads lines from stdin; /exit or Ctrl-D quits).",
        discussion: """
            Each turn feeds only its new tokens; earlier turns stay in the KV cache. Ctrl-C stops the current reply \
            and returns to the prompt (Ctrl-C at the prompt quits); /reset starts over; empty lines are ignored. When \
            the context fills, the oldest turns are dropped (the system prompt is kept).
            """)

    @Option(help: "GGUF file or model directory with tokenizer.json.") var model: String
    @Option(help: "System message.") var system: String?
    @Option(name: [.customShort("n"), .customLong("max-new-tokens")], help: "Tokens per reply.") var maxNewTokens = 256
    @Option(help: "Context length (KV-cache positions).") var context = 2048
    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var threading: ThreadsOption

    func validate() throws {
        guard maxNewTokens > 0 else { throw ValidationError("--max-new-tokens must be positive") }
        guard context >= 16 else { throw ValidationError("--context must be ≥ 16") }
    }

    func run() throws {
        try threading.apply()
        let text = try ModelLoader.open(model).textGenerator()
        guard text.chatTemplate != nil else {
            throw ValidationError("\(model) has no supported chat template" + (text.chatTemplateError.map { ": \($0)" } ?? ""))
        }
        let session = try ChatSession(generator: text, systemPrompt: system, contextLength: context,
                                      options: sampling.textOptions(maxNewTokens: maxNewTokens), seed: sampling.seed)
        let interrupts = ChatInterrupts()
        interrupts.install()
        stderrPrint("chat with \(model) — \(session.cache.capacity) positions of context; /exit or Ctrl-D quits, "
                    + "Ctrl-C stops a reply, /reset starts over")
        while true {
            FileHandle.standardError.write("> ".data(using: .utf8)!)
            guard let line = readLine() else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/exit" || input == "/quit" { break }
            if input == "/reset" {
                session.reset()
                stderrPrint("(conversation cleared)")
                continue
            }
            interrupts.replying(true)
            let result: TextGenerationResult
            do {
                result = try session.respond(to: line) { piece in
                    print(piece, terminator: "")
                    fflush(stdout)
                    return !interrupts.isInterrupted
                }
            } catch let e as GenerationError {
                interrupts.replying(false)
                stderrPrint("error: \(e) — the message is too long for the context; it was not added")
                continue
            }
            let stopped = interrupts.replying(false)
            print(stopped ? " [stopped]" : "")
            fflush(stdout)
            let t = session.lastTurn
            if t.droppedMessages > 0 { stderrPrint("(context full: dropped the \(t.droppedMessages) oldest messages)") }
            stderrPrint("(reused \(t.reused) cached tokens, fed \(t.fed))")
            printStats(result.stats)
        }
    }
}
