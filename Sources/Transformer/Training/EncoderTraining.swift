import Foundation

// Training of small encoder classifiers (BERT / RoFormer shaped) with explicit per-layer forward and backward
// functions over one flat parameter arena, in the manner of karpathy/llm.c `train_gpt2.c`: no autograd tape. Each
// forward function saves exactly what its backward needs (LayerNorm mean and 1/σ, GELU input, dropout masks,
// attention output and log-sum-exp); the backward functions run in reverse order and accumulate into a gradient
// arena with the same layout as the parameters, so the optimiser (``AdamW``) is one loop over ranges.

/// How token positions enter the model.
public enum PositionEncoding: String, CaseIterable, Sendable, Codable {
    /// Rotary position embedding in every attention layer (RoFormer; HF `RoFormerForSequenceClassification`).
    case rope
    /// Learned absolute position embeddings added to the token embeddings (BERT).
    case absolute
    /// Fixed sinusoidal positions (Vaswani et al. 2017) added to the token embeddings; saved as a frozen BERT
    /// `position_embeddings` table. The table is scaled to RMS 0.02, the RMS of the token embeddings at
    /// initialisation — the relative scale of Vaswani et al. (token embeddings × √d, std 1, plus sinusoids of RMS
    /// 1/√2). Unscaled sinusoids (RMS 0.71) against BERT's 0.02-std token embeddings drown the tokens: one such run
    /// reached 58 % test accuracy where every other scheme reached ~75 %.
    case sinusoidal
    /// No position information (a bag of words with attention); saved as an all-zero frozen BERT table.
    case none
}

/// Shape of an ``EncoderClassifier``.
public struct EncoderClassifierConfig: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    /// Longest input, [CLS] and [SEP] included (`max_position_embeddings`).
    public var maxPositions: Int
    public var numLabels: Int
    public var position: PositionEncoding
    public var typeVocabSize: Int = 2
    public var layerNormEps: Float = 1e-12
    /// Hidden dropout probability (embeddings, after each attention and feed-forward output, classifier head).
    /// Attention-probability dropout is not implemented (always 0, and written as 0 in the HF config).
    public var dropout: Float = 0.1

    public init(vocabSize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int, maxPositions: Int,
                numLabels: Int, position: PositionEncoding, dropout: Float = 0.1) {
        (self.vocabSize, self.hiddenSize, self.layers, self.heads, self.intermediateSize) =
            (vocabSize, hiddenSize, layers, heads, intermediateSize)
        (self.maxPositions, self.numLabels, self.position, self.dropout) = (maxPositions, numLabels, position, dropout)
    }

    public var headDim: Int { hiddenSize / heads }
    /// HF weight-name prefix: `roformer` for rotary, `bert` otherwise.
    public var prefix: String { position == .rope ? "roformer" : "bert" }

    /// Throws on shapes the model cannot have.
    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw TrainingError.invalidConfig(message) } }
        try check(vocabSize >= 5, "vocabulary size must be at least 5 (4 special tokens + 1), got \(vocabSize)")
        try check(hiddenSize > 0 && layers > 0 && heads > 0 && intermediateSize > 0, "hidden, layers, heads and intermediate must be positive")
        try check(hiddenSize % heads == 0, "heads (\(heads)) must divide hidden (\(hiddenSize))")
        try check(position != .rope || headDim % 2 == 0, "rotary embeddings need an even head dimension, got \(headDim)")
        try check(maxPositions >= 3, "max length must be at least 3 ([CLS] token [SEP]), got \(maxPositions)")
        try check(numLabels >= 2, "need at least 2 labels, got \(numLabels)")
        try check(dropout >= 0 && dropout < 1, "dropout must be in [0, 1), got \(dropout)")
    }
}

/// Errors of training, data loading and checkpoint I/O; each names the problem.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    case invalidConfig(String)
    case invalidData(String)
    case io(String)
    case invalidCheckpoint(String)

    public var description: String {
        switch self {
        case .invalidConfig(let s): return "invalid training configuration: \(s)"
        case .invalidData(let s): return "invalid data: \(s)"
        case .io(let s): return "I/O error: \(s)"
        case .invalidCheckpoint(let s): return "invalid checkpoint: \(s)"
        }
    }
}

/// A padded batch: `batch` sequences of `length` tokens (row-major), the unpadded length of each, and labels.
public struct EncoderBatch: Sendable {
    public var tokens: [Int]
    public var tokenTypes: [Int]
    public var lengths: [Int]
    public var labels: [Int]
    public var length: Int
    public var batch: Int { lengths.count }

    /// Pads `sequences` (already with [CLS] … [SEP]) to the longest one with `padID`.
    public init(sequences: [[Int]], labels: [Int], padID: Int = 0) {
        let T = sequences.map(\.count).max() ?? 0
        length = T
        lengths = sequences.map(\.count)
        self.labels = labels
        tokens = []
        tokens.reserveCapacity(T * sequences.count)
        for s in sequences { tokens += s + [Int](repeating: padID, count: T - s.count) }
        tokenTypes = [Int](repeating: 0, count: tokens.count)
    }

    public init(tokens: [Int], tokenTypes: [Int], lengths: [Int], labels: [Int], length: Int) {
        (self.tokens, self.tokenTypes, self.lengths, self.labels, self.length) = (tokens, tokenTypes, lengths, labels, length)
    }
}

