import Foundation

/// AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") over one flat parameter arena, as
/// `torch.optim.AdamW` computes it (bias-corrected, decay applied to the weight before the Adam update):
///
///     θ ← θ · (1 − lr·λ)                          only where decay applies
///     m ← β₁·m + (1−β₁)·g;   v ← β₂·v + (1−β₂)·g²
///     θ ← θ − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)
///
/// Ranges of the arena are trainable or frozen, with or without weight decay (biases and LayerNorm parameters
/// are not decayed, as HF `Trainer` does). ``clipGradients(_:maxNorm:)`` is `torch.nn.utils.clip_grad_norm_`.
public struct AdamW: Sendable {
    public struct Group: Sendable, Equatable {
        public var offset: Int
        public var count: Int
        public var decay: Bool
        public init(offset: Int, count: Int, decay: Bool) { (self.offset, self.count, self.decay) = (offset, count, decay) }
    }

    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public var weightDecay: Double
    /// Steps taken so far (t of the bias correction).
    public private(set) var step: Int = 0
    public var m: [Float]
    public var v: [Float]
    /// Trainable ranges of the arena; everything else is frozen.
    public let groups: [Group]

    public init(parameterCount: Int, groups: [Group], weightDecay: Double) {
        m = [Float](repeating: 0, count: parameterCount)
        v = [Float](repeating: 0, count: parameterCount)
        self.groups = groups
        self.weightDecay = weightDecay
    }

    /// Restores moments and the step count (resume).
    public mutating func restore(m: [Float], v: [Float], step: Int) {
        precondition(m.count == self.m.count && v.count == self.v.count, "AdamW state size mismatch")
        (self.m, self.v, self.step) = (m, v, step)
    }

    /// One update of `params` with `grads` at learning rate `lr`.
    public mutating func update(_ params: UnsafeMutablePointer<Float>, _ grads: UnsafePointer<Float>, lr: Double) {
        step += 1
        let b1 = Float(beta1), b2 = Float(beta2)
        let c1 = Float(1 - Foundation.pow(beta1, Double(step))), c2 = Float(1 - Foundation.pow(beta2, Double(step)))
        let lrF = Float(lr), epsF = Float(eps)
        let stepSize = lrF / c1, c2root = c2.squareRoot()
        m.withUnsafeMutableBufferPointer { mb in
            v.withUnsafeMutableBufferPointer { vb in
                for g in groups {
                    let decay: Float = g.decay ? 1 - lrF * Float(weightDecay) : 1
                    let p = params + g.offset, gr = grads + g.offset
                    let mp = mb.baseAddress! + g.offset, vp = vb.baseAddress! + g.offset
                    for i in 0..<g.count {
                        let gi = gr[i]
                        p[i] *= decay
                        mp[i] = b1 * mp[i] + (1 - b1) * gi
                        vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
                        p[i] -= stepSize * mp[i] / (vp[i].squareRoot() / c2root + epsF)
                    }
                }
            }
        }
    }

    /// Scales the gradients of the trainable ranges so their global L2 norm is at most `maxNorm`
    /// (`clip_coef = maxNorm / (norm + 1e-6)`, applied only when below 1). Returns the norm before clipping.
    @discardableResult
    public func clipGradients(_ grads: UnsafeMutablePointer<Float>, maxNorm: Double) -> Double {
        var total: Double = 0
        for g in groups { total += VectorMath.sumOfSquares(grads + g.offset, count: g.count) }
        let norm = total.squareRoot()
        let coef = maxNorm / (norm + 1e-6)
        if coef < 1 {
            for g in groups { VectorMath.scale(grads + g.offset, count: g.count, by: Float(coef)) }
        }
        return norm
    }
}
