import Foundation
import Transformer
import XCTest

/// RoPE against HF transformers' own rotary code (fixtures from `scripts/fixtures/rope.py`) plus invariants.
///
/// Fixture tolerance: every element satisfies |ours − HF| ≤ 1e-5 + 1e-5·|HF| (`Tensor.isClose`, torch.allclose
/// rule). HF computes angles in float32, we in Double; the generator asserts HF is within 5e-6 of a float64
/// evaluation, so this leaves headroom.
final class RoPETests: XCTestCase {
    static let rtol: Float = 1e-5
    static let atol: Float = 1e-5

    static let deepseekYarn = RoPE.Scaling.yarn(factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1,
                                                mscale: 1.0, mscaleAllDim: 1.0)
    static let deepseekYarn0707 = RoPE.Scaling.yarn(factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1,
                                                    mscale: 0.707, mscaleAllDim: 1.0)

    // MARK: Fixtures

    private func fixture(_ name: String) throws -> [String: Tensor] {
        let dir = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        return try SafeTensors.load(dir.appendingPathComponent("rope_\(name).safetensors"))
    }

    /// Applies `rope` to the fixture's q and k and compares with HF; returns the fixture.
    @discardableResult
    private func checkFixture(_ name: String, _ rope: RoPE, file: StaticString = #filePath,
                              line: UInt = #line) throws -> [String: Tensor] {
        let f = try fixture(name)
        let offset = Int(try XCTUnwrap(f["position_offset"], file: file, line: line).item)
        for key in ["q", "k"] {
            var x = try XCTUnwrap(f[key], file: file, line: line)
            let want = try XCTUnwrap(f[key + "_out"], file: file, line: line)
            rope.apply(&x, positionOffset: offset)
            XCTAssertTrue(x.isClose(to: want, rtol: Self.rtol, atol: Self.atol),
                          "\(name) \(key): max |Δ| = \(x.maxAbsDifference(want))", file: file, line: line)
        }
        if let af = f["attention_factor"] {
            XCTAssertEqual(rope.attentionFactor, Double(af.item), accuracy: 1e-6, "\(name) attention factor",
                           file: file, line: line)
        }
        let multiplier = f["softmax_scale_multiplier"].map { Double($0.item) } ?? 1
        XCTAssertEqual(rope.softmaxScaleMultiplier, multiplier, accuracy: 1e-6, "\(name) softmax multiplier",
                       file: file, line: line)
        return f
    }

    func testRoFormerInterleaved() throws {
        try checkFixture("roformer_interleaved", RoPE(rotaryDim: 64, base: 10_000, maxPositions: 64, layout: .interleaved))
    }

    func testLlamaHalfSplitBase10000() throws {
        try checkFixture("llama_base10000", RoPE(rotaryDim: 64, base: 10_000, maxPositions: 64, layout: .halfSplit))
    }

    func testLlamaHalfSplitBase100000() throws {
        try checkFixture("llama_base100000", RoPE(rotaryDim: 64, base: 100_000, maxPositions: 64, layout: .halfSplit))
    }

    func testLlamaLinearScaling() throws {
        try checkFixture("llama_linear4", RoPE(rotaryDim: 64, base: 10_000, maxPositions: 64, layout: .halfSplit,
                                               scaling: .linear(factor: 4)))
    }

    func testNeoXPartialRotary() throws {
        // head dim 64, partial_rotary_factor 0.25: only features 0..<16 rotate.
        let f = try checkFixture("neox_partial", RoPE(rotaryDim: 16, base: 10_000, maxPositions: 64))
        let q = f["q"]!, qOut = f["q_out"]!
        XCTAssertEqual(q.sliced(axis: 2, 16..<64), qOut.sliced(axis: 2, 16..<64))
    }

