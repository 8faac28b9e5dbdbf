import Foundation

/// The engine's seeded random generator: SplitMix64 (Steele, Lea & Flood 2014).
///
/// It is fixed and documented so that a seed gives the same numbers on every platform and in every release:
/// state += 0x9E3779B97F4A7C15; z = state; z = (z ^ (z >> 30)) · 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) · 0x94D049BB133111EB;
/// output z ^ (z >> 31). Uniform floats take the top 24 bits (`[0, 1)`); normals use Box–Muller on two uniforms.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose sequence is determined by `seed`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 24 random bits.
    public mutating func nextUniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Standard normal (Box–Muller, cosine branch).
    public mutating func nextNormal() -> Float {
        let u1 = Double((next() >> 11) + 1) * 0x1p-53  // (0, 1]
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}

extension Tensor {
    /// Normal(mean, std) samples from ``SeededGenerator`` with `seed`.
    public static func randomNormal(_ shape: [Int], mean: Float = 0, std: Float = 1, seed: UInt64) -> Tensor {
        var g = SeededGenerator(seed: seed)
        var t = Tensor(uninitializedShape: shape)
        t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = mean + std * g.nextNormal() } }
        return t
    }

    /// Uniform samples in `[low, high)` from ``SeededGenerator`` with `seed`.
    public static func randomUniform(_ shape: [Int], low: Float = 0, high: Float = 1, seed: UInt64) -> Tensor {
        var g = SeededGenerator(seed: seed)
        var t = Tensor(uninitializedShape: shape)
        t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = low + (high - low) * g.nextUniform() } }
        return t
    }
}
