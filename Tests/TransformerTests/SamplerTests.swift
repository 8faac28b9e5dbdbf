import Foundation
import XCTest
@testable import Transformer

/// Sampling: the expected values come from the definitions (argmax; softmax(logits / T) restricted to the top-k /
/// nucleus), not from the sampler itself.
final class SamplerTests: XCTestCase {
    let logits: [Float] = [1.0, 3.0, 2.5, -1.0, 0.5, 3.0]

    func sample(_ sampler: Sampler, _ logits: [Float], times: Int) -> [Int] {
        var s = sampler
        return (0..<times).map { _ in logits.withUnsafeBufferPointer { s.next($0) } }
    }

    func testGreedyTakesFirstMaximum() {
        XCTAssertEqual(sample(.greedy, logits, times: 3), [1, 1, 1])
    }

    func testSeedReproducesAndDiffers() {
        let a = sample(Sampler(temperature: 1, seed: 42), logits, times: 50)
        let b = sample(Sampler(temperature: 1, seed: 42), logits, times: 50)
        let c = sample(Sampler(temperature: 1, seed: 43), logits, times: 50)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
    }

    func testTopKOneAndTinyTopPAreGreedy() {
        XCTAssertEqual(Set(sample(Sampler(temperature: 2, topK: 1, seed: 1), logits, times: 100)), [1])
        XCTAssertEqual(Set(sample(Sampler(temperature: 2, topP: 0.01, seed: 1), logits, times: 100)), [1])
    }

    func testTopKRestrictsToTheKBest() {
        XCTAssertEqual(Set(sample(Sampler(temperature: 5, topK: 3, seed: 2), logits, times: 2000)), [1, 2, 5])
    }

    func testTopPKeepsTheSmallestNucleus() {
        // softmax at T = 1: p(1) = p(5) ≈ 0.357, p(2) ≈ 0.217 → cumulative 0.357, 0.714, 0.931: top-p 0.7 keeps {1, 5}.
        XCTAssertEqual(Set(sample(Sampler(temperature: 1, topP: 0.7, seed: 3), logits, times: 2000)), [1, 5])
    }

    func testFrequenciesFollowSoftmaxOfScaledLogits() {
        let t: Float = 0.7, n = 40_000
        let counts = sample(Sampler(temperature: t, seed: 9), logits, times: n).reduce(into: [Int](repeating: 0, count: logits.count)) { $0[$1] += 1 }
        let e = logits.map { Foundation.exp(Double($0 / t)) }
        let z = e.reduce(0, +)
        for i in logits.indices {
            let p = e[i] / z
            let sd = (p * (1 - p) / Double(n)).squareRoot()
            // Within 5 standard deviations of the binomial expectation.
            XCTAssertEqual(Double(counts[i]) / Double(n), p, accuracy: 5 * sd + 1e-9, "token \(i)")
        }
    }

    func testGenerationStopsAtStopToken() throws {
        let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("models/llama_gqa")
        let model = try ModelLoader.open(dir).causalLM()
        let free = try model.generate(prompt: [3, 4, 5], options: GenerationOptions(maxNewTokens: 6))
        let stop = free.tokens[2]
        let stopped = try model.generate(prompt: [3, 4, 5], options: GenerationOptions(maxNewTokens: 6, stopTokens: [stop]))
        XCTAssertEqual(stopped.tokens, Array(free.tokens.prefix(through: free.tokens.firstIndex(of: stop)!)))
    }
}