    func testDeepSeekYarnInterleaved() throws {
        let rope = RoPE(rotaryDim: 64, base: 10_000, maxPositions: 64, layout: .interleaved, scaling: Self.deepseekYarn)
        let f = try checkFixture("deepseek_yarn_interleaved", rope)
        // The fixture discriminates: unscaled RoPE must not pass it.
        var q = f["q"]!
        RoPE(rotaryDim: 64, maxPositions: 64, layout: .interleaved).apply(&q, positionOffset: Int(f["position_offset"]!.item))
        XCTAssertGreaterThan(q.maxAbsDifference(f["q_out"]!), 1e-3)
    }

    func testDeepSeekYarnHalfSplit() throws {
        try checkFixture("deepseek_yarn_halfsplit",
                         RoPE(rotaryDim: 64, base: 10_000, maxPositions: 64, layout: .halfSplit, scaling: Self.deepseekYarn))
    }

    func testDeepSeekYarnMscale0707Interleaved() throws {
        let rope = RoPE(rotaryDim: 64, base: 10_000, maxPositions: 64, layout: .interleaved, scaling: Self.deepseekYarn0707)
        try checkFixture("deepseek_yarn_mscale0707_interleaved", rope)
        let m = { (k: Double) in 0.1 * k * log(40.0) + 1 }
        XCTAssertEqual(rope.attentionFactor, m(0.707) / m(1.0), accuracy: 1e-12)
        XCTAssertEqual(rope.softmaxScaleMultiplier, m(1.0) * m(1.0), accuracy: 1e-12)
    }

    func testDeepSeekYarnMscale0707HalfSplit() throws {
        try checkFixture("deepseek_yarn_mscale0707_halfsplit",
                         RoPE(rotaryDim: 64, base: 10_000, maxPositions: 64, layout: .halfSplit, scaling: Self.deepseekYarn0707))
    }

    func testMultipliersWithoutYarnAreOne() {
        for scaling: RoPE.Scaling? in [nil, .linear(factor: 8),
                                       .yarn(factor: 4, originalMaxPositions: 2048, mscale: nil, mscaleAllDim: nil)] {
            let rope = RoPE(rotaryDim: 8, maxPositions: 4, scaling: scaling)
            XCTAssertEqual(rope.softmaxScaleMultiplier, 1)
            if case .yarn = scaling {
                XCTAssertEqual(rope.attentionFactor, 0.1 * log(4.0) + 1, accuracy: 1e-12)  // HF get_mscale(factor)
            } else {
                XCTAssertEqual(rope.attentionFactor, 1)
            }
        }
    }

    // MARK: Invariants

    private static let configurations: [(String, RoPE)] = [
        ("interleaved", RoPE(rotaryDim: 32, maxPositions: 64, layout: .interleaved)),
        ("halfSplit", RoPE(rotaryDim: 32, maxPositions: 64, layout: .halfSplit)),
        ("partial", RoPE(rotaryDim: 16, base: 500_000, maxPositions: 64, layout: .halfSplit)),
        ("yarn", RoPE(rotaryDim: 32, maxPositions: 64, layout: .interleaved, scaling: deepseekYarn0707)),
    ]

    func testPositionOffsetEquivalence() {
        for (name, rope) in Self.configurations {
            let x = Tensor.randomNormal([10, 3, 32], seed: 7)
            var full = x
            rope.apply(&full, positionOffset: 0)
            var tail = x.sliced(axis: 0, 3..<10)
            rope.apply(&tail, positionOffset: 3)
            XCTAssertTrue(tail.isClose(to: full.sliced(axis: 0, 3..<10), rtol: 0, atol: 0), name)
        }
    }

    func testRotationPreservesPairNorms() {
        for (name, rope) in Self.configurations {
            let x = Tensor.randomNormal([6, 2, 32], seed: 11)
            var y = x
            rope.apply(&y, positionOffset: 20)
            let half = rope.rotaryDim / 2
            let gain = Float(rope.attentionFactor)
            for t in 0..<6 {
                for h in 0..<2 {
                    for i in 0..<half {
                        let (a, b) = rope.layout == .interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                        let before = hypot(x[t, h, a], x[t, h, b]), after = hypot(y[t, h, a], y[t, h, b])
                        XCTAssertEqual(after, gain * before, accuracy: 1e-5 * max(1, before), "\(name) t\(t) h\(h) pair \(i)")
                    }
                    for j in rope.rotaryDim..<32 { XCTAssertEqual(y[t, h, j], x[t, h, j], "\(name) passthrough") }
                }
            }
        }
    }

