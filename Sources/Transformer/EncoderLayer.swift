import Foundation

/// HF `ACT2FN[hidden_act]` entries the encoders (BERT, RoFormer) implement.
public enum HiddenActivation: String, Sendable, CaseIterable {
    case gelu, geluPython = "gelu_python", geluNew = "gelu_new", geluPytorchTanh = "gelu_pytorch_tanh"
    case geluFast = "gelu_fast", quickGelu = "quick_gelu", relu, silu, swish, sigmoid, tanh, linear

    public func callAsFunction(_ x: Tensor) -> Tensor {
        switch self {
        case .gelu, .geluPython: return x.gelu()
        case .geluNew, .geluPytorchTanh, .geluFast: return x.gelu(approximation: .tanh)
        case .quickGelu: return x.map { $0 / (1 + Foundation.exp(-1.702 * $0)) }
        case .relu: return x.relu()
        case .silu, .swish: return x.silu()
        case .sigmoid: return x.sigmoid()
        case .tanh: return x.tanh()
        case .linear: return x
        }
    }

    /// The activation `name` names, or an error listing the supported ones.
    static func named(_ name: String, modelType: String) throws -> HiddenActivation {
        guard let a = HiddenActivation(rawValue: name) else {
            throw ModelError.invalidConfig("\(modelType): hidden_act '\(name)' is not supported (supported: "
                                           + allCases.map(\.rawValue).joined(separator: ", ") + ")")
        }
        return a
    }
}

/// One post-LN transformer encoder layer, shared by BERT and RoFormer (HF `BertLayer` / `RoFormerLayer`, eval mode):
///
///     q, k, v = x·Wqᵀ, x·Wkᵀ, x·Wvᵀ                one fused GEMM
///     q, k (and v if rotaryValue) ← RoPE          RoFormer only (BERT adds absolute positions to the embeddings)
///     a = FlashAttention(q, k, v), bidirectional, keys past the padding length masked
///     x = LayerNorm(a·Woᵀ + x)
///     x = LayerNorm(act(x·W1ᵀ)·W2ᵀ + x)
///
/// HF weight names under `prefix` (`bert.encoder.layer.{i}`, `roformer.encoder.layer.{i}`):
/// `attention.self.{query,key,value}`, `attention.output.{dense,LayerNorm}`, `intermediate.dense`,
/// `output.{dense,LayerNorm}`, each with weight and bias.
public struct EncoderLayer: Sendable {
    /// query | key | value rows stacked: `[3·hidden, hidden]`.
    let qkv: Linear
    public let attentionOutput: Linear
    public let attentionNorm: LayerNorm
    public let intermediate: Linear
    public let output: Linear
    public let outputNorm: LayerNorm

    init(qkv: Linear, attentionOutput: Linear, attentionNorm: LayerNorm, intermediate: Linear, output: Linear,
         outputNorm: LayerNorm) {
        (self.qkv, self.attentionOutput, self.attentionNorm) = (qkv, attentionOutput, attentionNorm)
        (self.intermediate, self.output, self.outputNorm) = (intermediate, output, outputNorm)
    }

    /// Reads the layer at `prefix` (HF names above).
    static func load(_ w: Weights, prefix p: String, hidden: Int, intermediate: Int, eps: Double) throws -> EncoderLayer {
        func layerNorm(_ prefix: String) throws -> LayerNorm {
            LayerNorm(weight: try w("\(prefix).weight", [hidden]), bias: try w("\(prefix).bias", [hidden]), eps: Float(eps))
        }
        return EncoderLayer(
            qkv: Linear.fused([try w.linear("\(p).attention.self.query", out: hidden, in: hidden, bias: true),
                               try w.linear("\(p).attention.self.key", out: hidden, in: hidden, bias: true),
                               try w.linear("\(p).attention.self.value", out: hidden, in: hidden, bias: true)]),
            attentionOutput: try w.linear("\(p).attention.output.dense", out: hidden, in: hidden, bias: true),
            attentionNorm: try layerNorm("\(p).attention.output.LayerNorm"),
            intermediate: try w.linear("\(p).intermediate.dense", out: intermediate, in: hidden, bias: true),
            output: try w.linear("\(p).output.dense", out: hidden, in: intermediate, bias: true),
            outputNorm: try layerNorm("\(p).output.LayerNorm"))
    }

