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

/// `transformer-cli generate`: token ids in, token ids (or streamed text) out.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate tokens from a prompt given as token ids.",
        discussion: "Prints the generated ids on one line (comma-separated) and tokens/s on stderr.")

    @Option(help: "Model directory (config.json + safetensors).") var model: String
    @Option(help: "Comma-separated prompt token ids.") var tokens: String
    @Option(name: [.customShort("n"), .customLong("max-new-tokens")], help: "Tokens to generate.") var maxNewTokens = 32
    @OptionGroup var sampling: SamplingOptions
    @Option(name: .customLong("stop"), help: "Stop token ids (comma-separated).") var stop: String?

    func run() throws {
        guard maxNewTokens > 0 else { throw ValidationError("--max-new-tokens must be positive") }
        let ids = try parseTokens(tokens)
        guard case .causalLM(let lm) = try ModelLoader.load(directory: URL(fileURLWithPath: model)) else {
            throw ValidationError("\(model) is not a causal language model")
        }
        let stopTokens = Set(try stop.map(parseTokens) ?? [])
        let result = try lm.generate(prompt: ids, options: GenerationOptions(maxNewTokens: maxNewTokens,
                                                                            sampler: sampling.sampler, stopTokens: stopTokens))
        print(result.tokens.map(String.init).joined(separator: ","))
        let s = result.stats
        stderrPrint(String(format: "prompt: %d tokens, %.1f tok/s; decode: %d tokens, %.1f tok/s",
                           s.promptTokens, s.promptTokensPerSecond, s.generatedTokens, s.decodeTokensPerSecond))
    }
}