/// A growable 64-byte-aligned float buffer (contents undefined after growth).
final class FloatBuffer {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int
    init(_ count: Int = 0) {
        capacity = max(count, 1)
        pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64).bindMemory(to: Float.self, capacity: capacity)
    }
    /// At least `count` floats; returns the pointer.
    @discardableResult func ensure(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            UnsafeMutableRawPointer(pointer).deallocate()
            capacity = count
            pointer = UnsafeMutableRawPointer.allocate(byteCount: capacity * 4, alignment: 64).bindMemory(to: Float.self, capacity: capacity)
        }
        return pointer
    }
    deinit { UnsafeMutableRawPointer(pointer).deallocate() }
}

/// An encoder with a sequence-classification head whose parameters live in one arena, trainable by
/// ``forward(_:training:dropoutSeed:)`` + ``backward(_:)`` + ``AdamW``.
///
///     x = Dropout(LayerNorm(word[ids] + type[types] (+ position[t] unless rope)))
///     per layer (post-LN):  qkv = x·Wᵀ (+ RoPE on q, k);  a = FlashAttention(q, k, v; key padding)
///                           h = LayerNorm(x + Dropout(a·Woᵀ));  x = LayerNorm(h + Dropout(GELU(h·W1ᵀ)·W2ᵀ))
///     BERT head:      logits = Dropout(tanh(x[CLS]·Wpᵀ))·Wcᵀ                (pooler + classifier)
///     RoFormer head:  logits = Dropout(GELU(Dropout(x[CLS])·Wdᵀ))·Woutᵀ     (classifier.dense / out_proj)
///     loss = mean cross-entropy over the batch
///
/// Parameters carry HF names (``ParameterEntry``); q, k and v of a layer are adjacent in the arena so the
/// three projections run as one GEMM. Padded query rows are computed (as HF does) but receive no gradient.
public final class EncoderClassifier: @unchecked Sendable {
    /// One named tensor in the arena.
    public struct ParameterEntry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
        /// Weight decay applies (matrices and embeddings; not biases or LayerNorm).
        public let decay: Bool
        /// Updated by the optimiser (the frozen sinusoidal / zero position table is not).
        public let trainable: Bool
    }

    struct LayerOffsets {
        var qkvW = 0, qkvB = 0, oW = 0, oB = 0, ln1W = 0, ln1B = 0, fc1W = 0, fc1B = 0, fc2W = 0, fc2B = 0, ln2W = 0, ln2B = 0
    }

    public let config: EncoderClassifierConfig
    public private(set) var entries: [ParameterEntry] = []
    public let parameterCount: Int
    /// Parameters and their gradients (same layout).
    public let parameters: UnsafeMutablePointer<Float>
    public let gradients: UnsafeMutablePointer<Float>

    var wordOffset = 0, typeOffset = 0, positionOffset: Int? = nil, embLNW = 0, embLNB = 0
    var layerOffsets: [LayerOffsets] = []
    var headDenseW = 0, headDenseB = 0, headOutW = 0, headOutB = 0
    let ropeCos: [Float], ropeSin: [Float]

    // MARK: Construction

    /// A model with every parameter zero (fill with ``initialize(seed:)`` or ``load(_:)``).
    public init(config: EncoderClassifierConfig) throws {
        try config.validate()
        self.config = config
        let (H, I, V, P, C) = (config.hiddenSize, config.intermediateSize, config.vocabSize, config.maxPositions, config.numLabels)
        var entries: [ParameterEntry] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], decay: Bool, trainable: Bool = true) -> Int {
            let o = offset
            entries.append(ParameterEntry(name: name, shape: shape, offset: o, decay: decay, trainable: trainable))
            offset += shape.reduce(1, *)
            return o
        }
        let p = config.prefix
        wordOffset = add("\(p).embeddings.word_embeddings.weight", [V, H], decay: true)
        if config.position != .rope {
            positionOffset = add("\(p).embeddings.position_embeddings.weight", [P, H], decay: true,
                                 trainable: config.position == .absolute)
        }
        typeOffset = add("\(p).embeddings.token_type_embeddings.weight", [config.typeVocabSize, H], decay: true)
        embLNW = add("\(p).embeddings.LayerNorm.weight", [H], decay: false)
        embLNB = add("\(p).embeddings.LayerNorm.bias", [H], decay: false)
        for i in 0..<config.layers {
            let l = "\(p).encoder.layer.\(i)"
            var o = LayerOffsets()
            o.qkvW = add("\(l).attention.self.query.weight", [H, H], decay: true)
            _ = add("\(l).attention.self.key.weight", [H, H], decay: true)
            _ = add("\(l).attention.self.value.weight", [H, H], decay: true)
            o.qkvB = add("\(l).attention.self.query.bias", [H], decay: false)
            _ = add("\(l).attention.self.key.bias", [H], decay: false)
            _ = add("\(l).attention.self.value.bias", [H], decay: false)
            o.oW = add("\(l).attention.output.dense.weight", [H, H], decay: true)
            o.oB = add("\(l).attention.output.dense.bias", [H], decay: false)
            o.ln1W = add("\(l).attention.output.LayerNorm.weight", [H], decay: false)
            o.ln1B = add("\(l).attention.output.LayerNorm.bias", [H], decay: false)
            o.fc1W = add("\(l).intermediate.dense.weight", [I, H], decay: true)
            o.fc1B = add("\(l).intermediate.dense.bias", [I], decay: false)
            o.fc2W = add("\(l).output.dense.weight", [H, I], decay: true)
            o.fc2B = add("\(l).output.dense.bias", [H], decay: false)
            o.ln2W = add("\(l).output.LayerNorm.weight", [H], decay: false)
            o.ln2B = add("\(l).output.LayerNorm.bias", [H], decay: false)
            layerOffsets.append(o)
        }
        if config.position == .rope {
            headDenseW = add("classifier.dense.weight", [H, H], decay: true)
            headDenseB = add("classifier.dense.bias", [H], decay: false)
            headOutW = add("classifier.out_proj.weight", [C, H], decay: true)
            headOutB = add("classifier.out_proj.bias", [C], decay: false)
        } else {
            headDenseW = add("\(p).pooler.dense.weight", [H, H], decay: true)
            headDenseB = add("\(p).pooler.dense.bias", [H], decay: false)
            headOutW = add("classifier.weight", [C, H], decay: true)
            headOutB = add("classifier.bias", [C], decay: false)
        }
        self.entries = entries
        parameterCount = offset
        parameters = .allocate(capacity: offset)
        parameters.initialize(repeating: 0, count: offset)
        gradients = .allocate(capacity: offset)
        gradients.initialize(repeating: 0, count: offset)
        // Rotary tables (HF RoFormer: θᵢ = 10000^(−2i/D), interleaved pairs (2i, 2i+1)).
        let D = config.headDim
        var cs = [Float](), sn = [Float]()
        if config.position == .rope {
            cs.reserveCapacity(P * D / 2); sn.reserveCapacity(P * D / 2)
            for t in 0..<P {
                for i in 0..<(D / 2) {
                    let angle = Double(t) * Foundation.pow(10_000, -2 * Double(i) / Double(D))
                    cs.append(Float(Foundation.cos(angle))); sn.append(Float(Foundation.sin(angle)))
                }
            }
        }
        (ropeCos, ropeSin) = (cs, sn)
    }

    deinit {
        parameters.deallocate()
        gradients.deallocate()
    }

    /// The entry called `name`.
    public func entry(_ name: String) -> ParameterEntry? { entries.first { $0.name == name } }

    /// Optimiser groups: the trainable ranges with their decay flag.
    public var optimizerGroups: [AdamW.Group] {
        entries.filter(\.trainable).map { AdamW.Group(offset: $0.offset, count: $0.count, decay: $0.decay) }
    }

    /// HF-style initialisation: matrices and embeddings N(0, 0.02), biases 0, LayerNorm weight 1; the [PAD] row
    /// (id 0) of the word embeddings 0; a fixed position table (sinusoidal or zeros) for those encodings.
    public func initialize(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for e in entries {
            let p = parameters + e.offset
            if e.name.hasSuffix("LayerNorm.weight") {
                p.update(repeating: 1, count: e.count)
            } else if e.name.hasSuffix(".bias") {
                p.update(repeating: 0, count: e.count)
            } else {
                for i in 0..<e.count { p[i] = 0.02 * rng.nextNormal() }
            }
        }
        (parameters + wordOffset).update(repeating: 0, count: config.hiddenSize)  // padding_idx = 0
        if let po = positionOffset, config.position != .absolute {
            EncoderClassifier.fixedPositionTable(config.position, positions: config.maxPositions, hidden: config.hiddenSize,
                                                 into: parameters + po)
        }
    }

    /// Scale of the sinusoidal table: 0.02·√2, so its RMS (sin and cos average 1/2 in square) is 0.02.
    public static let sinusoidalScale: Double = 0.02 * 2.0.squareRoot()

    /// Sinusoidal (`PE[t, 2i] = s·sin(t / 10000^(2i/H))`, `PE[t, 2i+1] = s·cos(…)`, s = ``sinusoidalScale``) or
    /// all-zero table `[positions, hidden]`.
    public static func fixedPositionTable(_ kind: PositionEncoding, positions: Int, hidden: Int, into p: UnsafeMutablePointer<Float>) {
        for t in 0..<positions {
            for j in 0..<hidden {
                if kind == .sinusoidal {
                    let angle = Double(t) / Foundation.pow(10_000, Double(2 * (j / 2)) / Double(hidden))
                    p[t * hidden + j] = Float(sinusoidalScale * (j % 2 == 0 ? Foundation.sin(angle) : Foundation.cos(angle)))
                } else {
                    p[t * hidden + j] = 0
                }
            }
        }
    }

    /// Copies of every tensor by HF name.
    public func namedTensors() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for e in entries {
            out[e.name] = Tensor(shape: e.shape, values: Array(UnsafeBufferPointer(start: parameters + e.offset, count: e.count)))
        }
        return out
    }

    /// The gradient of every tensor by HF name (after ``backward(_:)``).
    public func namedGradients() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for e in entries {
            out[e.name] = Tensor(shape: e.shape, values: Array(UnsafeBufferPointer(start: gradients + e.offset, count: e.count)))
        }
        return out
    }

    /// Fills the arena from HF-named weights (`source` must have every entry with its shape; the frozen position
    /// table may be absent, then it is recomputed).
    public func load(_ source: (String) throws -> Tensor?) throws {
        for e in entries {
            guard let t = try source(e.name) else {
                if !e.trainable, let po = positionOffset {
                    EncoderClassifier.fixedPositionTable(config.position, positions: config.maxPositions,
                                                         hidden: config.hiddenSize, into: parameters + po)
                    continue
                }
                throw TrainingError.invalidCheckpoint("missing tensor \(e.name)")
            }
            guard t.shape == e.shape else {
                throw TrainingError.invalidCheckpoint("\(e.name) has shape \(t.shape), expected \(e.shape)")
            }
            t.withUnsafeBufferPointer { (parameters + e.offset).update(from: $0.baseAddress!, count: e.count) }
        }
    }

    // MARK: Saved activations

    struct LayerActivations {
        let qkv = FloatBuffer(), ctx = FloatBuffer(), lse = FloatBuffer(), mask1 = FloatBuffer(), res1 = FloatBuffer()
        let mean1 = FloatBuffer(), rstd1 = FloatBuffer(), h1 = FloatBuffer(), u = FloatBuffer(), g = FloatBuffer()
        let mask2 = FloatBuffer(), res2 = FloatBuffer(), mean2 = FloatBuffer(), rstd2 = FloatBuffer(), out = FloatBuffer()
    }

    lazy var acts: [LayerActivations] = (0..<config.layers).map { _ in LayerActivations() }
    let embIn = FloatBuffer(), embMean = FloatBuffer(), embRstd = FloatBuffer(), embMask = FloatBuffer(), x0 = FloatBuffer()
    let cls = FloatBuffer(), headMask0 = FloatBuffer(), headIn = FloatBuffer(), headZ = FloatBuffer(), headA = FloatBuffer()
    let headMask1 = FloatBuffer(), headADrop = FloatBuffer(), logitsBuf = FloatBuffer(), dLogits = FloatBuffer()
    // Backward scratch.
    let dA = FloatBuffer(), dB = FloatBuffer(), dI = FloatBuffer(), dQKV = FloatBuffer(), dCtx = FloatBuffer()
    let ones = FloatBuffer(), attnScratch = FloatBuffer(), lnScratch = FloatBuffer(), dHead = FloatBuffer()
    var dropoutActive = false

    /// Result of a forward pass.
    public struct Output: Sendable {
        /// `[batch, numLabels]`, row-major.
        public var logits: [Float]
        /// Mean cross-entropy (0 when the batch has no labels).
        public var loss: Double
        /// Predictions equal to the label.
        public var correct: Int
    }

    // MARK: Forward

    /// Runs the model on `batch`. With `training`, hidden dropout is sampled from `dropoutSeed` and the activations
    /// needed by ``backward(_:)`` are kept. Labels (when `batch.labels` is not empty) give the loss.
    @discardableResult
    public func forward(_ batch: EncoderBatch, training: Bool = false, dropoutSeed: UInt64 = 0) throws -> Output {
        let (B, T, H, I, C) = (batch.batch, batch.length, config.hiddenSize, config.intermediateSize, config.numLabels)
        guard B > 0, T > 0 else { throw TrainingError.invalidData("empty batch") }
        guard T <= config.maxPositions else {
            throw TrainingError.invalidData("sequence length \(T) exceeds max positions \(config.maxPositions)")
        }
        guard batch.tokens.count == B * T, batch.tokenTypes.count == B * T else {
            throw TrainingError.invalidData("batch tokens \(batch.tokens.count) ≠ batch × length \(B * T)")
        }
        for l in batch.lengths where l < 1 || l > T { throw TrainingError.invalidData("sequence length \(l) outside 1...\(T)") }
        for t in batch.tokens where t < 0 || t >= config.vocabSize {
            throw TrainingError.invalidData("token id \(t) outside the vocabulary (\(config.vocabSize))")
        }
        for t in batch.tokenTypes where t < 0 || t >= config.typeVocabSize {
            throw TrainingError.invalidData("token type \(t) outside 0..<\(config.typeVocabSize)")
        }
        for y in batch.labels where y < 0 || y >= C { throw TrainingError.invalidData("label \(y) outside 0..<\(C)") }
        let N = B * T
        let p = config.dropout
        dropoutActive = training && p > 0
        var rng = SeededGenerator(seed: dropoutSeed &* 0x9E37_79B9_7F4A_7C15 &+ 0x1234_5678)
        func makeMask(_ buf: FloatBuffer, _ count: Int) {
            guard dropoutActive else { return }
            let m = buf.ensure(count), keep = 1 / (1 - p)
            for i in 0..<count { m[i] = rng.nextUniform() < p ? 0 : keep }
        }
        func applyMask(_ buf: FloatBuffer, _ x: UnsafeMutablePointer<Float>, _ count: Int) {
            guard dropoutActive else { return }
            let m = buf.pointer
            for i in 0..<count { x[i] *= m[i] }
        }

        // Embeddings.
        let e = embIn.ensure(N * H)
        for b in 0..<B {
            for t in 0..<T {
                let r = b * T + t, dst = e + r * H
                let w = parameters + wordOffset + batch.tokens[r] * H
                let ty = parameters + typeOffset + batch.tokenTypes[r] * H
                if let po = positionOffset {
                    let ps = parameters + po + t * H
                    for j in 0..<H { dst[j] = w[j] + ps[j] + ty[j] }
                } else {
                    for j in 0..<H { dst[j] = w[j] + ty[j] }
                }
            }
        }
        var x = x0.ensure(N * H)
        layerNormForward(e, x, embMean.ensure(N), embRstd.ensure(N), parameters + embLNW, parameters + embLNB, rows: N, width: H)
        makeMask(embMask, N * H); applyMask(embMask, x, N * H)

        let heads = config.heads, D = config.headDim, scale = 1 / Float(D).squareRoot()
        let workers = min(Threading.workers, B * heads)
        let scratchPer = FlashAttentionTraining.scratchFloats(queries: T)
        let scratch = attnScratch.ensure(workers * scratchPer)
        for (li, o) in layerOffsets.enumerated() {
            let a = acts[li]
            let qkv = a.qkv.ensure(N * 3 * H)
            linearForward(x, rows: N, inF: H, weight: parameters + o.qkvW, bias: parameters + o.qkvB, out: qkv, outF: 3 * H)
            if config.position == .rope { applyRope(qkv, rows: N, seq: T, stride: 3 * H, sign: 1, both: true) }
            let ctx = a.ctx.ensure(N * H), lse = a.lse.ensure(B * heads * T)
            parallelFor(B * heads) { (w: Int, u: Int) in
                let (b, h) = (u / heads, u % heads)
                let base = qkv + b * T * 3 * H + h * D
                let head = FlashAttentionTraining.Head(
                    q: base, k: base + H, v: base + 2 * H, qkvStride: 3 * H, o: ctx + b * T * H + h * D, oStride: H,
                    lse: lse + u * T, queries: T, keyLength: batch.lengths[b], headDim: D, scale: scale)
                FlashAttentionTraining.forward(head, scratch: scratch + w * scratchPer)
            }
            let res1 = a.res1.ensure(N * H)
            linearForward(ctx, rows: N, inF: H, weight: parameters + o.oW, bias: parameters + o.oB, out: res1, outF: H)
            makeMask(a.mask1, N * H); applyMask(a.mask1, res1, N * H)
            for i in 0..<(N * H) { res1[i] += x[i] }
            let h1 = a.h1.ensure(N * H)
            layerNormForward(res1, h1, a.mean1.ensure(N), a.rstd1.ensure(N), parameters + o.ln1W, parameters + o.ln1B, rows: N, width: H)
            let u = a.u.ensure(N * I), g = a.g.ensure(N * I)
            linearForward(h1, rows: N, inF: H, weight: parameters + o.fc1W, bias: parameters + o.fc1B, out: u, outF: I)
            geluForward(u, g, count: N * I)
            let res2 = a.res2.ensure(N * H)
            linearForward(g, rows: N, inF: I, weight: parameters + o.fc2W, bias: parameters + o.fc2B, out: res2, outF: H)
            makeMask(a.mask2, N * H); applyMask(a.mask2, res2, N * H)
            for i in 0..<(N * H) { res2[i] += h1[i] }
            let out = a.out.ensure(N * H)
            layerNormForward(res2, out, a.mean2.ensure(N), a.rstd2.ensure(N), parameters + o.ln2W, parameters + o.ln2B, rows: N, width: H)
            x = out
        }

        // Head on the [CLS] rows.
        let c = cls.ensure(B * H)
        for b in 0..<B { (c + b * H).update(from: x + b * T * H, count: H) }
        let hin = headIn.ensure(B * H)
        hin.update(from: c, count: B * H)
        let rope = config.position == .rope
        if rope { makeMask(headMask0, B * H); applyMask(headMask0, hin, B * H) }
        let z = headZ.ensure(B * H), act = headA.ensure(B * H)
        linearForward(hin, rows: B, inF: H, weight: parameters + headDenseW, bias: parameters + headDenseB, out: z, outF: H)
        if rope { geluForward(z, act, count: B * H) } else { for i in 0..<(B * H) { act[i] = Foundation.tanh(z[i]) } }
        let ad = headADrop.ensure(B * H)
        ad.update(from: act, count: B * H)
        makeMask(headMask1, B * H); applyMask(headMask1, ad, B * H)
        let logits = logitsBuf.ensure(B * C)
        linearForward(ad, rows: B, inF: H, weight: parameters + headOutW, bias: parameters + headOutB, out: logits, outF: C)

        // Softmax cross-entropy (its gradient is kept for the backward).
        var loss: Double = 0, correct = 0
        if !batch.labels.isEmpty {
            (loss, correct) = EncoderClassifier.softmaxCrossEntropy(logits, labels: batch.labels, classes: C,
                                                                    dLogits: dLogits.ensure(B * C))
        }
        return Output(logits: Array(UnsafeBufferPointer(start: logits, count: B * C)), loss: loss, correct: correct)
    }

    // MARK: Backward

    /// Gradients of the mean cross-entropy of the last ``forward(_:training:dropoutSeed:)`` (which must have been
    /// called on the same `batch` with labels), written to ``gradients`` (overwritten).
    public func backward(_ batch: EncoderBatch) {
        let (B, T, H, I, C) = (batch.batch, batch.length, config.hiddenSize, config.intermediateSize, config.numLabels)
        precondition(batch.labels.count == B, "backward needs a labelled batch")
        let N = B * T
        gradients.update(repeating: 0, count: parameterCount)
        let one = ones.ensure(max(N, 1))
        one.update(repeating: 1, count: N)
        func maskBackward(_ buf: FloatBuffer, _ d: UnsafeMutablePointer<Float>, _ count: Int) {
            guard dropoutActive else { return }
            let m = buf.pointer
            for i in 0..<count { d[i] *= m[i] }
        }

        // Loss → logits (computed by the forward).
        let dl = dHead.ensure(B * C + 3 * B * H)
        dl.update(from: dLogits.pointer, count: B * C)
        let dAct = dl + B * C, dZ = dAct + B * H, dIn = dZ + B * H
        linearBackward(dl, rows: B, outF: C, x: headADrop.pointer, inF: H, weight: parameters + headOutW,
                       dx: dAct, dW: gradients + headOutW, db: gradients + headOutB)
        maskBackward(headMask1, dAct, B * H)
        let z = headZ.pointer, act = headA.pointer
        if config.position == .rope {
            geluBackward(z, dAct, dZ, count: B * H)
        } else {
            for i in 0..<(B * H) { dZ[i] = dAct[i] * (1 - act[i] * act[i]) }
        }
        linearBackward(dZ, rows: B, outF: H, x: headIn.pointer, inF: H, weight: parameters + headDenseW,
                       dx: dIn, dW: gradients + headDenseW, db: gradients + headDenseB)
        if config.position == .rope { maskBackward(headMask0, dIn, B * H) }

        // dOut: zero except the [CLS] rows.
        let dOut = dA.ensure(N * H)
        let dRes = dB.ensure(N * H)
        dOut.update(repeating: 0, count: N * H)
        for b in 0..<B { (dOut + b * T * H).update(from: dIn + b * H, count: H) }

        let heads = config.heads, D = config.headDim, scale = 1 / Float(D).squareRoot()
        let workers = min(Threading.workers, B * heads)
        let scratchPer = FlashAttentionTraining.scratchFloats(queries: T)
        let scratch = attnScratch.ensure(workers * scratchPer)
        let dIbuf = dI.ensure(N * I), dqkv = dQKV.ensure(N * 3 * H), dctx = dCtx.ensure(N * H)
        for li in stride(from: config.layers - 1, through: 0, by: -1) {
            let o = layerOffsets[li], a = acts[li]
            let x = li == 0 ? x0.pointer : acts[li - 1].out.pointer
            // out = LN2(res2)
            layerNormBackward(dOut, dRes, a.res2.pointer, a.mean2.pointer, a.rstd2.pointer, parameters + o.ln2W,
                              dW: gradients + o.ln2W, db: gradients + o.ln2B, rows: N, width: H)
            // res2 = h1 + drop(fc2(g)): dh1 = dRes (residual) + fc1 path below; dfc2 = drop'(dRes)
            let dh1 = dOut  // reuse: dOut is consumed
            dh1.update(from: dRes, count: N * H)
            maskBackward(a.mask2, dRes, N * H)
            linearBackward(dRes, rows: N, outF: H, x: a.g.pointer, inF: I, weight: parameters + o.fc2W,
                           dx: dIbuf, dW: gradients + o.fc2W, db: gradients + o.fc2B)
            geluBackward(a.u.pointer, dIbuf, dIbuf, count: N * I)
            linearBackward(dIbuf, rows: N, outF: I, x: a.h1.pointer, inF: H, weight: parameters + o.fc1W,
                           dx: dh1, dW: gradients + o.fc1W, db: gradients + o.fc1B, accumulate: true)
            // h1 = LN1(res1)
            layerNormBackward(dh1, dRes, a.res1.pointer, a.mean1.pointer, a.rstd1.pointer, parameters + o.ln1W,
                              dW: gradients + o.ln1W, db: gradients + o.ln1B, rows: N, width: H)
            // res1 = x + drop(o(ctx)): dx = dRes + qkv path
            let dx = dOut
            dx.update(from: dRes, count: N * H)
            maskBackward(a.mask1, dRes, N * H)
            linearBackward(dRes, rows: N, outF: H, x: a.ctx.pointer, inF: H, weight: parameters + o.oW,
                           dx: dctx, dW: gradients + o.oW, db: gradients + o.oB)
            let qkv = a.qkv.pointer, ctx = a.ctx.pointer, lse = a.lse.pointer
            parallelFor(B * heads) { (w: Int, u: Int) in
                let (b, h) = (u / heads, u % heads)
                let base = qkv + b * T * 3 * H + h * D
                let head = FlashAttentionTraining.Head(
                    q: base, k: base + H, v: base + 2 * H, qkvStride: 3 * H, o: ctx + b * T * H + h * D, oStride: H,
                    lse: lse + u * T, queries: T, keyLength: batch.lengths[b], headDim: D, scale: scale)
                let g = dqkv + b * T * 3 * H + h * D
                FlashAttentionTraining.backward(head, dO: dctx + b * T * H + h * D, dOStride: H, dQ: g, dK: g + H,
                                                dV: g + 2 * H, gradStride: 3 * H, scratch: scratch + w * scratchPer)
            }
            if config.position == .rope { applyRope(dqkv, rows: N, seq: T, stride: 3 * H, sign: -1, both: true) }
            linearBackward(dqkv, rows: N, outF: 3 * H, x: x, inF: H, weight: parameters + o.qkvW,
                           dx: dx, dW: gradients + o.qkvW, db: gradients + o.qkvB, accumulate: true)
            // dOut now holds d(layer input): the next layer down's output gradient.
        }
        // dOut holds d(x0).
        maskBackward(embMask, dOut, N * H)
        layerNormBackward(dOut, dRes, embIn.pointer, embMean.pointer, embRstd.pointer, parameters + embLNW,
                          dW: gradients + embLNW, db: gradients + embLNB, rows: N, width: H)
        let trainPositions = config.position == .absolute
        for b in 0..<B {
            for t in 0..<T {
                let r = b * T + t, d = dRes + r * H
                let w = gradients + wordOffset + batch.tokens[r] * H
                let ty = gradients + typeOffset + batch.tokenTypes[r] * H
                for j in 0..<H { w[j] += d[j]; ty[j] += d[j] }
                if trainPositions, let po = positionOffset {
                    let ps = gradients + po + t * H
                    for j in 0..<H { ps[j] += d[j] }
                }
            }
        }
        // nn.Embedding(padding_idx = 0): the [PAD] row receives no gradient.
        (gradients + wordOffset).update(repeating: 0, count: H)
    }

    // MARK: Layer kernels

    /// Mean softmax cross-entropy of `labels.count` rows of `classes` logits (computed in Double); writes
    /// d loss / d logits = (softmax − onehot) / rows. Returns the loss and the number of correct argmax predictions.
    public static func softmaxCrossEntropy(_ logits: UnsafePointer<Float>, labels: [Int], classes C: Int,
                                           dLogits: UnsafeMutablePointer<Float>) -> (loss: Double, correct: Int) {
        let B = labels.count
        var loss: Double = 0, correct = 0
        for b in 0..<B {
            let row = logits + b * C
            var mx = row[0], arg = 0
            for j in 1..<C where row[j] > mx { (mx, arg) = (row[j], j) }
            var z: Double = 0
            for j in 0..<C { z += Foundation.exp(Double(row[j] - mx)) }
            let y = labels[b]
            for j in 0..<C {
                dLogits[b * C + j] = Float((Foundation.exp(Double(row[j] - mx)) / z - (j == y ? 1 : 0)) / Double(B))
            }
            loss += Foundation.log(z) - Double(row[y] - mx)
            if arg == y { correct += 1 }
        }
        return (loss / Double(max(B, 1)), correct)
    }

    /// `out[rows, outF] = x·Wᵀ + b`.
    func linearForward(_ x: UnsafePointer<Float>, rows: Int, inF: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                       out: UnsafeMutablePointer<Float>, outF: Int) {
        for r in 0..<rows { (out + r * outF).update(from: bias, count: outF) }
        GEMM.parallelSgemm(transA: false, transB: true, m: rows, n: outF, k: inF, a: x, lda: inF, b: weight, ldb: inF,
                           beta: 1, c: out, ldc: outF)
    }

    /// dx (= or +=) dy·W;  dW += dyᵀ·x;  db += Σ_rows dy.
    func linearBackward(_ dy: UnsafePointer<Float>, rows: Int, outF: Int, x: UnsafePointer<Float>, inF: Int,
                        weight: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, dW: UnsafeMutablePointer<Float>,
                        db: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        if let dx {
            GEMM.parallelSgemm(transA: false, transB: false, m: rows, n: inF, k: outF, a: dy, lda: outF, b: weight, ldb: inF,
                               beta: accumulate ? 1 : 0, c: dx, ldc: inF)
        }
        GEMM.parallelSgemm(transA: true, transB: false, m: outF, n: inF, k: rows, a: dy, lda: outF, b: x, ldb: inF,
                           beta: 1, c: dW, ldc: inF)
        GEMM.sgemm(transA: true, transB: false, m: outF, n: 1, k: rows, a: dy, lda: outF, b: ones.pointer, ldb: 1,
                   beta: 1, c: db, ldc: 1)
    }

    /// Row chunks for parallel row-wise kernels (fixed, so results do not depend on scheduling).
    func chunks(_ rows: Int) -> Int { min(rows, 32) }

    func layerNormForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                          _ rstd: UnsafeMutablePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                          rows: Int, width H: Int) {
        let eps = config.layerNormEps
        let n = chunks(rows)
        parallelFor(n) { c in
            for r in (c * rows / n)..<((c + 1) * rows / n) {
                let xr = x + r * H, yr = y + r * H
                var s: Float = 0
                for j in 0..<H { s += xr[j] }
                let m = s / Float(H)
                var v: Float = 0
                for j in 0..<H { let d = xr[j] - m; v += d * d }
                let rs = 1 / (v / Float(H) + eps).squareRoot()
                mean[r] = m; rstd[r] = rs
                for j in 0..<H { yr[j] = (xr[j] - m) * rs * w[j] + b[j] }
            }
        }
    }

    /// dx = LayerNorm′ · dy (overwrites dx); dW, db accumulate (summed per fixed chunk, then in chunk order).
    func layerNormBackward(_ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                           _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                           dW: UnsafeMutablePointer<Float>, db: UnsafeMutablePointer<Float>, rows: Int, width H: Int) {
        let n = chunks(rows)
        let partial = lnScratch.ensure(2 * n * H)
        parallelFor(n) { c in
            let pw = partial + c * 2 * H, pb = pw + H
            pw.update(repeating: 0, count: 2 * H)
            for r in (c * rows / n)..<((c + 1) * rows / n) {
                let xr = x + r * H, dyr = dy + r * H, dxr = dx + r * H
                let m = mean[r], rs = rstd[r]
                var meanDn: Float = 0, meanDnX: Float = 0
                for j in 0..<H {
                    let xhat = (xr[j] - m) * rs, dn = dyr[j] * w[j]
                    meanDn += dn; meanDnX += dn * xhat
                    pw[j] += dyr[j] * xhat; pb[j] += dyr[j]
                }
                meanDn /= Float(H); meanDnX /= Float(H)
                for j in 0..<H {
                    let xhat = (xr[j] - m) * rs
                    dxr[j] = (dyr[j] * w[j] - meanDn - xhat * meanDnX) * rs
                }
            }
        }
        for c in 0..<n {
            let pw = partial + c * 2 * H, pb = pw + H
            for j in 0..<H { dW[j] += pw[j]; db[j] += pb[j] }
        }
    }

    /// Φ(x) and φ(x) (the standard normal CDF and density) for 8 lanes. erf is Abramowitz & Stegun 7.1.26
    /// (|error| ≤ 1.5e-7), with e^(−x²/2) from the engine's vector exp shared by Φ and φ; libm's erff per element
    /// cost ~15 % of a training step.
    @inline(__always)
    static func normalCDFAndPDF(_ x: VectorMath.V) -> (cdf: VectorMath.V, pdf: VectorMath.V) {
        typealias V = VectorMath.V
        let ax = x.replacing(with: -x, where: x .< 0)
        let e = VectorMath.exp(-(x * x) * 0.5)  // e^(−z²) with z = |x|/√2
        let t = 1 / (1 + 0.3275911 * 0.707_106_78 * ax)
        var poly = V(repeating: 1.061405429)
        poly = poly * t - 1.453152027
        poly = poly * t + 1.421413741
        poly = poly * t - 0.284496736
        poly = poly * t + 0.254829592
        let erfAbs = 1 - poly * t * e
        let erf = erfAbs.replacing(with: -erfAbs, where: x .< 0)
        return (0.5 * (1 + erf), e * 0.398_942_28)
    }

    /// GELU (erf form), x·Φ(x).
    func geluForward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let vectors = (count + 7) / 8
        let n = chunks(vectors)
        parallelFor(n) { c in
            for v in (c * vectors / n)..<((c + 1) * vectors / n) {
                let i = v * 8
                if i + 8 <= count {
                    let xv = UnsafeRawPointer(x + i).loadUnaligned(as: VectorMath.V.self)
                    let r = xv * EncoderClassifier.normalCDFAndPDF(xv).cdf
                    UnsafeMutableRawPointer(y + i).storeBytes(of: r, as: VectorMath.V.self)
                } else {
                    for j in i..<count {
                        let xv = VectorMath.V(repeating: x[j])
                        y[j] = (xv * EncoderClassifier.normalCDFAndPDF(xv).cdf)[0]
                    }
                }
            }
        }
    }

    /// dx = dy · (Φ(x) + x·φ(x)); `dx` may alias `dy`.
    func geluBackward(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, _ dx: UnsafeMutablePointer<Float>, count: Int) {
        let vectors = (count + 7) / 8
        let n = chunks(vectors)
        parallelFor(n) { c in
            for v in (c * vectors / n)..<((c + 1) * vectors / n) {
                let i = v * 8
                if i + 8 <= count {
                    let xv = UnsafeRawPointer(x + i).loadUnaligned(as: VectorMath.V.self)
                    let g = UnsafeRawPointer(dy + i).loadUnaligned(as: VectorMath.V.self)
                    let (cdf, pdf) = EncoderClassifier.normalCDFAndPDF(xv)
                    UnsafeMutableRawPointer(dx + i).storeBytes(of: g * (cdf + xv * pdf), as: VectorMath.V.self)
                } else {
                    for j in i..<count {
                        let xv = VectorMath.V(repeating: x[j])
                        let (cdf, pdf) = EncoderClassifier.normalCDFAndPDF(xv)
                        dx[j] = dy[j] * (cdf + xv * pdf)[0]
                    }
                }
            }
        }
    }

    /// Interleaved rotary embedding on the q and k parts of `[rows, stride]` rows (position = row mod `seq`),
    /// by +θ (`sign` 1, forward) or −θ (`sign` −1: the transpose, for the backward).
    func applyRope(_ p: UnsafeMutablePointer<Float>, rows: Int, seq: Int, stride: Int, sign: Float, both: Bool) {
        let (H, D, heads) = (config.hiddenSize, config.headDim, config.heads)
        let half = D / 2
        ropeCos.withUnsafeBufferPointer { cosT in
            ropeSin.withUnsafeBufferPointer { sinT in
                let n = chunks(rows)
                parallelFor(n) { c in
                    for r in (c * rows / n)..<((c + 1) * rows / n) {
                        let t = r % seq
                        let cs = cosT.baseAddress! + t * half, sn = sinT.baseAddress! + t * half
                        for part in 0..<(both ? 2 : 1) {
                            for h in 0..<heads {
                                let v = p + r * stride + part * H + h * D
                                for i in 0..<half {
                                    let (a, b) = (v[2 * i], v[2 * i + 1])
                                    let s = sign * sn[i]
                                    v[2 * i] = a * cs[i] - b * s
                                    v[2 * i + 1] = b * cs[i] + a * s
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
