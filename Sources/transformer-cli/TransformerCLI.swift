import ArgumentParser
import Transformer

@main
struct TransformerCLI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transformer-cli",
        abstract: "Run and measure transformer models on the CPU.",
        subcommands: [GenerateCommand.self, ChatCommand.self, ServeCommand.self, LogitsCommand.self, InfoCommand.self,
                      EmbedCommand.self, TokenizeCommand.self, ChatTemplateCommand.self, TrainCommand.self,
                      ClassifyCommand.self, Bench.self]
    )
}

/// `transformer-cli bench …`: performance measurements, each a ratio against a baseline timed in the same run.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (best of several runs; ratios against a baseline in the same process).",
        subcommands: [MatmulBench.self, AttentionBench.self, DecodeBench.self, ModelBench.self, TrainBench.self,
                      ServeBench.self, MatmulBLASChild.self]
    )
}
