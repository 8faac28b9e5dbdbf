import ArgumentParser
import Foundation
import Transformer

/// Prompt processing and decode speed of a real model file.
struct ModelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Prefill and decode tokens/s of a GGUF file or model directory.",
        discussion: """
            Prefill: one forward pass over --prefill tokens, logits of the last position only (as generation needs;             llama.cpp's default). Decode: --decode one-token greedy steps after an 8-token start.
            """)

    @Option(help: "GGUF file or model directory.") var model: String
    @Option(help: "Prompt tokens for the prefill measurement.") var prefill = 512
    @Option(help: "Decode steps.") var decode = 128
    @Option(help: "Timed repetitions (best is reported).") var repeats = 3
    @Option(help: "Write the result as JSON to this path.") var json: String?

    @OptionGroup var threading: ThreadsOption

    func validate() throws {
        try requireInRange("--prefill", [prefill], 8...(1 << 20))
        try requireInRange("--decode", [decode], 1...(1 << 20))
        try requireInRange("--repeats", [repeats], 1...1000)
    }

    func run() throws {
        try threading.apply()
        print(CPU.summary)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let lm = try ModelLoader.open(model).causalLM()
        let loadSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        let rssAfterLoad = ProcessMemory.residentBytes ?? 0
        stderrPrint(String(format: "loaded %@ in %.2f s (%.1f M parameters)", model, loadSeconds, Double(lm.parameterCount) / 1e6))
        let vocab = lm.vocabularySize
        let prompt = (0..<prefill).map { vocab > 100 ? 100 + ($0 * 7919) % (vocab - 100) : $0 % vocab }
        let cache = try lm.checkedCache(capacity: prefill + decode + 8)
        _ = try lm.lastLogits(prompt, cache: cache)  // errors (e.g. a prompt past the context) surface here, not in try!
        let prefillTime = bestTime(repeats: repeats) {
            cache.reset()
            _ = try! lm.lastLogits(prompt, cache: cache)
        }
        let start = Array(prompt.prefix(8))
        let decodeTime = bestTime(repeats: repeats) {
            cache.reset()
            _ = try! lm.lastLogits(start, cache: cache)
            var token = start.last!
            for _ in 0..<decode {
                let logits = try! lm.lastLogits([token], cache: cache)
                token = logits.argmax(axis: -1)[0]
            }
        }
        // The decode loop also ran the 8-token start once; subtract it with its own timing.
        let startTime = bestTime(repeats: repeats) {
            cache.reset()
            _ = try! lm.lastLogits(start, cache: cache)
        }
        let prefillTPS = Double(prefill) / prefillTime
        let decodeTPS = Double(decode) / max(decodeTime - startTime, 1e-9)
        var report = Report(columns: ["model", "prefill_tokens", "prefill_tps", "decode_tokens", "decode_tps"])
        print("model: \(Threading.workers) workers, best of \(repeats)")
        print(report.header())
        report.add(["model": .string(URL(fileURLWithPath: model).lastPathComponent), "prefill_tokens": .int(prefill),
                    "prefill_tps": .num(prefillTPS, 1), "decode_tokens": .int(decode), "decode_tps": .num(decodeTPS, 1),
                    "load_seconds": .num(loadSeconds, 2), "parameters": .int(lm.parameterCount),
                    "kv_bytes_per_token": .int(cache.bytesPerToken),
                    "rss_after_load_bytes": .int(rssAfterLoad), "peak_rss_bytes": .int(ProcessMemory.peakResidentBytes ?? 0)])
        try report.write(json: json, benchmark: "model")
    }
}
