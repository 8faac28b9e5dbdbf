import Foundation

/// The small building blocks every model shares. Weights are stored as Hugging Face stores them
/// (`Linear.weight` is `[out, in]`).

/// `y = x·Wᵀ + b`.
///
/// When the checkpoint stores W block-quantised (GGUF Q8_0 / Q4_0 / Q4_1), `quantized` holds those blocks as well:
/// a one-row input (a decode step) is multiplied straight from them, reading 4.5–8.5 bits per weight instead of
/// 32; several rows (prefill) use the float weights and GEMM.
public struct Linear: Sendable {
    public let weight: Tensor  // [out, in]
    public let bias: Tensor?   // [out]
    /// The same weights quantised (``QuantizedMatrix/dequantized()`` equals `weight`), used for one-row inputs.
    public let quantized: QuantizedMatrix?

    public init(weight: Tensor, bias: Tensor? = nil, quantized: QuantizedMatrix? = nil) {
        precondition(weight.rank == 2, "Linear weight must be [out, in], got \(weight.shape)")
        if let quantized {
            precondition([quantized.rows, quantized.cols] == weight.shape,
                         "Linear quantised weights \(quantized.rows) × \(quantized.cols) do not match weight \(weight.shape)")
        }
        self.weight = weight
        self.bias = bias
        self.quantized = quantized
    }

    /// Input width (`in`).
    public var inFeatures: Int { weight.shape[1] }
    /// Output width (`out`).
    public var outFeatures: Int { weight.shape[0] }

    /// `x` is `[..., in]`; returns `[..., out]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard let quantized, x.rank >= 1, x.shape[x.rank - 1] == inFeatures, x.count == inFeatures else {
            return x.linear(weight: weight, bias: bias)
        }
        var out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outFeatures])
        out.withUnsafeMutableBufferPointer { y in
            if let bias {
                precondition(bias.shape == [outFeatures], "linear bias must be [\(outFeatures)], got \(bias.shape)")
                bias.withUnsafeBufferPointer { y.baseAddress!.update(from: $0.baseAddress!, count: outFeatures) }
            }
            x.withUnsafeBufferPointer { quantized.gemv($0.baseAddress!, into: y.baseAddress!, beta: bias == nil ? 0 : 1) }
        }
        return out
    }

    /// Several linears over the same input fused into one GEMM (rows of the weights stacked), e.g. Q/K/V or gate/up.
    /// The quantised weights are fused too when every part has them in one format.
    public static func fused(_ parts: [Linear]) -> Linear {
        let bias: Tensor? = parts.allSatisfy { $0.bias == nil } ? nil
            : Tensor.concatenate(parts.map { $0.bias ?? Tensor.zeros([$0.outFeatures]) }, axis: 0)
        let quantized = parts.allSatisfy { $0.quantized != nil } ? QuantizedMatrix.concatenatingRows(parts.map { $0.quantized! }) : nil
        return Linear(weight: Tensor.concatenate(parts.map(\.weight), axis: 0), bias: bias, quantized: quantized)
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
