import Foundation

/// Learning-rate schedule: linear warm-up from 0, then linear or cosine decay to 0 — the multipliers of HF
/// `get_linear_schedule_with_warmup` / `get_cosine_schedule_with_warmup` (one cycle).
///
/// Step `s` (0-based: the optimiser step about to run) uses `baseRate · factor(s)` with
///
///     factor(s) = s / warmup                                   s < warmup
///               = (total − s) / (total − warmup)               linear decay (≥ 0)
///               = ½ (1 + cos(π · (s − warmup)/(total − warmup)))  cosine decay
///
/// so with warm-up the first step runs at rate 0, exactly as in HF (`LambdaLR` evaluates the factor at step 0).
public struct LRSchedule: Sendable, Equatable {
    public enum Decay: String, Sendable { case linear, cosine, constant }
    public var baseRate: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay

    public init(baseRate: Double, warmupSteps: Int, totalSteps: Int, decay: Decay = .linear) {
        (self.baseRate, self.warmupSteps, self.totalSteps, self.decay) = (baseRate, max(0, warmupSteps), max(1, totalSteps), decay)
    }

    /// Warm-up steps for a ratio of the total (HF `math.ceil(ratio · total)`).
    public static func warmup(ratio: Double, totalSteps: Int) -> Int { Int((ratio * Double(totalSteps)).rounded(.up)) }

    public func factor(step s: Int) -> Double {
        if s < warmupSteps { return Double(s) / Double(max(1, warmupSteps)) }
        let span = Double(max(1, totalSteps - warmupSteps))
        switch decay {
        case .constant: return 1
        case .linear: return max(0, Double(totalSteps - s) / span)
        case .cosine:
            let progress = Double(s - warmupSteps) / span
            return max(0, 0.5 * (1 + Foundation.cos(Double.pi * progress)))
        }
    }

    /// The rate for step `s`.
    public func rate(step s: Int) -> Double { baseRate * factor(step: s) }
}
