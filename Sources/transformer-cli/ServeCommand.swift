import ArgumentParser
import Foundation
import Transformer
import TransformerServer

/// `transformer-cli serve`: the OpenAI-compatible HTTP server (``OpenAIServer``) with continuous batching.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve a model over an OpenAI-compatible HTTP API (continuous batching).",
        discussion: """
            POST /v1/chat/completions and /v1/completions (streaming with "stream": true), GET /v1/models and \\
            /health. Up to --parallel requests decode together in one forward pass per step; more wait (up to \\
            --queue, then 503). Binds 127.0.0.1 unless --host says otherwise. Ctrl-C / SIGTERM shut down gracefully.
            """)

    @Option(help: "GGUF file or model directory with tokenizer.json.") var model: String
    @Option(help: "Interface to listen on.") var host = "127.0.0.1"
    @Option(help: "TCP port (0 picks a free one).") var port = 8080
    @Option(help: "Sequences decoded together.") var parallel = 4
    @Option(help: "KV-cache positions per sequence (prompt + reply).") var context = 2048
    @Option(help: "Requests that may wait for a slot before the server answers 503.") var queue = 64
    @Option(help: "Largest request body in bytes (413 above).") var maxBody = 4 << 20
    @OptionGroup var threading: ThreadsOption
    @Option(help: "Model name reported by /v1/models (default: the file name).") var name: String?
    @Flag(help: "Do not log one line per request.") var quiet = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard parallel >= 1 else { throw ValidationError("--parallel must be ≥ 1") }
        guard context >= 2 else { throw ValidationError("--context must be ≥ 2") }
        guard queue >= 0 else { throw ValidationError("--queue must be ≥ 0") }
        guard maxBody >= 1024 else { throw ValidationError("--max-body must be ≥ 1024") }
    }

    func run() async throws {
        try threading.apply()
        let generator = try ModelLoader.open(model).textGenerator()
        let modelName = name ?? URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let server = try OpenAIServer(generator: generator, configuration: .init(
            host: host, port: port, parallel: parallel, context: context, maxQueued: queue, maxBodyBytes: maxBody,
            modelName: modelName, logRequests: !quiet))
        let (h, p, c) = (host, parallel, server.scheduler.configuration.contextLength)
        try await server.run(onListening: { bound in
            stderrPrint("serving \(modelName) on http://\(h):\(bound) — \(p) parallel sequences × \(c) positions")
        })
        stderrPrint("server stopped")
    }
}
