import ArgumentParser
import Foundation
import Transformer

/// Sampling flags shared by `generate` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Sampling temperature (0 = greedy).") var temperature: Float = 0
    @Option(name: .customLong("top-k"), help: "Keep the k most likely tokens.") var topK: Int?
    @Option(name: .customLong("top-p"), help: "Nucleus sampling threshold in (0, 1].") var topP: Float?
    @Option(help: "Random seed.") var seed: UInt64 = 0

    func validate() throws {
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0") }
        if let topK, topK <= 0 { throw ValidationError("--top-k must be positive") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
    }

    var sampler: Sampler { Sampler(temperature: temperature, topK: topK, topP: topP, seed: seed) }
}

/// A model opened from a path: a GGUF file or an HF directory; with a tokenizer when one is available.
struct OpenedModel {
    let model: ModelLoader.LoadedModel
    let text: TextGenerator?

    static func open(_ path: String) throws -> OpenedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("no such model file or directory: \(path)")
        }
        let hasTokenizer = !isDirectory.boolValue
            || FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("tokenizer.json").path)
        let encoderTypes: Set<String?> = ["roformer", "bert"]  // encoders: no TextGenerator
        if hasTokenizer, !encoderTypes.contains(try? ModelConfig.load(directory: URL(fileURLWithPath: path)).modelType) {
            let t = try TextGenerator.load(path: path)
            return OpenedModel(model: .causalLM(t.model), text: t)
        }
        return OpenedModel(model: try ModelLoader.load(directory: URL(fileURLWithPath: path)), text: nil)
    }

    func causalLM() throws -> any CausalLanguageModel {
        guard case .causalLM(let m) = model else { throw ValidationError("this model is not a causal language model") }
        return m
    }
}

func printStats(_ s: GenerationStats) {
    stderrPrint(String(format: "prompt: %d tokens, %.1f tok/s; decode: %d tokens, %.1f tok/s",
                       s.promptTokens, s.promptTokensPerSecond, s.generatedTokens, s.decodeTokensPerSecond))
}

/// `transformer-cli generate`: token ids or text in; ids or streamed text out.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate from a prompt given as token ids (--tokens) or text (-p).",
        discussion: """
            With --tokens, prints the generated ids on one line (comma-separated). With -p, streams the text as it is \
            produced and stops at end-of-turn / EOS; --chat applies the model's chat template. Speeds go to stderr.
            """)

    @Option(help: "GGUF file or model directory (config.json + safetensors [+ tokenizer.json]).") var model: String
    @Option(help: "Comma-separated prompt token ids.") var tokens: String?
    @Option(name: [.customShort("p"), .customLong("prompt")], help: "Prompt text.") var prompt: String?
    @Flag(help: "Treat the prompt as a user message and apply the chat template.") var chat = false
    @Option(help: "System message (with --chat).") var system: String?
    @Option(name: [.customShort("n"), .customLong("max-new-tokens")], help: "Tokens to generate.") var maxNewTokens = 64
    @OptionGroup var sampling: SamplingOptions

    func validate() throws {
        guard maxNewTokens > 0 else { throw ValidationError("--max-new-tokens must be positive") }
        guard (tokens == nil) != (prompt == nil) else { throw ValidationError("give exactly one of --tokens and -p/--prompt") }
        if chat && prompt == nil { throw ValidationError("--chat needs -p/--prompt") }
    }

    @OptionGroup var threading: ThreadsOption

    func run() throws {
        try threading.apply()
        let opened = try OpenedModel.open(model)
        if let tokens {
            let lm = try opened.causalLM()
            let stops = opened.text?.stopTokens ?? []
            let result = try lm.generate(prompt: try parseTokens(tokens),
                                         options: GenerationOptions(maxNewTokens: maxNewTokens, sampler: sampling.sampler, stopTokens: stops))
            print(result.tokens.map(String.init).joined(separator: ","))
            printStats(result.stats)
            return
        }
        guard let text = opened.text else { throw ValidationError("\(model) has no tokenizer: use --tokens") }
        let ids: [Int]
        if chat {
            ids = try text.chatTokens((system.map { [ChatMessage.system($0)] } ?? []) + [.user(prompt!)])
        } else {
            ids = text.tokenizer.encode(prompt!)
            print(prompt!, terminator: "")
        }
        let result = try text.generate(prompt: ids, maxNewTokens: maxNewTokens, sampler: sampling.sampler) { piece in
            print(piece, terminator: "")
            fflush(stdout)
        }
        print()
        printStats(result.stats)
    }
}

/// `transformer-cli chat`: an interactive conversation that keeps the KV cache across turns.
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat", abstract: "Interactive chat (reads lines from stdin; empty line or EOF ends).",
        discussion: "Each turn appends only its new tokens to the KV cache; earlier turns are not recomputed.")

    @Option(help: "GGUF file or model directory with tokenizer.json.") var model: String
    @Option(help: "System message.") var system: String?
    @Option(name: [.customShort("n"), .customLong("max-new-tokens")], help: "Tokens per reply.") var maxNewTokens = 256
    @Option(help: "Context length (KV-cache positions).") var context = 2048
    @OptionGroup var sampling: SamplingOptions

    @OptionGroup var threading: ThreadsOption

    func validate() throws {
        guard maxNewTokens > 0 else { throw ValidationError("--max-new-tokens must be positive") }
        guard context > 0 else { throw ValidationError("--context must be positive") }
    }

    func run() throws {
        try threading.apply()
        guard let text = try OpenedModel.open(model).text else { throw ValidationError("\(model) has no tokenizer") }
        guard let template = text.chatTemplate else {
            throw ValidationError("\(model) has no supported chat template" + (text.chatTemplateError.map { ": \($0)" } ?? ""))
        }
        let cache = try text.model.checkedCache(capacity: min(context, text.model.maxPositions))
        var sampler = sampling.sampler
        var history: [ChatMessage] = system.map { [.system($0)] } ?? []
        var cached: [Int] = []  // exactly the tokens whose keys/values are in the cache
        stderrPrint("chat with \(model) — \(cache.capacity) positions of context; empty line to quit")
        while true {
            FileHandle.standardError.write("> ".data(using: .utf8)!)
            guard let line = readLine(), !line.isEmpty else { break }
            history.append(.user(line))
            // Render the whole conversation; reuse the cached prefix it shares and feed only the rest.
            let all = text.tokenizer.encode(try template.render(history, addGenerationPrompt: true), addSpecialTokens: false)
            var shared = 0
            while shared < min(cached.count, all.count - 1) && cached[shared] == all[shared] { shared += 1 }
            cache.truncate(to: shared)
            cached.removeLast(cached.count - shared)
            let prompt = Array(all[shared...])
            guard prompt.count < cache.remaining else {
                stderrPrint("context full (\(cache.capacity) positions): start a new chat")
                break
            }
            var reply = ""
            let result = try text.generate(prompt: prompt, maxNewTokens: min(maxNewTokens, cache.remaining - prompt.count),
                                           sampler: sampler, cache: cache) { piece in
                reply += piece
                print(piece, terminator: "")
                fflush(stdout)
            }
            print()
            cached += prompt + result.tokens.dropLast()
            sampler = Sampler(temperature: sampling.temperature, topK: sampling.topK, topP: sampling.topP,
                              seed: sampling.seed &+ UInt64(cache.length))
            history.append(.assistant(reply))
            stderrPrint("(reused \(shared) cached tokens, fed \(prompt.count))")
            printStats(result.stats)
        }
    }
}
