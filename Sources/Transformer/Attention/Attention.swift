/// Attention: `out = score(Q·Kᵀ·scale + mask)·V` over `[batch, tokens, heads, dim]` tensors.
///
/// Two implementations of one definition:
/// - ``Attention/flash(query:key:value:options:)`` — the memory-tiled FlashAttention kernel
///   (`FlashAttention.swift`), the one the models use;
/// - ``Attention/reference(query:key:value:options:)`` — materialises the scores (`ReferenceAttention.swift`),
///   the baseline the benchmark compares against and a second opinion in tests.
///
/// Multi-query / grouped-query attention: `key`/`value` carry `kvHeads` heads, `kvHeads` divides `heads`, and query
/// head `h` reads kv head `h / (heads / kvHeads)` by index (nothing is copied or repeated).
public enum Attention {
    /// How scores become weights.
    public enum ScoreFunction: Sendable, Equatable {
        /// Row softmax (the classic).
        case softmax
        /// Sigmoid attention (Apple, arXiv 2409.04431): σ(s + bias), no row normalisation.
        /// `bias` nil means −log(number of keys), the paper's recommendation.
        case sigmoid(bias: Float? = nil)
    }

    /// Everything besides Q, K and V.
    public struct Options: Sendable, Equatable {
        /// Score multiplier; nil means 1/√(head dim).
        public var scale: Float?
        public var mask: AttentionMask
        public var score: ScoreFunction
        /// Logit soft-capping (Gemma 2): scores become `softcap · tanh(s / softcap)` before the mask; nil: off.
        public var softcap: Float?
        /// FlashAttention tuning: query rows (tokens × group heads) per task; nil picks 256 for dense attention and
        /// 128 under a mask that can empty tiles (smaller blocks follow a causal diagonal or a window more closely).
        public var rowsPerBlock: Int?
        /// FlashAttention tuning: keys per tile; nil means 256.
        public var tileKeys: Int?
        /// FlashAttention tuning: key splits per task (split-KV decode); nil splits automatically when there are
        /// fewer tasks than workers, 1 never splits.
        public var keySplits: Int?

        public init(scale: Float? = nil, mask: AttentionMask = .none, score: ScoreFunction = .softmax,
                    softcap: Float? = nil, rowsPerBlock: Int? = nil, tileKeys: Int? = nil, keySplits: Int? = nil) {
            self.scale = scale
            self.mask = mask
            self.score = score
            self.softcap = softcap
            self.rowsPerBlock = rowsPerBlock
            self.tileKeys = tileKeys
            self.keySplits = keySplits
        }
    }

    /// Shapes of one attention call, validated once.
    public struct Geometry: Sendable, Equatable {
        public let batch, queries, keys, heads, kvHeads, headDim, valueDim: Int
        public var groupSize: Int { heads / kvHeads }
        /// Multiply-adds ×2 of the two products, counting every (query, key) pair: 2·(D + Dv)·Nq·Nk per head.
        public var denseFlops: Double { 2 * Double(headDim + valueDim) * Double(queries) * Double(keys) * Double(batch * heads) }

        public init(batch: Int, queries: Int, keys: Int, heads: Int, kvHeads: Int, headDim: Int, valueDim: Int) {
            precondition(batch >= 0 && queries >= 0 && keys >= 0 && headDim > 0 && valueDim > 0,
                         "attention: invalid sizes batch \(batch), queries \(queries), keys \(keys), dims \(headDim)/\(valueDim)")
            precondition(heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
                         "attention: kv heads (\(kvHeads)) must divide query heads (\(heads))")
            (self.batch, self.queries, self.keys, self.heads, self.kvHeads, self.headDim, self.valueDim) =
                (batch, queries, keys, heads, kvHeads, headDim, valueDim)
        }

        /// Reads the geometry from `[B, Nq, H, D]`, `[B, Nk, G, D]`, `[B, Nk, G, Dv]` (or the same without `B`).
        init(query: Tensor, key: Tensor, value: Tensor) {
            let r = query.rank
            precondition((r == 3 || r == 4) && key.rank == r && value.rank == r,
                         "attention: expected [B, N, H, D] (or [N, H, D]) tensors, got q \(query.shape), k \(key.shape), v \(value.shape)")
            let q = r == 3 ? [1] + query.shape : query.shape
            let k = r == 3 ? [1] + key.shape : key.shape
            let v = r == 3 ? [1] + value.shape : value.shape
            precondition(k[0] == q[0] && v[0] == q[0] && k[3] == q[3] && v[1] == k[1] && v[2] == k[2],
                         "attention: shapes disagree: q \(query.shape), k \(key.shape), v \(value.shape)")
            self.init(batch: q[0], queries: q[1], keys: k[1], heads: q[2], kvHeads: k[2], headDim: q[3], valueDim: v[3])
        }

        func outputShape(like query: Tensor) -> [Int] {
            query.rank == 3 ? [queries, heads, valueDim] : [batch, queries, heads, valueDim]
        }
    }

