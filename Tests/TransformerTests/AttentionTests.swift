import Foundation
import Transformer
import XCTest

/// Attention against PyTorch (fixtures from `scripts/fixtures/attention.py`), FlashAttention against the
/// materialised reference, and invariants (tiling, fully masked rows, GQA).
///
/// Tolerance, everywhere: every element satisfies |got − want| ≤ atol + rtol·|want| with rtol = 1e-5, atol = 1e-6
/// (`Tensor.isClose`, the torch.allclose rule), and an element the reference makes exactly 0 (a fully masked row)
/// must be exactly 0. The PyTorch outputs are float64 computations rounded once to float32, so the fixture side
/// carries no float32 error of its own. Every check prints its worst error and the fraction of the tolerance used.
///
/// Margin: the binding elements are small outputs produced by cancellation (e.g. −0.0171 as a sum of p·v terms
/// with Σ|p·v| ≈ 1.9 in `dense_n7_h8g2_d80`); their error scales with Σ|p·v| rather than |out|, a few float32 ulps
/// of ~2, i.e. ~1e-6, which atol has to absorb (worst seen: 0.93 of the tolerance, float32 reference vs torch).
/// If a different BLAS / exp kernel pushes such an element over, raise atol to 2e-6 rather than rtol.
final class AttentionTests: XCTestCase {
    static let rtol: Float = 1e-5
    static let atol: Float = 1e-6

    // MARK: Comparison

    /// Worst error of `got` against `want`: max |Δ| and max |Δ| / (atol + rtol·|want|) (≤ 1 passes).
    struct Deviation {
        var maxAbs: Float = 0
        var worstRatio: Float = 0
        var nonFinite = 0
        var nonZeroWhereZero = 0
        /// Flat index, value and expected value of the element with the worst ratio.
        var worstIndex = 0
        var worstGot: Float = 0
        var worstWant: Float = 0
    }

    static func deviation(_ got: Tensor, _ want: Tensor, rtol: Float = rtol, atol: Float = atol) -> Deviation {
        precondition(got.shape == want.shape, "shapes differ: \(got.shape) vs \(want.shape)")
        var d = Deviation()
        got.withUnsafeBufferPointer { a in
            want.withUnsafeBufferPointer { b in
                for i in 0..<a.count {
                    guard a[i].isFinite else { d.nonFinite += 1; continue }
                    if b[i] == 0 && a[i] != 0 { d.nonZeroWhereZero += 1 }
                    let e = abs(a[i] - b[i])
                    d.maxAbs = max(d.maxAbs, e)
                    let ratio = e / (atol + rtol * abs(b[i]))
                    if ratio > d.worstRatio { (d.worstRatio, d.worstIndex, d.worstGot, d.worstWant) = (ratio, i, a[i], b[i]) }
                }
            }
        }
        return d
    }

    /// Asserts `got` ≈ `want` within the tolerance above; returns the deviation (also printed).
    @discardableResult
    static func assertClose(_ got: Tensor, _ want: Tensor, _ label: String, rtol: Float = rtol, atol: Float = atol,
                            file: StaticString = #filePath, line: UInt = #line) -> Deviation {
        XCTAssertEqual(got.shape, want.shape, "\(label): shape", file: file, line: line)
        guard got.shape == want.shape else { return Deviation() }
        let d = deviation(got, want, rtol: rtol, atol: atol)
        let summary = "max |Δ| \(String(format: "%.3g", Double(d.maxAbs))), "
            + "\(String(format: "%.3f", Double(d.worstRatio))) of tolerance (element \(d.worstIndex): "
            + "\(d.worstGot) vs \(d.worstWant))"
        print("[attention] \(label): \(summary)")
        XCTAssertEqual(d.nonFinite, 0, "\(label): \(d.nonFinite) non-finite outputs", file: file, line: line)
        XCTAssertEqual(d.nonZeroWhereZero, 0, "\(label): \(d.nonZeroWhereZero) outputs should be exactly 0 (masked rows)",
                       file: file, line: line)
        XCTAssertLessThanOrEqual(d.worstRatio, 1, "\(label): \(summary) (rtol \(rtol), atol \(atol))", file: file, line: line)
        return d
    }

    // MARK: Fixtures

    /// The `config` metadata of a fixture (see `scripts/fixtures/attention.py`).
    struct FixtureConfig: Decodable {
        var scale: Double?
        var score: String
        var sigmoidBias: Double?
        var causal: Bool
        var queryOffset: Int
        var window: Int?
        var globalTokens: [Int]
        var keyLengths: [Int]?
        var blockSize: Int?
        var zeroRows: Int
        var description: String
    }

    struct Fixture {
        var name: String
        var config: FixtureConfig
        var q, k, v, out: Tensor
        var options: Attention.Options
    }

