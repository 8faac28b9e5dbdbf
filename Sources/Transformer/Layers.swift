import Foundation

/// The small building blocks every model shares. Weights are stored as Hugging Face stores them
/// (`Linear.weight` is `[out, in]`).

/// `y = x·Wᵀ + b`.
///
/// The weights are held ONE way: as a float tensor (``weight``), or — for a GGUF checkpoint — as the file stores them
/// (``quantized``: ggml blocks or F32/F16 rows, usually read in place from the mapped file), never both. From blocks,
/// a one-row input (a decode step) is a GEMV over the blocks and several rows (prefill) a GEMM over panels of
/// dequantised rows (``QuantizedMatrix/gemm(_:rows:into:beta:)``).
public struct Linear: Sendable {
    /// The float weights `[out, in]`, or nil when they are held as ``quantized``.
    public let dense: Tensor?
    public let bias: Tensor?   // [out]
    /// The weights as stored in the checkpoint (blocks), or nil for float weights.
    public let quantized: QuantizedMatrix?

    /// A linear over float weights `[out, in]`.
    public init(weight: Tensor, bias: Tensor? = nil) {
        precondition(weight.rank == 2, "Linear weight must be [out, in], got \(weight.shape)")
        (dense, self.bias, quantized) = (weight, bias, nil)
    }

    /// A linear over stored weights; no float copy is made.
    public init(quantized: QuantizedMatrix, bias: Tensor? = nil) {
        (dense, self.bias, self.quantized) = (nil, bias, quantized)
    }

    /// The weights `[out, in]` as floats: the stored tensor, or the blocks dequantised into a new one (allocates
    /// `out · in` floats each call: for inspection and tests, not for inference).
    public var weight: Tensor { dense ?? quantized!.dequantized() }

    /// Input width (`in`).
    public var inFeatures: Int { dense?.shape[1] ?? quantized!.cols }
    /// Output width (`out`).
    public var outFeatures: Int { dense?.shape[0] ?? quantized!.rows }

    /// `x` is `[..., in]`; returns `[..., out]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if let dense { return x.linear(weight: dense, bias: bias) }
        let q = quantized!
        precondition(x.rank >= 1 && x.shape[x.rank - 1] == inFeatures,
                     "linear input \(x.shape) does not match weight [out, in] = [\(outFeatures), \(inFeatures)]")
        let rows = x.count / inFeatures
        var out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
        out.withUnsafeMutableBufferPointer { y in
            if let bias {
                precondition(bias.shape == [outFeatures], "linear bias must be [\(outFeatures)], got \(bias.shape)")
                bias.withUnsafeBufferPointer { b in
                    for r in 0..<rows { (y.baseAddress! + r * outFeatures).update(from: b.baseAddress!, count: outFeatures) }
                }
            }
            x.withUnsafeBufferPointer { q.gemm($0.baseAddress!, rows: rows, into: y.baseAddress!, beta: bias == nil ? 0 : 1) }
        }
        return out
    }

    /// Rows `ids` of the weight matrix, `[ids.count, in]`: an embedding lookup when this linear is a tied LM head
    /// (stored rows are dequantised one by one).
    public func weightRows(_ ids: [Int]) -> Tensor {
        if let dense { return dense.embedding(ids) }
        return quantized!.rows(ids)
    }

    /// Several linears over the same input fused into one (rows of the weights stacked), e.g. Q/K/V or gate/up.
    /// Stored weights stay stored (their parts are shared, not copied, and may differ in format); float ones are
    /// concatenated; a mix is dequantised into one float tensor.
    public static func fused(_ parts: [Linear]) -> Linear {
        let bias: Tensor? = parts.allSatisfy { $0.bias == nil } ? nil
            : Tensor.concatenate(parts.map { $0.bias ?? Tensor.zeros([$0.outFeatures]) }, axis: 0)
        if parts.allSatisfy({ $0.quantized != nil }), let q = QuantizedMatrix.concatenatingRows(parts.map { $0.quantized! }) {
            return Linear(quantized: q, bias: bias)
        }
        return Linear(weight: Tensor.concatenate(parts.map(\.weight), axis: 0), bias: bias)
    }
}

/// Root-mean-square normalisation (Llama, Mixtral, DeepSeek).
public struct RMSNorm: Sendable {
    public let weight: Tensor
    public let eps: Float
    public init(weight: Tensor, eps: Float) { (self.weight, self.eps) = (weight, eps) }
    public func callAsFunction(_ x: Tensor) -> Tensor { x.rmsNorm(weight: weight, eps: eps) }
}

/// Layer normalisation with affine weight and bias (BERT / RoFormer).
public struct LayerNorm: Sendable {
    public let weight: Tensor
    public let bias: Tensor?
    public let eps: Float
    public init(weight: Tensor, bias: Tensor?, eps: Float) { (self.weight, self.bias, self.eps) = (weight, bias, eps) }
    public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm(weight: weight, bias: bias, eps: eps) }
}

/// The gated feed-forward of Llama-family models: `down(silu(gate(x)) ⊙ up(x))`, gate and up fused in one GEMM.
public struct SwiGLU: Sendable {
    let gateUp: Linear  // [2·I, hidden]: gate rows then up rows
    public let down: Linear  // [hidden, I]

    public init(gate: Linear, up: Linear, down: Linear) {
        precondition(gate.outFeatures == up.outFeatures && down.inFeatures == gate.outFeatures,
                     "SwiGLU: gate \(gate.weight.shape), up \(up.weight.shape), down \(down.weight.shape) disagree")
        gateUp = Linear.fused([gate, up])
        self.down = down
    }

    public var intermediateSize: Int { down.inFeatures }

    /// `x` is `[tokens, hidden]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { down(SwiGLU.activate(gateUp(x), intermediate: intermediateSize)) }

    /// `[tokens, 2I]` (gate | up) → `[tokens, I]` = silu(gate) ⊙ up.
    static func activate(_ gu: Tensor, intermediate n: Int) -> Tensor {
        let rows = gu.count / (2 * n)
        var out = Tensor(uninitializedShape: [rows, n])
        gu.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    let g = src.baseAddress! + r * 2 * n
                    VectorMath.siluMul(gate: g, up: g + n, out: dst.baseAddress! + r * n, count: n)
                }
            }
        }
        return out
    }
}