    /// Raw operands in the `[B, N, H, D]` layout, with explicit strides so that Q can be a column slice of a fused
    /// QKV projection and K/V can live in a larger preallocated cache whose first `keys` positions are valid.
    ///
    /// Token `t` of batch `b`, head `h` starts at `query + b·queryBatchStride + t·queryRowStride + h·D`;
    /// likewise for key/value with kv head `g` (`+ g·D` / `+ g·Dv`); output rows are dense `[B, Nq, H, Dv]`.
    public struct Operands {
        public var query: UnsafePointer<Float>
        public var key: UnsafePointer<Float>
        public var value: UnsafePointer<Float>
        public var output: UnsafeMutablePointer<Float>
        public var queryRowStride, queryBatchStride: Int
        public var keyRowStride, keyBatchStride: Int
        public var valueRowStride, valueBatchStride: Int

        /// Operands for dense `[B, N, H, D]` storage.
        public init(query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>,
                    output: UnsafeMutablePointer<Float>, geometry g: Geometry) {
            (self.query, self.key, self.value, self.output) = (query, key, value, output)
            queryRowStride = g.heads * g.headDim
            queryBatchStride = g.queries * queryRowStride
            keyRowStride = g.kvHeads * g.headDim
            keyBatchStride = g.keys * keyRowStride
            valueRowStride = g.kvHeads * g.valueDim
            valueBatchStride = g.keys * valueRowStride
        }
    }

    static func validate(_ g: Geometry, _ options: Options) {
        if let lengths = options.mask.keyLengths {
            precondition(lengths.count == g.batch && lengths.allSatisfy { $0 >= 0 },
                         "attention: keyLengths must have one non-negative entry per batch (\(g.batch)), got \(lengths)")
        }
        if let w = options.mask.window { precondition(w >= 0, "attention: window must be ≥ 0, got \(w)") }
        if let cap = options.softcap { precondition(cap > 0 && cap.isFinite, "attention: softcap must be positive, got \(cap)") }
        precondition(options.mask.queryOffset >= 0, "attention: queryOffset must be ≥ 0")
    }

    static func resolvedScale(_ g: Geometry, _ options: Options) -> Float {
        options.scale ?? 1 / Float(g.headDim).squareRoot()
    }

    /// Soft-caps `count` scaled scores in place: `s ← cap·tanh(s / cap)` (see ``Options/softcap``), eight lanes at
    /// a time with tanh(y) = 1 − 2/(e^{2y} + 1) on ``VectorMath/exp(_:)`` (absolute error ≈ 1e-7 · cap).
    static func softcap(_ s: UnsafeMutablePointer<Float>, count: Int, cap: Float) {
        typealias V = VectorMath.V
        let twoOverCap = 2 / cap
        var i = 0
        while i + V.scalarCount <= count {
            let p = UnsafeMutableRawPointer(s + i)
            let e = VectorMath.exp(p.loadUnaligned(as: V.self) * twoOverCap)
            p.storeBytes(of: cap - (2 * cap) / (e + 1), as: V.self)
            i += V.scalarCount
        }
        while i < count { s[i] = cap * Foundation.tanh(s[i] / cap); i += 1 }
    }

    static func sigmoidBias(_ g: Geometry, _ score: ScoreFunction) -> Float {
        if case .sigmoid(let bias) = score { return bias ?? -Float.log(Float(max(g.keys, 1))) }
        return 0
    }

    /// Runs `kernel` on tensors: validates shapes, allocates the output.
    static func run(query: Tensor, key: Tensor, value: Tensor, options: Options,
                    _ kernel: (Geometry, Operands, Options) -> Void) -> Tensor {
        let g = Geometry(query: query, key: key, value: value)
        validate(g, options)
        var out = Tensor(uninitializedShape: g.outputShape(like: query))
        query.withUnsafeBufferPointer { q in
            key.withUnsafeBufferPointer { k in
                value.withUnsafeBufferPointer { v in
                    out.withUnsafeMutableBufferPointer { o in
                        kernel(g, Operands(query: q.baseAddress!, key: k.baseAddress!, value: v.baseAddress!,
                                           output: o.baseAddress!, geometry: g), options)
                    }
                }
            }
        }
        return out
    }

    /// FlashAttention on tensors `query [B, Nq, H, D]`, `key [B, Nk, G, D]`, `value [B, Nk, G, Dv]` (batch axis
    /// optional); returns `[B, Nq, H, Dv]`.
    public static func flash(query: Tensor, key: Tensor, value: Tensor, options: Options = Options()) -> Tensor {
        run(query: query, key: key, value: value, options: options) { FlashAttention.run($0, $1, $2) }
    }

    /// Bytes of scores ``reference(query:key:value:options:)`` materialises for geometry `g`.
    public static func referenceScoreBytes(_ g: Geometry) -> Int { ReferenceAttention.scoreBytes(g) }

    /// FlashAttention on raw operands (models call this with Q inside a fused projection and K/V in a cache).
    public static func flash(_ g: Geometry, _ operands: Operands, options: Options = Options()) {
        validate(g, options)
        FlashAttention.run(g, operands, options)
    }

    /// The materialised reference: same contract as ``flash(query:key:value:options:)``.
    public static func reference(query: Tensor, key: Tensor, value: Tensor, options: Options = Options()) -> Tensor {
        run(query: query, key: key, value: value, options: options) { ReferenceAttention.run($0, $1, $2) }
    }
}

extension Float {
    static func log(_ x: Float) -> Float { Float(Foundation.log(Double(x))) }
}

import Foundation
