import Foundation

/// A sparse mixture-of-experts feed-forward: a router picks `k` experts per token and mixes their SwiGLU outputs,
/// plus optional shared experts every token goes through (DeepSeek).
///
///     weights, experts = route(x·Wgᵀ)                   per token: k (expert, weight) pairs
///     for each expert e: X_e = rows routed to e          gathered into one matrix
///                        y[rows] += w · SwiGLU_e(X_e)    one GEMM per projection per expert
///     y += shared(x)
///
/// Running each expert once over all of its tokens keeps the GEMMs large; a token-by-token loop would turn every
/// product into a matrix-vector one.
public struct MixtureOfExperts: FeedForward {
    /// How router logits become (expert, weight) choices.
    public enum Routing: Sendable {
        /// Mixtral / Switch: softmax over all experts, top-k, weights renormalised to sum to 1 (when `normalize`).
        case softmaxTopK(k: Int, normalize: Bool)
        /// DeepSeek-V3: sigmoid scores; `bias` (`e_score_correction_bias`) is added for *selection only*; experts
        /// form `groups` groups scored by the sum of their top-2 biased scores, the best `topGroups` groups are
        /// kept, the top-k experts among them chosen; weights are the unbiased scores (normalised when `normalize`)
        /// times `scale` (`routed_scaling_factor`).
        case deepSeek(k: Int, bias: Tensor, groups: Int, topGroups: Int, normalize: Bool, scale: Float)
    }

    public let router: Linear  // [experts, hidden]
    public let routing: Routing
    public let experts: [SwiGLU]
    public let shared: SwiGLU?

    public init(router: Linear, routing: Routing, experts: [SwiGLU], shared: SwiGLU? = nil) {
        precondition(router.outFeatures == experts.count, "router has \(router.outFeatures) outputs for \(experts.count) experts")
        (self.router, self.routing, self.experts, self.shared) = (router, routing, experts, shared)
    }

    /// Experts chosen per token.
    public var expertsPerToken: Int {
        switch routing {
        case .softmaxTopK(let k, _), .deepSeek(let k, _, _, _, _, _): return k
        }
    }

    /// For each token: the chosen experts and their mixing weights.
    public func route(_ x: Tensor) -> [[(expert: Int, weight: Float)]] {
        let logits = router(x)  // [n, E]
        let e = experts.count
        return logits.withUnsafeBufferPointer { p in
            (0..<(logits.count / e)).map { t in
                let row = Array(p[(t * e)..<((t + 1) * e)])
                switch routing {
                case .softmaxTopK(let k, let normalize):
                    let m = row.max()!
                    let ex = row.map { Foundation.exp($0 - m) }
                    let total = ex.reduce(0, +)
                    let probs = ex.map { $0 / total }
                    let top = MixtureOfExperts.topK(probs, k)
                    let sum = normalize ? top.reduce(0) { $0 + probs[$1] } : 1
                    return top.map { ($0, probs[$0] / sum) }
                case .deepSeek(let k, let bias, let groups, let topGroups, let normalize, let scale):
                    let scores = row.map { 1 / (1 + Foundation.exp(-$0)) }
                    let biased = bias.withUnsafeBufferPointer { b in scores.indices.map { scores[$0] + b[$0] } }
                    let perGroup = e / groups
                    let groupScores = (0..<groups).map { g -> Float in
                        let members = Array(biased[(g * perGroup)..<((g + 1) * perGroup)])
                        return MixtureOfExperts.topK(members, min(2, perGroup)).reduce(0) { $0 + members[$1] }
                    }
                    let keptGroups = Set(MixtureOfExperts.topK(groupScores, topGroups))
                    let candidates = biased.indices.map { keptGroups.contains($0 / perGroup) ? biased[$0] : -Float.infinity }
                    let top = MixtureOfExperts.topK(candidates, k)
                    let sum = normalize ? top.reduce(0) { $0 + scores[$1] } + 1e-20 : 1
                    return top.map { ($0, scores[$0] / sum * scale) }
                }
            }
        }
    }

    /// Indices of the `k` largest values (ties: lower index first, like `torch.topk` on CPU in practice).
    static func topK(_ v: [Float], _ k: Int) -> [Int] {
        Array(v.indices.sorted { v[$0] > v[$1] || (v[$0] == v[$1] && $0 < $1) }.prefix(k))
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        let n = x.shape[0], hidden = x.shape[1]
        let choices = route(x)
        // Group tokens by expert.
        var tokensOf = [[(token: Int, weight: Float)]](repeating: [], count: experts.count)
        for (t, picks) in choices.enumerated() { for p in picks { tokensOf[p.expert].append((t, p.weight)) } }
        var y = shared.map { $0(x) } ?? Tensor.zeros([n, hidden])
        y.withUnsafeMutableBufferPointer { out in
            for (e, routed) in tokensOf.enumerated() where !routed.isEmpty {
                let xe = x.embedding(routed.map(\.token))  // gather rows [m, hidden]
                let ye = experts[e](xe)
                ye.withUnsafeBufferPointer { src in
                    for (r, (t, w)) in routed.enumerated() {
                        let o = out.baseAddress! + t * hidden, s = src.baseAddress! + r * hidden
                        for j in 0..<hidden { o[j] += w * s[j] }
                    }
                }
            }
        }
        return y
    }
}

extension MixtureOfExperts: ParameterCounting {
    public var parameterCount: Int {
        router.parameterCount + experts.reduce(0) { $0 + $1.parameterCount } + (shared?.parameterCount ?? 0)
    }

    /// Weights one token actually multiplies: router, k experts, shared experts.
    public var activeParameterCount: Int {
        router.parameterCount + expertsPerToken * (experts.first?.parameterCount ?? 0) + (shared?.parameterCount ?? 0)
    }
}
