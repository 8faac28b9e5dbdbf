import Foundation
import XCTest
@testable import Transformer

/// Training against PyTorch (float64 autograd, `scripts/fixtures/training.py`, group `training`).
///
/// Tolerances (the engine computes in float32):
/// - layer kernels (LayerNorm, GELU, dropout, cross-entropy, attention + RoPE): max |ours − torch| ≤ 1e-5·max|torch| + 1e-6
/// - flash backward vs the materialised backward: max |diff| ≤ 1e-5 · max |materialised|, per gradient
/// - whole models: loss within 1e-5 relative; every parameter's gradient ≤ 1e-4·max|torch grad of that tensor| + 1e-7;
///   parameters after 3 AdamW steps (warm-up, clipping) ≤ 2e-5 absolute (the updates are ~lr = 0.02; Adam divides
///   by √v, so a float32 gradient error of 1e-4 relative moves a parameter by ~1e-4·lr).
final class TrainingTests: XCTestCase {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("training")

    func maxAbs(_ t: Tensor) -> Float { t.withUnsafeBufferPointer { $0.map(abs).max() ?? 0 } }

    func assertClose(_ ours: [Float], _ ref: Tensor, rel: Float, abs: Float, _ label: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, ref.count, "\(label): count", file: file, line: line)
        guard ours.count == ref.count else { return }
        let r = ref.withUnsafeBufferPointer { Array($0) }
        var diff: Float = 0
        for i in 0..<r.count { diff = max(diff, Swift.abs(ours[i] - r[i])) }
        let scale = maxAbs(ref)
        XCTAssertLessThanOrEqual(diff, rel * scale + abs, "\(label): max |diff| \(diff), max |ref| \(scale)", file: file, line: line)
    }

    func array(_ t: Tensor) -> [Float] { t.withUnsafeBufferPointer { Array($0) } }

    func tinyModel(position: PositionEncoding = .rope, heads: Int = 2, hidden: Int = 20) throws -> EncoderClassifier {
        try EncoderClassifier(config: EncoderClassifierConfig(vocabSize: 40, hiddenSize: hidden, layers: 1, heads: heads,
                                                              intermediateSize: 8, maxPositions: 16, numLabels: 3,
                                                              position: position, dropout: 0))
    }

    // MARK: Layers

    func testLayerKernelsMatchPyTorch() throws {
        let f = try SafeTensorsFile(url: Self.root.appendingPathComponent("layers.safetensors"))
        let model = try tinyModel()
        // LayerNorm [7, 10]
        do {
            let x = array(try f.tensor("layernorm.x")), w = array(try f.tensor("layernorm.w")), b = array(try f.tensor("layernorm.b"))
            let dy = array(try f.tensor("layernorm.dy"))
            var y = [Float](repeating: 0, count: 70), dx = y, mean = [Float](repeating: 0, count: 7), rstd = mean
            var dw = [Float](repeating: 0, count: 10), db = dw
            model.layerNormForward(x, &y, &mean, &rstd, w, b, rows: 7, width: 10)
            model.layerNormBackward(dy, &dx, x, mean, rstd, w, dW: &dw, db: &db, rows: 7, width: 10)
            assertClose(y, try f.tensor("layernorm.y"), rel: 1e-5, abs: 1e-6, "layernorm y")
            assertClose(dx, try f.tensor("layernorm.dx"), rel: 1e-5, abs: 1e-6, "layernorm dx")
            assertClose(dw, try f.tensor("layernorm.dw"), rel: 1e-5, abs: 1e-6, "layernorm dw")
            assertClose(db, try f.tensor("layernorm.db"), rel: 1e-5, abs: 1e-6, "layernorm db")
        }
        // GELU
        do {
            let x = array(try f.tensor("gelu.x")), dy = array(try f.tensor("gelu.dy"))
            var y = [Float](repeating: 0, count: x.count), dx = y
            model.geluForward(x, &y, count: x.count)
            model.geluBackward(x, dy, &dx, count: x.count)
            assertClose(y, try f.tensor("gelu.y"), rel: 1e-5, abs: 1e-6, "gelu y")
            assertClose(dx, try f.tensor("gelu.dx"), rel: 1e-5, abs: 1e-6, "gelu dx")
        }
        // Dropout with PyTorch's mask: the engine's masks hold keep/(1−p); forward and backward multiply by them.
        do {
            let x = array(try f.tensor("dropout.x")), dy = array(try f.tensor("dropout.dy"))
            let mask = array(try f.tensor("dropout.keep")).map { $0 / (1 - 0.3) }
            assertClose(zip(x, mask).map(*), try f.tensor("dropout.y"), rel: 1e-6, abs: 1e-7, "dropout y")
            assertClose(zip(dy, mask).map(*), try f.tensor("dropout.dx"), rel: 1e-6, abs: 1e-7, "dropout dx")
        }
        // Fixed sinusoidal position table (scaled to RMS 0.02).
        do {
            var table = [Float](repeating: 0, count: 16 * 20)
            EncoderClassifier.fixedPositionTable(.sinusoidal, positions: 16, hidden: 20, into: &table)
            assertClose(table, try f.tensor("sinusoid.table"), rel: 1e-6, abs: 1e-8, "sinusoidal table")
        }
        // Cross-entropy
        do {
            let logits = array(try f.tensor("ce.logits")), labels = try f.integers("ce.labels")
            var d = [Float](repeating: 0, count: logits.count)
            let (loss, _) = EncoderClassifier.softmaxCrossEntropy(logits, labels: labels, classes: 3, dLogits: &d)
            assertClose([Float(loss)], try f.tensor("ce.loss"), rel: 1e-6, abs: 1e-7, "cross-entropy loss")
            assertClose(d, try f.tensor("ce.dlogits"), rel: 1e-5, abs: 1e-7, "cross-entropy dlogits")
        }
    }

    /// Attention with interleaved RoPE and key padding, T = 13, D = 10, against autograd through the rotation.
    func testAttentionWithRoPEAndPaddingMatchesPyTorch() throws {
        let f = try SafeTensorsFile(url: Self.root.appendingPathComponent("layers.safetensors"))
        let (B, T, heads, D) = (2, 13, 2, 10)
        let H = heads * D, N = B * T
        let model = try tinyModel(heads: heads, hidden: H)
        let lengths = try f.integers("attn.lengths")
        let q = array(try f.tensor("attn.q")), k = array(try f.tensor("attn.k")), v = array(try f.tensor("attn.v"))
        let dO = array(try f.tensor("attn.dO"))
        var qkv = [Float](repeating: 0, count: N * 3 * H)
        for r in 0..<N {
            for j in 0..<H { qkv[r * 3 * H + j] = q[r * H + j]; qkv[r * 3 * H + H + j] = k[r * H + j]; qkv[r * 3 * H + 2 * H + j] = v[r * H + j] }
        }
        let qp = UnsafeMutablePointer<Float>.allocate(capacity: qkv.count); qp.update(from: qkv, count: qkv.count)
        let op = UnsafeMutablePointer<Float>.allocate(capacity: N * H), lp = UnsafeMutablePointer<Float>.allocate(capacity: B * heads * T)
        let gp = UnsafeMutablePointer<Float>.allocate(capacity: N * 3 * H)
        let sp = UnsafeMutablePointer<Float>.allocate(capacity: FlashAttentionTraining.scratchFloats(queries: T))
        let dp = UnsafeMutablePointer<Float>.allocate(capacity: N * H); dp.update(from: dO, count: N * H)
        defer { qp.deallocate(); op.deallocate(); lp.deallocate(); gp.deallocate(); sp.deallocate(); dp.deallocate() }
        model.applyRope(qp, rows: N, seq: T, stride: 3 * H, sign: 1, both: true)
        for b in 0..<B {
            for h in 0..<heads {
                let base = qp + b * T * 3 * H + h * D
                let head = FlashAttentionTraining.Head(
                    q: base, k: base + H, v: base + 2 * H, qkvStride: 3 * H, o: op + b * T * H + h * D, oStride: H,
                    lse: lp + (b * heads + h) * T, queries: T, keyLength: lengths[b], headDim: D, scale: 1 / Float(D).squareRoot())
                FlashAttentionTraining.forward(head, scratch: sp)
                let g = gp + b * T * 3 * H + h * D
                FlashAttentionTraining.backward(head, dO: dp + b * T * H + h * D, dOStride: H, dQ: g, dK: g + H, dV: g + 2 * H,
                                                gradStride: 3 * H, scratch: sp)
            }
        }
        model.applyRope(gp, rows: N, seq: T, stride: 3 * H, sign: -1, both: true)
        func pick(_ part: Int) -> [Float] {
            var out: [Float] = []
            for r in 0..<N { for j in 0..<H { out.append(gp[r * 3 * H + part * H + j]) } }
            return out
        }
        let o = Array(UnsafeBufferPointer(start: op, count: N * H))
        assertClose(o, try f.tensor("attn.O"), rel: 1e-5, abs: 1e-6, "attention O")
        assertClose(pick(0), try f.tensor("attn.dq"), rel: 1e-5, abs: 1e-6, "attention dq (through RoPE)")
        assertClose(pick(1), try f.tensor("attn.dk"), rel: 1e-5, abs: 1e-6, "attention dk (through RoPE)")
        assertClose(pick(2), try f.tensor("attn.dv"), rel: 1e-5, abs: 1e-6, "attention dv")
    }

    /// Several tiles in both directions (N = 150 > 64, key length 131), odd D: flash = materialised within 1e-5,
    /// with scratch far below N².
    func testFlashBackwardEqualsMaterialized() {
        let (N, D, L) = (150, 12, 131)
        let stride = 3 * D
        var qkv = Tensor.randomNormal([N * stride], seed: 3).withUnsafeBufferPointer { Array($0) }
        let dO = Tensor.randomNormal([N * D], seed: 4).withUnsafeBufferPointer { Array($0) }
        var o = [Float](repeating: 0, count: N * D), lse = [Float](repeating: 0, count: N)
        var flash = [Float](repeating: 0, count: N * stride), mat = flash
        let scratchCount = FlashAttentionTraining.scratchFloats(queries: N)
        XCTAssertLessThan(scratchCount, N * N, "scratch must be O(N·d), not N×N")
        var scratch = [Float](repeating: 0, count: scratchCount)
        qkv.withUnsafeMutableBufferPointer { qb in
            o.withUnsafeMutableBufferPointer { ob in
                lse.withUnsafeMutableBufferPointer { lb in
                    let p = qb.baseAddress!
                    let head = FlashAttentionTraining.Head(q: p, k: p + D, v: p + 2 * D, qkvStride: stride, o: ob.baseAddress!,
                                                           oStride: D, lse: lb.baseAddress!, queries: N, keyLength: L,
                                                           headDim: D, scale: 0.3)
                    scratch.withUnsafeMutableBufferPointer { FlashAttentionTraining.forward(head, scratch: $0.baseAddress!) }
                    dO.withUnsafeBufferPointer { db in
                        flash.withUnsafeMutableBufferPointer { g in
                            scratch.withUnsafeMutableBufferPointer {
                                FlashAttentionTraining.backward(head, dO: db.baseAddress!, dOStride: D, dQ: g.baseAddress!,
                                                                dK: g.baseAddress! + D, dV: g.baseAddress! + 2 * D,
                                                                gradStride: stride, scratch: $0.baseAddress!)
                            }
                        }
                        mat.withUnsafeMutableBufferPointer { g in
                            FlashAttentionTraining.materializedBackward(head, dO: db.baseAddress!, dOStride: D, dQ: g.baseAddress!,
                                                                        dK: g.baseAddress! + D, dV: g.baseAddress! + 2 * D,
                                                                        gradStride: stride)
                        }
                    }
                }
            }
        }
        for (part, name) in ["dQ", "dK", "dV"].enumerated() {
            var diff: Float = 0, scale: Float = 0
            for r in 0..<N {
                for d in 0..<D {
                    let i = r * stride + part * D + d
                    diff = max(diff, abs(flash[i] - mat[i])); scale = max(scale, abs(mat[i]))
                }
            }
            XCTAssertGreaterThan(scale, 0, name)
            XCTAssertLessThanOrEqual(diff, 1e-5 * scale, "\(name): flash vs materialised max |diff| \(diff), max \(scale)")
        }
        // Padded keys get exactly zero gradient.
        XCTAssertEqual(flash[(L + 1) * stride + D], 0)
        XCTAssertEqual(flash[(N - 1) * stride + 2 * D + 3], 0)
    }

    // MARK: Whole models

    func checkWholeModel(_ name: String) throws {
        let dir = Self.root.appendingPathComponent(name)
        let loaded = try HFExport.load(directory: dir)
        let model = loaded.model
        XCTAssertEqual(loaded.labels, ["neg", "neu", "pos"])
        let ref = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
        let ids = try ref.integers("input_ids"), lengths = try ref.integers("lengths"), labels = try ref.integers("labels")
        let T = ids.count / lengths.count
        let batch = EncoderBatch(tokens: ids, tokenTypes: [Int](repeating: 0, count: ids.count), lengths: lengths,
                                 labels: labels, length: T)
        let out = try model.forward(batch, training: true)
        let refLoss = try ref.tensor("loss").withUnsafeBufferPointer { Double($0[0]) }
        XCTAssertEqual(out.loss, refLoss, accuracy: 1e-5 * refLoss, "\(name): loss")
        model.backward(batch)
        let grads = model.namedGradients()
        var checked = 0
        for e in model.entries where e.trainable {
            let r = try ref.tensor("grad." + e.name)
            assertClose(array(grads[e.name]!), r, rel: 1e-4, abs: 1e-7, "\(name) grad \(e.name)")
            checked += 1
        }
        XCTAssertEqual(checked, ref.names.filter { $0.hasPrefix("grad.") }.count, "\(name): every gradient checked")
        // Frozen tables are absent from the reference gradients and untouched by the optimiser.
        // 3 AdamW steps: lr 0.02, weight decay 0.1 (matrices, embeddings), clip 0.5, warm-up 2 of 6 linear.
        var opt = AdamW(parameterCount: model.parameterCount, groups: model.optimizerGroups, weightDecay: 0.1)
        let schedule = LRSchedule(baseRate: 0.02, warmupSteps: 2, totalSteps: 6, decay: .linear)
        for step in 0..<3 {
            try model.forward(batch, training: true)
            model.backward(batch)
            let norm = opt.clipGradients(model.gradients, maxNorm: 0.5)
            XCTAssertGreaterThan(norm, 0.5, "clipping is exercised")
            opt.update(model.parameters, model.gradients, lr: schedule.rate(step: step))
        }
        let params = model.namedTensors()
        for e in model.entries {
            // The attention key bias has an analytically zero gradient (it adds a constant to each softmax row):
            // both sides hold rounding noise (float32 ~1e-9, float64 ~1e-18) that Adam normalises to steps of ~lr,
            // so it can only be checked to stay within the 3 steps' reach of the reference.
            let tol: Float = e.name.hasSuffix("attention.self.key.bias") ? 3 * 0.02 : 2e-5
            assertClose(array(params[e.name]!), try ref.tensor("step3." + e.name), rel: 0, abs: tol, "\(name) step3 \(e.name)")
        }
    }

    func testBertGradientsAndAdamWMatchPyTorch() throws { try checkWholeModel("bert") }
    func testSinusoidalBertGradientsAndAdamWMatchPyTorch() throws { try checkWholeModel("bert_sinusoidal") }
    func testRoFormerGradientsAndAdamWMatchPyTorch() throws { try checkWholeModel("roformer") }

    /// The schedule's factors are HF's `get_linear_schedule_with_warmup` / cosine ones (written out here).
    func testLRScheduleFactors() {
        let lin = LRSchedule(baseRate: 1, warmupSteps: 2, totalSteps: 6, decay: .linear)
        XCTAssertEqual((0..<7).map { lin.factor(step: $0) }, [0, 0.5, 1, 0.75, 0.5, 0.25, 0])
        let cos = LRSchedule(baseRate: 1, warmupSteps: 0, totalSteps: 4, decay: .cosine)
        XCTAssertEqual(cos.factor(step: 2), 0.5, accuracy: 1e-12)
        XCTAssertEqual(LRSchedule.warmup(ratio: 0.1, totalSteps: 25), 3)
    }

    /// Same seed and thread count → identical weights after training steps with dropout.
    func testSeededTrainingIsDeterministic() throws {
        func run() throws -> [Float] {
            var c = EncoderClassifierConfig(vocabSize: 30, hiddenSize: 16, layers: 2, heads: 2, intermediateSize: 24,
                                            maxPositions: 12, numLabels: 2, position: .rope, dropout: 0.2)
            c.layerNormEps = 1e-12
            let m = try EncoderClassifier(config: c)
            m.initialize(seed: 5)
            var opt = AdamW(parameterCount: m.parameterCount, groups: m.optimizerGroups, weightDecay: 0.01)
            let batch = EncoderBatch(sequences: [[2, 5, 6, 7, 3], [2, 9, 3], [2, 11, 12, 13, 14, 15, 3]], labels: [0, 1, 1])
            for s in 0..<3 {
                try m.forward(batch, training: true, dropoutSeed: UInt64(s))
                m.backward(batch)
                opt.clipGradients(m.gradients, maxNorm: 1)
                opt.update(m.parameters, m.gradients, lr: 1e-2)
            }
            return Array(UnsafeBufferPointer(start: m.parameters, count: m.parameterCount))
        }
        let a = try run(), b = try run()
        XCTAssertEqual(a, b)
    }

    // MARK: Checkpoints written by `train`, read by HF

    /// Folders written by `transformer-cli train` (rope → RoFormer, absolute → BERT): HF `AutoTokenizer` gives the
    /// same ids as the engine's tokenizer, and HF `AutoModelForSequenceClassification` the same logits within
    /// 1e-4·max|HF| + 1e-5.
    func testTrainedCheckpointsRoundTripThroughHF() throws {
        for kind in ["rope", "absolute"] {
            let dir = Self.root.appendingPathComponent("roundtrip").appendingPathComponent(kind)
            let ref = try SafeTensorsFile(url: dir.appendingPathComponent("reference.safetensors"))
            guard let textsJSON = ref.metadata["texts"],
                  let texts = try JSONSerialization.jsonObject(with: Data(textsJSON.utf8)) as? [String] else {
                XCTFail("reference has no texts"); return
            }
            let loaded = try HFExport.load(directory: dir)
            XCTAssertEqual(loaded.model.config.position, kind == "rope" ? .rope : .absolute)
            XCTAssertEqual(Set(loaded.labels), ["fresh", "rotten"])
            let (tok, maxLength) = try WordLevelTokenizer.load(directory: dir)
            XCTAssertEqual(maxLength, 16)
            for (i, t) in texts.enumerated() {
                let ids = tok.encode(t, maxLength: maxLength ?? 16)
                XCTAssertEqual(ids, try ref.integers("ids.\(i)"), "\(kind): ids of \(t)")
                let out = try loaded.model.forward(EncoderBatch(sequences: [ids], labels: []))
                assertClose(out.logits, try ref.tensor("logits.\(i)"), rel: 1e-4, abs: 1e-5, "\(kind): logits of \(t)")
            }
        }
    }

    // MARK: Data

    /// `classify` reads the trainer's WordLevel folders and HF BERT's WordPiece ones. WordPiece truncation against
    /// HF: `[CLS]` + the first maxLength − 2 pieces + `[SEP]` of the Rust tokenizer's ids (the wordpiece_cased
    /// corpus, `scripts/fixtures/families.py`); WordLevel exactly as the trainer encodes.
    func testClassificationTokenizersReadWordPieceAndWordLevel() throws {
        struct Case: Decodable { let text: String; let ids: [Int] }
        let wordpiece = Self.root.deletingLastPathComponent().appendingPathComponent("families/wordpiece_cased")
        let (tokenizer, _) = try ClassificationTokenizers.load(directory: wordpiece)
        XCTAssertTrue(tokenizer is WordPieceTokenizer)
        let corpus = try JSONDecoder().decode([Case].self, from: Data(contentsOf: wordpiece.appendingPathComponent("corpus.json")))
        for c in corpus {
            for maxLength in [3, 5, 64] {
                let inner = Array(c.ids.dropFirst().dropLast())
                let expected = [c.ids.first!] + inner.prefix(maxLength - 2) + [c.ids.last!]
                XCTAssertEqual(tokenizer.encode(c.text, maxLength: maxLength), expected, "\(c.text.debugDescription), max \(maxLength)")
            }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wordlevel-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let words = try WordLevelTokenizer.build(from: ["the cat sat", "the dog sat down"], minFrequency: 1)
        try words.save(to: dir, maxLength: 6)
        let (loaded, maxLength) = try ClassificationTokenizers.load(directory: dir)
        XCTAssertEqual(maxLength, 6)
        for text in ["the cat sat down on the mat", "a dog"] {
            XCTAssertEqual(loaded.encode(text, maxLength: 6), words.encode(text, maxLength: 6), text)
        }
    }

    func testCSVQuotingAndJSONL() throws {
        let csv = "id,text,label\r\n1,\"hello, \"\"world\"\"\",pos\n2,\"two\nlines\",neg\n3,plain,pos\n"
        let recs = try ClassificationData.csvRecords(csv)
        XCTAssertEqual(recs, [["id", "text", "label"], ["1", "hello, \"world\"", "pos"], ["2", "two\nlines", "neg"], ["3", "plain", "pos"]])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("training-data-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = dir.appendingPathComponent("d.csv"), j = dir.appendingPathComponent("d.jsonl")
        try csv.write(to: c, atomically: true, encoding: .utf8)
        try "{\"text\": \"a\", \"label\": 1}\n\n{\"text\": \"b\", \"label\": \"x\"}\n".write(to: j, atomically: true, encoding: .utf8)
        XCTAssertEqual(try ClassificationData.load(c, requireLabels: true).map(\.label), ["pos", "neg", "pos"])
        XCTAssertEqual(try ClassificationData.load(j, requireLabels: true),
                       [ClassificationExample(text: "a", label: "1"), ClassificationExample(text: "b", label: "x")])
        // Bad input is a thrown error naming the problem.
        try "text,label\n\"open,pos\n".write(to: c, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ClassificationData.load(c, requireLabels: true))
        try "words,label\nx,y\n".write(to: c, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ClassificationData.load(c, requireLabels: true)) { XCTAssertTrue("\($0)".contains("text")) }
        try "{\"text\": 3}\n".write(to: j, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ClassificationData.load(j, requireLabels: false))
    }

    /// Stopping after epoch 1, saving, and resuming from the folder (weights, AdamW moments, step) gives bit-identical
    /// weights to training both epochs in one go.
    func testResumeEqualsUninterruptedTraining() throws {
        var texts: [ClassificationExample] = []
        var rng = SeededGenerator(seed: 11)
        let words = ["good", "bad", "film", "plot", "very", "the", "a", "fine", "dull", "!"]
        for i in 0..<40 {
            let t = (0..<(3 + i % 5)).map { _ in words[Int(rng.next() % UInt64(words.count))] }.joined(separator: " ")
            texts.append(ClassificationExample(text: t, label: t.contains("good") ? "pos" : "neg"))
        }
        let tok = try WordLevelTokenizer.build(from: texts.map(\.text), minFrequency: 1)
        let labels = ["neg", "pos"]
        let data = try ClassifierTrainer.encode(texts, tokenizer: tok, labels: labels, maxLength: 12)
        var options = ClassifierTrainer.Options(epochs: 2, batchSize: 8, learningRate: 3e-3, maxLength: 12)
        options.seed = 9
        func fresh() throws -> EncoderClassifier {
            let m = try EncoderClassifier(config: EncoderClassifierConfig(vocabSize: tok.count, hiddenSize: 16, layers: 1, heads: 2,
                                                                          intermediateSize: 24, maxPositions: 12, numLabels: 2,
                                                                          position: .rope, dropout: 0.1))
            m.initialize(seed: 9)
            return m
        }
        let straight = try ClassifierTrainer(model: try fresh(), tokenizer: tok, labels: labels, train: data, options: options)
        try straight.runEpoch(); try straight.runEpoch()

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("training-resume-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try ClassifierTrainer(model: try fresh(), tokenizer: tok, labels: labels, train: data, options: options)
        try first.runEpoch()
        try first.save(to: dir)
        let loaded = try HFExport.load(directory: dir)
        let resumed = try ClassifierTrainer(model: loaded.model, tokenizer: try WordLevelTokenizer.load(directory: dir).tokenizer,
                                            labels: loaded.labels, train: data, options: options)
        try resumed.restoreState(from: dir)
        XCTAssertEqual(resumed.epochsDone, 1)
        try resumed.runEpoch()
        XCTAssertEqual(Array(UnsafeBufferPointer(start: resumed.model.parameters, count: resumed.model.parameterCount)),
                       Array(UnsafeBufferPointer(start: straight.model.parameters, count: straight.model.parameterCount)))
    }
}