    static let fixtureNames = [
        "dense_n1_h8g8_d128", "dense_n7_h8g2_d80", "dense_nq7_nk100_h8g1_d64", "dense_nq7_nk257_h8g1_d32",
        "dense_nq100_nk7_h4g1_d16",
        "causal_n7_h8g8_d64", "causal_n100_h2g1_d32", "causal_n257_h2g1_d16",
        "decode_nq1_nk100_h8g2_d32", "decode_nq5_nk100_h8g2_d32",
        "padding_b2_nq7_nk100_h2g1_d32", "padding_causal_b2_n100_h2g1_d16",
        "window16_n100_h2g1_d32", "window16_causal_n100_h2g1_d16", "global_0_50_window8_n100_h2g1_d32",
        "blocksparse16_n100_h2g1_d32", "combo_b2_nq40_nk64_h2g1_d16",
        "sigmoid_default_bias_n100_h2g1_d32", "sigmoid_bias_nq7_nk100_h8g2_d32", "sigmoid_causal_n100_h2g1_d16",
        "mla_naive_n7_h4g4_d192_dv128", "mla_absorbed_nq2_nk9_h4g1_d576_dv512",
        "scale0p3_n7_h8g8_d64",
    ]

    static var fixtureDirectory: URL {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("attention")
    }

    static func loadFixture(_ name: String) throws -> Fixture {
        let url = fixtureDirectory.appendingPathComponent("\(name).safetensors")
        let tensors = try SafeTensors.load(url)
        let json = try XCTUnwrap(SafeTensorsFile(url: url).metadata["config"], "\(name): no config metadata")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let c = try decoder.decode(FixtureConfig.self, from: Data(json.utf8))

        var layout: BlockSparseLayout?
        if let size = c.blockSize {
            let t = try XCTUnwrap(tensors["block_layout"], "\(name): block_size without block_layout")
            XCTAssertEqual(t.rank, 2)
            layout = BlockSparseLayout(blockSize: size, queryBlocks: t.shape[0], keyBlocks: t.shape[1],
                                       allowed: t.scalars.map { $0 != 0 })
        }
        let mask = AttentionMask(causal: c.causal, queryOffset: c.queryOffset, window: c.window,
                                 globalTokens: c.globalTokens, blockSparse: layout, keyLengths: c.keyLengths)
        let score: Attention.ScoreFunction
        switch c.score {
        case "softmax": score = .softmax
        case "sigmoid": score = .sigmoid(bias: c.sigmoidBias.map { Float($0) })
        default: throw CocoaError(.coderInvalidValue, userInfo: [NSDebugDescriptionErrorKey: "\(name): unknown score \(c.score)"])
        }
        let options = Attention.Options(scale: c.scale.map { Float($0) }, mask: mask, score: score)
        func get(_ key: String) throws -> Tensor { try XCTUnwrap(tensors[key], "\(name): missing '\(key)'") }
        return Fixture(name: name, config: c, q: try get("q"), k: try get("k"), v: try get("v"), out: try get("out"),
                       options: options)
    }

    /// Flash vs PyTorch and flash vs reference on fixture `name`; returns the flash output.
    @discardableResult
    private func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> Tensor {
        let f = try Self.loadFixture(name)
        let flash = Attention.flash(query: f.q, key: f.k, value: f.v, options: f.options)
        let reference = Attention.reference(query: f.q, key: f.k, value: f.v, options: f.options)
        Self.assertClose(flash, f.out, "\(name) flash vs torch", file: file, line: line)
        Self.assertClose(reference, f.out, "\(name) reference vs torch", file: file, line: line)
        Self.assertClose(flash, reference, "\(name) flash vs reference", file: file, line: line)
        // Fully masked rows: count them in the flash output (all Dv values exactly 0).
        let dv = flash.shape[3]
        let rows = flash.count / dv
        let zeroRows = flash.withUnsafeBufferPointer { p in (0..<rows).filter { r in (0..<dv).allSatisfy { p[r * dv + $0] == 0 } }.count }
        XCTAssertEqual(zeroRows, f.config.zeroRows * flash.shape[2], "\(name): zero rows (per head)", file: file, line: line)
        return flash
    }