    var parameterCount: Int {
        qkv.parameterCount + attentionOutput.parameterCount + intermediate.parameterCount + output.parameterCount
            + [attentionNorm, outputNorm].reduce(0) { $0 + $1.weight.count + ($1.bias?.count ?? 0) }
    }

    /// The layer on `x [n, hidden]` with `heads` heads of `hidden / heads` features.
    public func callAsFunction(_ x: Tensor, heads H: Int, activation: HiddenActivation, mask: AttentionMask,
                               rope: RoPE? = nil, rotaryValue: Bool = false) -> Tensor {
        let n = x.shape[0]
        let hidden = attentionOutput.outFeatures
        let (D, width) = (hidden / H, 3 * hidden)
        var proj = qkv(x)  // [n, 3·hidden]: q | k | v
        var context = Tensor(uninitializedShape: [n, hidden])
        proj.withUnsafeMutableBufferPointer { buf in
            let q = buf.baseAddress!, k = q + hidden, v = k + hidden
            if let rope {
                rope.apply(to: q, seq: n, heads: H, rowStride: width, headStride: D)
                rope.apply(to: k, seq: n, heads: H, rowStride: width, headStride: D)
                if rotaryValue { rope.apply(to: v, seq: n, heads: H, rowStride: width, headStride: D) }
            }
            let g = Attention.Geometry(batch: 1, queries: n, keys: n, heads: H, kvHeads: H, headDim: D, valueDim: D)
            context.withUnsafeMutableBufferPointer { o in
                var ops = Attention.Operands(query: q, key: k, value: v, output: o.baseAddress!, geometry: g)
                (ops.queryRowStride, ops.keyRowStride, ops.valueRowStride) = (width, width, width)
                (ops.queryBatchStride, ops.keyBatchStride, ops.valueBatchStride) = (n * width, n * width, n * width)
                Attention.flash(g, ops, options: Attention.Options(scale: 1 / Float(D).squareRoot(), mask: mask))
            }
        }
        let h = attentionNorm(attentionOutput(context) + x)
        return outputNorm(output(activation(intermediate(h))) + h)
    }
}

/// Checks one encoder input; returns the token types (zeros by default) and the number of unpadded tokens.
/// `attentionMask` (1 = token, 0 = padding) may only mask a suffix.
func validateEncoderInput(_ tokens: [Int], tokenTypes: [Int]?, attentionMask: [Int]?, vocabularySize: Int,
                          typeVocabularySize: Int, maxPositions: Int) throws -> (types: [Int], length: Int) {
    let n = tokens.count
    guard n > 0 else { throw EncoderInputError.emptyInput }
    guard n <= maxPositions else { throw EncoderInputError.sequenceTooLong(length: n, maxPositions: maxPositions) }
    for t in tokens where t < 0 || t >= vocabularySize {
        throw EncoderInputError.tokenOutOfRange(id: t, vocabularySize: vocabularySize)
    }
    let types = tokenTypes ?? [Int](repeating: 0, count: n)
    guard types.count == n else { throw EncoderInputError.lengthMismatch(argument: "tokenTypes", expected: n, found: types.count) }
    for t in types where t < 0 || t >= typeVocabularySize {
        throw EncoderInputError.tokenTypeOutOfRange(id: t, typeVocabularySize: typeVocabularySize)
    }
    var length = n
    if let mask = attentionMask {
        guard mask.count == n else { throw EncoderInputError.lengthMismatch(argument: "attentionMask", expected: n, found: mask.count) }
        if let bad = mask.first(where: { $0 != 0 && $0 != 1 }) {
            throw EncoderInputError.invalidAttentionMask("entries must be 0 or 1, found \(bad)")
        }
        length = mask.firstIndex(of: 0) ?? n
        if let j = mask[length...].firstIndex(of: 1) {
            throw EncoderInputError.invalidAttentionMask(
                "padding must be a suffix: position \(length) is masked but position \(j) is not")
        }
        guard length > 0 else { throw EncoderInputError.invalidAttentionMask("no unmasked token (every entry is 0)") }
    }
    return (types, length)
}