    func testScoresDependOnlyOnRelativePosition() {
        for (name, rope) in Self.configurations {
            let q = Tensor.randomNormal([1, 1, 32], seed: 3), k = Tensor.randomNormal([1, 1, 32], seed: 4)
            func score(_ m: Int, _ n: Int) -> Float {
                var rq = q, rk = k
                rope.apply(&rq, positionOffset: m)
                rope.apply(&rk, positionOffset: n)
                return zip(rq.scalars, rk.scalars).reduce(0) { $0 + $1.0 * $1.1 }
            }
            for delta in [0, 1, 5, 17] {
                let reference = score(delta, 0)
                for n in [1, 9, 30, 46] {
                    XCTAssertEqual(score(n + delta, n), reference, accuracy: 1e-4, "\(name) m−n = \(delta), n = \(n)")
                }
            }
            XCTAssertNotEqual(score(5, 0), score(6, 0), accuracy: 1e-3, "\(name): score should vary with m − n")
        }
    }

    // MARK: Entry points

    func testBatchedRank4MatchesPerSequence() {
        let rope = RoPE(rotaryDim: 16, maxPositions: 32, layout: .interleaved)
        let x = Tensor.randomNormal([3, 5, 2, 24], seed: 5)
        var batched = x
        rope.apply(&batched, positionOffset: 4)
        for b in 0..<3 {
            var row = x.sliced(axis: 0, b..<(b + 1)).reshaped([5, 2, 24])
            rope.apply(&row, positionOffset: 4)
            XCTAssertEqual(batched.sliced(axis: 0, b..<(b + 1)).reshaped([5, 2, 24]), row)
        }
    }

    /// DeepSeek-style: rotate the trailing `q_pe` slice of each head inside full q rows, in place.
    func testPointerApplyRotatesSliceInPlace() {
        let (seq, heads, nope, ropeDim) = (4, 3, 8, 16)
        let headDim = nope + ropeDim
        let rope = RoPE(rotaryDim: ropeDim, maxPositions: 16, layout: .interleaved, scaling: Self.deepseekYarn)
        let q = Tensor.randomNormal([seq, heads, headDim], seed: 9)
        var rotated = q
        rotated.withUnsafeMutableBufferPointer { p in
            rope.apply(to: p.baseAddress! + nope, seq: seq, heads: heads, rowStride: heads * headDim,
                       headStride: headDim, positionOffset: 6)
        }
        var pe = q.sliced(axis: 2, nope..<headDim)
        rope.apply(&pe, positionOffset: 6)
        XCTAssertEqual(rotated.sliced(axis: 2, 0..<nope), q.sliced(axis: 2, 0..<nope))
        XCTAssertEqual(rotated.sliced(axis: 2, nope..<headDim), pe)
    }

    /// Large inputs take the parallel path; it must equal token-by-token application.
    func testParallelPathMatchesTokenByToken() {
        for layout in [RoPE.Layout.interleaved, .halfSplit] {
            let rope = RoPE(rotaryDim: 64, maxPositions: 600, layout: layout)
            let x = Tensor.randomNormal([520, 4, 64], seed: 13)
            var whole = x
            rope.apply(&whole, positionOffset: 50)
            var serial = x
            serial.withUnsafeMutableBufferPointer { p in
                for t in 0..<520 {
                    rope.apply(to: p.baseAddress! + t * 256, seq: 1, heads: 4, rowStride: 256, headStride: 64,
                               positionOffset: 50 + t)
                }
            }
            XCTAssertEqual(whole, serial, "\(layout)")
        }
    }
}