    func testEveryFixtureIsListed() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.fixtureDirectory.path)
            .filter { $0.hasSuffix(".safetensors") }
            .map { String($0.dropLast(".safetensors".count)) }
        XCTAssertEqual(Set(files), Set(Self.fixtureNames), "fixtures on disk vs tested")
    }

    // Dense softmax: sequence lengths, head dims, MHA / GQA / MQA.
    func testDenseN1MHAHeadDim128() throws { try check("dense_n1_h8g8_d128") }
    func testDenseN7GQAHeadDim80() throws { try check("dense_n7_h8g2_d80") }
    func testDenseNq7Nk100MQAHeadDim64() throws { try check("dense_nq7_nk100_h8g1_d64") }
    func testDenseNq7Nk257MQAHeadDim32() throws { try check("dense_nq7_nk257_h8g1_d32") }
    func testDenseNq100Nk7MQA() throws { try check("dense_nq100_nk7_h4g1_d16") }

    // Causal.
    func testCausalN7() throws { try check("causal_n7_h8g8_d64") }
    func testCausalN100() throws { try check("causal_n100_h2g1_d32") }
    func testCausalN257() throws { try check("causal_n257_h2g1_d16") }

    // Causal decode against a cache: queryOffset = Nk − Nq.
    func testDecodeOneQuery() throws { try check("decode_nq1_nk100_h8g2_d32") }
    func testDecodeFiveQueries() throws { try check("decode_nq5_nk100_h8g2_d32") }

    // Key padding.
    func testKeyPadding() throws { try check("padding_b2_nq7_nk100_h2g1_d32") }
    func testKeyPaddingCausal() throws { try check("padding_causal_b2_n100_h2g1_d16") }

    // Sliding window, global tokens, block-sparse.
    func testSlidingWindow() throws { try check("window16_n100_h2g1_d32") }
    func testSlidingWindowCausal() throws { try check("window16_causal_n100_h2g1_d16") }
    func testGlobalTokensWithWindow() throws { try check("global_0_50_window8_n100_h2g1_d32") }
    func testBlockSparse() throws {
        let out = try check("blocksparse16_n100_h2g1_d32")
        // Query block 3 (tokens 48..<64) has no allowed key block: its rows are exact zeros.
        XCTAssertTrue(out.sliced(axis: 1, 48..<64).scalars.allSatisfy { $0 == 0 })
        XCTAssertFalse(out.sliced(axis: 1, 47..<48).scalars.allSatisfy { $0 == 0 })
    }

    func testAllMaskFeaturesCombined() throws { try check("combo_b2_nq40_nk64_h2g1_d16") }

    // Sigmoid attention.
    func testSigmoidDefaultBias() throws { try check("sigmoid_default_bias_n100_h2g1_d32") }
    func testSigmoidExplicitBias() throws { try check("sigmoid_bias_nq7_nk100_h8g2_d32") }
    func testSigmoidCausal() throws { try check("sigmoid_causal_n100_h2g1_d16") }

    // Value dim ≠ key dim (DeepSeek MLA).
    func testMLANaiveValueDim128() throws { try check("mla_naive_n7_h4g4_d192_dv128") }
    func testMLAAbsorbedHeadDim576() throws { try check("mla_absorbed_nq2_nk9_h4g1_d576_dv512") }

    // Custom scale.
    func testCustomScale() throws {
        let f = try Self.loadFixture("scale0p3_n7_h8g8_d64")
        XCTAssertEqual(f.options.scale, 0.3)
        try check(f.name)
        // The fixture discriminates: the default scale must not pass it.
        var wrong = f.options
        wrong.scale = nil
        let out = Attention.flash(query: f.q, key: f.k, value: f.v, options: wrong)
        XCTAssertGreaterThan(out.maxAbsDifference(f.out), 1e-3)
    }

    // MARK: Flash vs reference on random inputs

    private static func random(_ b: Int, _ nq: Int, _ nk: Int, _ h: Int, _ g: Int, _ d: Int, _ dv: Int? = nil,
                               seed: UInt64) -> (Tensor, Tensor, Tensor) {
        (Tensor.randomNormal([b, nq, h, d], seed: seed), Tensor.randomNormal([b, nk, g, d], seed: seed + 1),
         Tensor.randomNormal([b, nk, g, dv ?? d], seed: seed + 2))
    }

    /// Masks exercised on random inputs of `nq` queries against `nk` keys and `batch` entries.
    private static func masks(nq: Int, nk: Int, batch: Int) -> [(String, Attention.Options)] {
        let offset = max(0, nk - nq)
        let lengths = (0..<batch).map { b in b == 0 ? nk : max(0, nk - 37 * b - 3) }
        return [
            ("dense", Attention.Options()),
            ("causal", Attention.Options(mask: .causal)),
            ("causal offset \(offset)", Attention.Options(mask: AttentionMask(causal: true, queryOffset: offset))),
            ("padding \(lengths)", Attention.Options(mask: AttentionMask(keyLengths: lengths))),
            ("causal offset + padding", Attention.Options(mask: AttentionMask(causal: true, queryOffset: offset,
                                                                               keyLengths: lengths))),
            ("window 40", Attention.Options(mask: AttentionMask(queryOffset: offset, window: 40))),
            ("causal window 40", Attention.Options(mask: AttentionMask(causal: true, queryOffset: offset, window: 40))),
            ("globals + window 7", Attention.Options(mask: AttentionMask(queryOffset: offset, window: 7,
                                                                          globalTokens: [0, 33, nk - 1]))),
            ("bigBird 16", Attention.Options(mask: AttentionMask(
                blockSparse: .bigBird(length: max(nq, nk), blockSize: 16, randomBlocks: 1, seed: 3)))),
            ("sigmoid", Attention.Options(score: .sigmoid())),
            ("sigmoid causal window", Attention.Options(mask: AttentionMask(causal: true, queryOffset: offset, window: 40),
                                                        score: .sigmoid(bias: -3))),
            ("scale 0.05", Attention.Options(scale: 0.05, mask: .causal)),
            ("window 0", Attention.Options(mask: AttentionMask(queryOffset: offset, window: 0))),
            ("causal globals + window 5", Attention.Options(mask: AttentionMask(causal: true, queryOffset: offset, window: 5,
                                                                                 globalTokens: [1, nk / 2]))),
            ("bigBird + window + globals + padding, sigmoid", Attention.Options(mask: AttentionMask(
                queryOffset: offset, window: 20, globalTokens: [nk / 3],
                blockSparse: .bigBird(length: max(offset + nq, nk), blockSize: 8, randomBlocks: 1, seed: 9),
                keyLengths: lengths), score: .sigmoid())),
        ]
    }

    // MARK: Kernel paths and split-KV

    /// Every PyTorch fixture on every kernel path this CPU supports (AVX-512, AVX2, portable C), with the default
    /// tiling and with small tiles and forced key splits (rows/tiles/splits must not change the result).
    func testEveryKernelPathMatchesFixtures() throws {
        let paths = CPU.supportedKernelPaths
        XCTAssertTrue(paths.contains(.portable))
        var worst: [CPU.KernelPath: Float] = [:]
        for path in paths {
            try CPU.withKernelPath(path) {
                XCTAssertEqual(CPU.kernelPath, path)
                for name in Self.fixtureNames {
                    let f = try Self.loadFixture(name)
                    for (tag, options) in [("default", f.options), ("rows 16 tile 32 splits 3", f.options.tiled(16, 32, splits: 3))] {
                        let flash = Attention.flash(query: f.q, key: f.k, value: f.v, options: options)
                        let d = Self.deviation(flash, f.out)
                        worst[path] = max(worst[path] ?? 0, d.worstRatio)
                        XCTAssertTrue(d.worstRatio <= 1 && d.nonFinite == 0 && d.nonZeroWhereZero == 0,
                                      "\(name) on \(path), \(tag) vs torch: max |Δ| \(d.maxAbs), \(d.worstRatio) of tolerance")
                    }
                }
            }
        }
        print("[attention] every fixture vs torch per kernel path, worst fraction of the tolerance: \(worst)")
    }

    /// Split-KV (flash-decoding) equals the unsplit kernel within 1e-6 relative on every mask and score function, for
    /// decode (1 and 5 queries, MQA and GQA) and a short prefill, on every kernel path. "Relative" is to the output's
    /// scale: |split − whole| ≤ 1e-6·(|whole| + max|whole|), since the split only reorders float32 sums (a 300-key
    /// sigmoid sum of magnitude ~1 moves by a few 1e-7 when regrouped, whatever the element's own size).
    func testSplitKeysEqualUnsplit() {
        let shapes: [(nq: Int, nk: Int, h: Int, g: Int, d: Int)] = [(1, 300, 8, 1, 32), (5, 300, 8, 2, 24), (40, 200, 4, 1, 16)]
        var worst: Float = 0
        for path in CPU.supportedKernelPaths {
            CPU.withKernelPath(path) {
                for s in shapes {
                    let (q, k, v) = Self.random(2, s.nq, s.nk, s.h, s.g, s.d, seed: UInt64(s.nk + s.nq))
                    for (label, options) in Self.masks(nq: s.nq, nk: s.nk, batch: 2) {
                        let whole = Attention.flash(query: q, key: k, value: v, options: options.tiled(nil, 32, splits: 1))
                        for splits in [2, 3, 7] {
                            let split = Attention.flash(query: q, key: k, value: v, options: options.tiled(nil, 32, splits: splits))
                            let scale = whole.withUnsafeBufferPointer { $0.map(abs).max() ?? 0 }
                            let d = Self.deviation(split, whole, rtol: 1e-6, atol: 1e-6 * scale)
                            worst = max(worst, d.worstRatio)
                            XCTAssertTrue(d.worstRatio <= 1 && d.nonFinite == 0 && d.nonZeroWhereZero == 0,
                                          "\(path) Nq \(s.nq) Nk \(s.nk) H \(s.h)/\(s.g), \(label), \(splits) splits: "
                                          + "max |Δ| \(d.maxAbs), \(d.worstRatio) of tolerance")
                        }
                    }
                }
            }
        }
        print("[attention] split-KV vs unsplit: worst \(worst) of the tolerance")
    }

    /// Decode with one kv head is split automatically when there are fewer tasks than workers (and not otherwise).
    func testAutomaticSplitOnlyWhenTasksAreFew() {
        let saved = Threading.workers
        defer { Threading.workers = saved }
        Threading.workers = 4
        let decode = Attention.Geometry(batch: 1, queries: 1, keys: 4096, heads: 8, kvHeads: 1, headDim: 64, valueDim: 64)
        let prefill = Attention.Geometry(batch: 1, queries: 4096, keys: 4096, heads: 8, kvHeads: 8, headDim: 64, valueDim: 64)
        XCTAssertGreaterThan(FlashAttention.keySplits(decode, options: Attention.Options()), 1)
        XCTAssertEqual(FlashAttention.keySplits(prefill, options: Attention.Options()), 1)
        XCTAssertEqual(FlashAttention.keySplits(decode, options: Attention.Options(keySplits: 1)), 1)
    }

    /// Nk around the 256-key tile and Nq = 129 (GQA 2/1: 64 tokens per 128-row block, so 3 blocks, the last of 1).
    func testTileBoundariesFlashMatchesReference() {
        for nk in [255, 256, 257, 513] {
            let (q, k, v) = Self.random(2, 129, nk, 2, 1, 32, seed: UInt64(nk))
            for (label, options) in Self.masks(nq: 129, nk: nk, batch: 2) {
                let flash = Attention.flash(query: q, key: k, value: v, options: options)
                let reference = Attention.reference(query: q, key: k, value: v, options: options)
                Self.assertClose(flash, reference, "Nq 129, Nk \(nk), \(label)")
            }
        }
    }

    /// Small blocks and tiles force many tiles per row and many row blocks; includes blocks smaller than a
    /// GQA group (rowsPerBlock < H/G) and one-key tiles.
    func testManySmallTilesFlashMatchesReference() {
        let shapes: [(rows: Int, tile: Int, nq: Int, nk: Int, h: Int, g: Int, d: Int, dv: Int)] = [
            (16, 32, 129, 257, 4, 2, 32, 32),
            (16, 32, 1, 100, 8, 1, 64, 64),     // decode, MQA
            (16, 32, 50, 77, 8, 8, 16, 24),     // MHA, Dv ≠ D
            (4, 17, 33, 65, 8, 1, 16, 16),      // a row block holds one token of an 8-head group
            (3, 1, 9, 20, 2, 2, 8, 8),          // one key per tile
        ]
        for s in shapes {
            let (q, k, v) = Self.random(2, s.nq, s.nk, s.h, s.g, s.d, s.dv, seed: UInt64(s.nq * 1000 + s.nk))
            for (label, options) in Self.masks(nq: s.nq, nk: s.nk, batch: 2) {
                let flash = Attention.flash(query: q, key: k, value: v, options: options.tiled(s.rows, s.tile))
                let reference = Attention.reference(query: q, key: k, value: v, options: options)
                Self.assertClose(flash, reference, "rows \(s.rows) tile \(s.tile) Nq \(s.nq) Nk \(s.nk) "
                                 + "H \(s.h)/\(s.g) D \(s.d)/\(s.dv), \(label)")
            }
        }
    }

    /// The fixtures again with small tiles (the PyTorch outputs must not depend on the tiling).
    func testFixturesWithSmallTiles() throws {
        for name in Self.fixtureNames {
            let f = try Self.loadFixture(name)
            let flash = Attention.flash(query: f.q, key: f.k, value: f.v, options: f.options.tiled(16, 32))
            Self.assertClose(flash, f.out, "\(name) flash (rows 16, tile 32) vs torch")
        }
    }

    /// Scores in the hundreds: the running max changes by large steps between tiles; nothing overflows.
    func testLargeScoresStayFinite() {
        let (q, k, v) = Self.random(1, 20, 100, 2, 1, 16, seed: 31)
        for options in [Attention.Options(scale: 40), Attention.Options(scale: 40, mask: .causal),
                        Attention.Options(scale: 40, score: .sigmoid())] {
            let flash = Attention.flash(query: q, key: k, value: v, options: options.tiled(8, 16))
            // The output is steep in the scores here (float32 scores carry ~1e-5 absolute error), hence 1e-3.
            Self.assertClose(flash, Self.naive(q, k, v, options), "scale 40, \(options.mask.causal ? "causal " : "")\(options.score)",
                             rtol: 1e-3, atol: 1e-3)
        }
    }

    // MARK: Fully masked rows

    func testFullyMaskedRowsAreExactZeros() {
        let (q, k, v) = Self.random(3, 9, 40, 4, 2, 16, seed: 77)
        let cases: [(String, Attention.Options)] = [
            ("softmax keyLengths 0", Attention.Options(mask: AttentionMask(keyLengths: [0, 40, 0]))),
            ("sigmoid keyLengths 0", Attention.Options(mask: AttentionMask(keyLengths: [0, 40, 0]), score: .sigmoid())),
            ("causal + keyLengths 0", Attention.Options(mask: AttentionMask(causal: true, queryOffset: 31,
                                                                             keyLengths: [0, 40, 0]))),
            // Layout covers positions < 16 only: queries 16... see no block (outside the layout means not allowed).
            ("block layout smaller than the sequence", Attention.Options(mask: AttentionMask(
                blockSparse: BlockSparseLayout(blockSize: 16, queryBlocks: 1, keyBlocks: 3, allowed: [true, true, true]),
                keyLengths: [40, 40, 40]))),
        ]
        for (label, options) in cases {
            for (impl, out) in [("flash", Attention.flash(query: q, key: k, value: v, options: options)),
                                ("reference", Attention.reference(query: q, key: k, value: v, options: options))] {
                XCTAssertTrue(out.scalars.allSatisfy { $0.isFinite }, "\(label) \(impl): NaN/inf")
                if options.mask.blockSparse == nil {
                    XCTAssertTrue(out.sliced(axis: 0, 0..<1).scalars.allSatisfy { $0 == 0 }, "\(label) \(impl): batch 0")
                    XCTAssertTrue(out.sliced(axis: 0, 2..<3).scalars.allSatisfy { $0 == 0 }, "\(label) \(impl): batch 2")
                    XCTAssertFalse(out.sliced(axis: 0, 1..<2).scalars.contains(0), "\(label) \(impl): batch 1")
                }
            }
        }
        // Block layout smaller than the sequence: 9 queries all sit in query block 0, so nothing is zero; with an
        // offset of 16 every query falls outside the layout.
        var options = cases[3].1
        options.mask.queryOffset = 16
        for out in [Attention.flash(query: q, key: k, value: v, options: options),
                    Attention.reference(query: q, key: k, value: v, options: options)] {
            XCTAssertTrue(out.scalars.allSatisfy { $0 == 0 }, "queries outside the block layout")
        }
    }

    /// No keys at all: zeros (not NaN) for every score function; no queries: an empty output.
    func testEmptyKeysOrQueries() {
        let q = Tensor.randomNormal([1, 3, 4, 8], seed: 5)
        let k = Tensor.zeros([1, 0, 2, 8]), v = Tensor.zeros([1, 0, 2, 8])
        for options in [Attention.Options(), Attention.Options(mask: .causal), Attention.Options(score: .sigmoid(bias: -1))] {
            for (impl, out) in [("flash", Attention.flash(query: q, key: k, value: v, options: options)),
                                ("reference", Attention.reference(query: q, key: k, value: v, options: options))] {
                XCTAssertEqual(out.shape, [1, 3, 4, 8])
                XCTAssertTrue(out.scalars.allSatisfy { $0 == 0 }, "\(impl) with no keys, \(options.score)")
            }
        }
        let (q0, k0, v0) = Self.random(2, 0, 5, 4, 2, 8, 6, seed: 8)
        XCTAssertEqual(Attention.flash(query: q0, key: k0, value: v0).shape, [2, 0, 4, 6])
        XCTAssertEqual(Attention.reference(query: q0, key: k0, value: v0).shape, [2, 0, 4, 6])
    }

    // MARK: Every mask combination against an independent Double implementation

    /// Attention in Double straight from the `AttentionMask` doc comment (no tiles, no shared mask code): the
    /// random-input tests above compare flash with the reference, which share the mask logic; this does not.
    static func naive(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ o: Attention.Options) -> Tensor {
        let (B, Nq, H, D) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (Nk, G, Dv) = (k.shape[1], k.shape[2], v.shape[3])
        let m = o.mask
        let scale = Double(o.scale ?? 1 / Float(D).squareRoot())
        let (qs, ks, vs) = (q.scalars, k.scalars, v.scalars)
        func allowed(_ b: Int, _ pos: Int, _ j: Int) -> Bool {
            if let lengths = m.keyLengths, j >= lengths[b] { return false }
            if m.causal && j > pos { return false }
            var local = true
            if let w = m.window { local = local && abs(pos - j) <= w }
            if let l = m.blockSparse {
                let (qb, kb) = (pos / l.blockSize, j / l.blockSize)
                local = local && qb < l.queryBlocks && kb < l.keyBlocks && l.allowed[qb * l.keyBlocks + kb]
            }
            return local || m.globalTokens.contains(pos) || m.globalTokens.contains(j)
        }
        var out = [Float](repeating: 0, count: B * Nq * H * Dv)
        for b in 0..<B {
            for i in 0..<Nq {
                let pos = m.queryOffset + i
                let keys = (0..<Nk).filter { allowed(b, pos, $0) }
                for h in 0..<H {
                    let hk = h / (H / G)
                    var s = keys.map { j -> Double in
                        var dot = 0.0
                        for d in 0..<D { dot += Double(qs[((b * Nq + i) * H + h) * D + d]) * Double(ks[((b * Nk + j) * G + hk) * D + d]) }
                        return dot * scale
                    }
                    switch o.score {
                    case .softmax:
                        let mx = s.max() ?? 0
                        s = s.map { Foundation.exp($0 - mx) }
                        let sum = s.reduce(0, +)
                        s = s.map { $0 / sum }
                    case .sigmoid(let bias):
                        let bb = Double(bias ?? -Float(Foundation.log(Double(max(Nk, 1)))))
                        s = s.map { 1 / (1 + Foundation.exp(-($0 + bb))) }
                    }
                    for d in 0..<Dv {
                        var acc = 0.0
                        for (p, j) in zip(s, keys) { acc += p * Double(vs[((b * Nk + j) * G + hk) * Dv + d]) }
                        out[((b * Nq + i) * H + h) * Dv + d] = Float(acc)
                    }
                }
            }
        }
        return Tensor(shape: [B, Nq, H, Dv], values: out)
    }

    /// 2 × 2 × 3 × 2 × 2 × 2 × 2 combinations of causal, offset, window, globals, block layout, padding and score,
    /// with the default blocking and with tiny blocks and tiles.
    func testMaskCombinationsAgainstNaiveDouble() {
        let (nq, nk) = (23, 61)
        let (q, k, v) = Self.random(2, nq, nk, 4, 2, 8, 6, seed: 2024)
        // 8 × 8 blocks of 8 positions (covers offset + Nq = 61 and Nk); block row 2 is empty.
        let pattern = (0..<64).map { ($0 / 8 != 2) && ($0 * 7 + $0 / 8) % 3 != 0 }
        let layout = BlockSparseLayout(blockSize: 8, queryBlocks: 8, keyBlocks: 8, allowed: pattern)
        var worst = Deviation(), count = 0
        for blocking in [(nil, nil), (6, 8)] as [(Int?, Int?)] {
            for causal in [false, true] {
                for offset in [0, nk - nq] {
                    for window in [nil, 0, 5] as [Int?] {
                        for globals in [[], [2, 40]] {
                            for blocks in [nil, layout] as [BlockSparseLayout?] {
                                for lengths in [nil, [61, 19]] as [[Int]?] {
                                    for score in [Attention.ScoreFunction.softmax, .sigmoid(bias: -1.5)] {
                                        let mask = AttentionMask(causal: causal, queryOffset: offset, window: window,
                                                                 globalTokens: globals, blockSparse: blocks, keyLengths: lengths)
                                        let options = Attention.Options(mask: mask, score: score, rowsPerBlock: blocking.0,
                                                                        tileKeys: blocking.1)
                                        let want = Self.naive(q, k, v, options)
                                        let label = "blocking \(blocking) causal \(causal) offset \(offset) window \(window as Any) "
                                            + "globals \(globals) blocks \(blocks != nil) lengths \(lengths as Any) \(score)"
                                        for (impl, got) in [("flash", Attention.flash(query: q, key: k, value: v, options: options)),
                                                            ("reference", Attention.reference(query: q, key: k, value: v, options: options))] {
                                            let d = Self.deviation(got, want)
                                            count += 1
                                            if d.worstRatio > worst.worstRatio { worst = d }
                                            XCTAssertTrue(d.worstRatio <= 1 && d.nonFinite == 0 && d.nonZeroWhereZero == 0,
                                                          "\(impl), \(label): max |Δ| \(d.maxAbs), \(d.worstRatio) of tolerance, "
                                                          + "\(d.nonFinite) non-finite, \(d.nonZeroWhereZero) non-zero where masked")
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        print("[attention] \(count) mask combinations vs naive Double: worst max |Δ| \(worst.maxAbs), "
              + "\(worst.worstRatio) of tolerance")
    }

    // MARK: GQA and API equivalences

    /// `[B, N, G, D]` → `[B, N, G·rep, D]` with kv head g copied to heads g·rep ..< (g+1)·rep.
    private static func repeatHeads(_ x: Tensor, _ rep: Int) -> Tensor {
        let g = x.shape[2]
        var parts: [Tensor] = []
        for i in 0..<g {
            let head = x.sliced(axis: 2, i..<(i + 1))
            parts += Array(repeating: head, count: rep)
        }
        return Tensor.concatenate(parts, axis: 2)
    }

    func testGQAEqualsRepeatedKeyValueHeads() {
        for (nq, nk, g) in [(37, 70, 2), (1, 300, 2), (129, 129, 1), (5, 9, 4)] {
            let (q, k, v) = Self.random(2, nq, nk, 8, g, 32, 16, seed: UInt64(nq + 10 * nk + g))
            let (k8, v8) = (Self.repeatHeads(k, 8 / g), Self.repeatHeads(v, 8 / g))
            XCTAssertEqual(k8.shape, [2, nk, 8, 32])
            for (label, options) in [("dense", Attention.Options()),
                                     ("causal offset", Attention.Options(mask: AttentionMask(causal: true, queryOffset: nk - nq))),
                                     ("sigmoid window", Attention.Options(mask: AttentionMask(window: 20), score: .sigmoid()))] {
                let grouped = Attention.flash(query: q, key: k, value: v, options: options)
                let repeated = Attention.flash(query: q, key: k8, value: v8, options: options)
                Self.assertClose(grouped, repeated, "GQA 8/\(g) vs repeated, Nq \(nq) Nk \(nk), \(label)")
                let reference = Attention.reference(query: q, key: k8, value: v8, options: options)
                Self.assertClose(grouped, reference, "GQA 8/\(g) flash vs repeated reference, Nq \(nq) Nk \(nk), \(label)")
            }
        }
    }

    /// The raw-operand entry point with strides: Q/K/V as column slices of one fused QKV projection, then K/V
    /// inside a larger preallocated cache (decode), against the tensor API on dense copies.
    func testStridedOperandsMatchDenseTensors() {
        let (B, N, H, G, D, Dv) = (2, 13, 4, 2, 16, 8)
        let W = H * D + G * D + G * Dv
        let qkv = Tensor.randomNormal([B, N, W], seed: 4242)
        let q = qkv.sliced(axis: 2, 0..<(H * D)).reshaped([B, N, H, D])
        let k = qkv.sliced(axis: 2, (H * D)..<(H * D + G * D)).reshaped([B, N, G, D])
        let v = qkv.sliced(axis: 2, (H * D + G * D)..<W).reshaped([B, N, G, Dv])
        let g = Attention.Geometry(batch: B, queries: N, keys: N, heads: H, kvHeads: G, headDim: D, valueDim: Dv)
        for options in [Attention.Options(mask: .causal), Attention.Options(mask: AttentionMask(keyLengths: [13, 6]))] {
            let want = Attention.flash(query: q, key: k, value: v, options: options)
            var got = Tensor.zeros([B, N, H, Dv])
            qkv.withUnsafeBufferPointer { p in
                got.withUnsafeMutableBufferPointer { o in
                    let base = p.baseAddress!
                    var ops = Attention.Operands(query: base, key: base + H * D, value: base + H * D + G * D,
                                                 output: o.baseAddress!, geometry: g)
                    (ops.queryRowStride, ops.keyRowStride, ops.valueRowStride) = (W, W, W)
                    (ops.queryBatchStride, ops.keyBatchStride, ops.valueBatchStride) = (N * W, N * W, N * W)
                    Attention.flash(g, ops, options: options)
                }
            }
            Self.assertClose(got, want, "fused QKV strides, \(options.mask.causal ? "causal" : "padding")", rtol: 1e-6, atol: 1e-7)
        }

        // Decode: one query at position N − 1 against the first N positions of a capacity-40 cache.
        let capacity = 40
        var kCache = Tensor.randomNormal([B, capacity, G, D], seed: 1), vCache = Tensor.randomNormal([B, capacity, G, Dv], seed: 2)
        kCache.withUnsafeMutableBufferPointer { c in
            k.withUnsafeBufferPointer { s in
                for b in 0..<B { (c.baseAddress! + b * capacity * G * D).update(from: s.baseAddress! + b * N * G * D, count: N * G * D) }
            }
        }
        vCache.withUnsafeMutableBufferPointer { c in
            v.withUnsafeBufferPointer { s in
                for b in 0..<B { (c.baseAddress! + b * capacity * G * Dv).update(from: s.baseAddress! + b * N * G * Dv, count: N * G * Dv) }
            }
        }
        let q1 = q.sliced(axis: 1, (N - 1)..<N)
        let options = Attention.Options(mask: AttentionMask(causal: true, queryOffset: N - 1))
        let want = Attention.flash(query: q1, key: k, value: v, options: options)
        let g1 = Attention.Geometry(batch: B, queries: 1, keys: N, heads: H, kvHeads: G, headDim: D, valueDim: Dv)
        var got = Tensor.zeros([B, 1, H, Dv])
        q1.withUnsafeBufferPointer { qp in
            kCache.withUnsafeBufferPointer { kp in
                vCache.withUnsafeBufferPointer { vp in
                    got.withUnsafeMutableBufferPointer { o in
                        var ops = Attention.Operands(query: qp.baseAddress!, key: kp.baseAddress!, value: vp.baseAddress!,
                                                     output: o.baseAddress!, geometry: g1)
                        ops.keyBatchStride = capacity * G * D
                        ops.valueBatchStride = capacity * G * Dv
                        Attention.flash(g1, ops, options: options)
                    }
                }
            }
        }
        Self.assertClose(got, want, "decode from a capacity-\(capacity) cache", rtol: 1e-6, atol: 1e-7)
    }

    func testRank3EqualsBatchOfOne() {
        let (q, k, v) = Self.random(1, 11, 23, 4, 2, 16, seed: 99)
        let options = Attention.Options(mask: .causal)
        let batched = Attention.flash(query: q, key: k, value: v, options: options)
        let unbatched = Attention.flash(query: q.reshaped([11, 4, 16]), key: k.reshaped([23, 2, 16]),
                                        value: v.reshaped([23, 2, 16]), options: options)
        XCTAssertEqual(unbatched.shape, [11, 4, 16])
        XCTAssertEqual(unbatched.reshaped([1, 11, 4, 16]), batched)
    }

    func testDefaultsMatchExplicitValues() {
        let (q, k, v) = Self.random(1, 6, 50, 2, 1, 48, seed: 123)
        let implicitScale = Attention.flash(query: q, key: k, value: v)
        let explicitScale = Attention.flash(query: q, key: k, value: v, options: Attention.Options(scale: 1 / Float(48).squareRoot()))
        Self.assertClose(implicitScale, explicitScale, "default scale = 1/√D", rtol: 1e-6, atol: 1e-7)
        let implicitBias = Attention.flash(query: q, key: k, value: v, options: Attention.Options(score: .sigmoid()))
        let explicitBias = Attention.flash(query: q, key: k, value: v,
                                           options: Attention.Options(score: .sigmoid(bias: -Float(Foundation.log(50.0)))))
        Self.assertClose(implicitBias, explicitBias, "default sigmoid bias = −log Nk", rtol: 1e-6, atol: 1e-7)
    }
}

extension Attention.Options {
    /// The same options with FlashAttention's query-row block and key tile set (tests of the tiling).
    func tiled(_ rows: Int?, _ tile: Int?, splits: Int? = nil) -> Attention.Options {
        var o = self
        o.rowsPerBlock = rows
        o.tileKeys = tile
        o.keySplits = splits
        return o
    }
}
