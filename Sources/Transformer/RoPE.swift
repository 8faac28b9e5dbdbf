import Foundation

/// Rotary position embeddings (RoPE, Su et al. 2021) with cos/sin tables precomputed once.
///
/// Pair `i` of a head (`0 ≤ i < rotaryDim/2`) at position `p` is rotated by the angle `p·θᵢ` with
/// `θᵢ = base^(−2i/rotaryDim)` (adjusted by ``Scaling``). Only the first ``rotaryDim`` features of each head are
/// rotated; the rest pass through unchanged (partial rotary, HF `partial_rotary_factor`).
///
/// The tables are computed in `Double` at init and stored as `Float` (`[positions, rotaryDim/2]` each), with
/// the YaRN ``attentionFactor`` already folded in, exactly as HF multiplies its cos/sin by `attention_scaling`.
/// Only the first ``tabulatedPositions`` positions (at most ``maxTabulatedPositions``) are tabulated, so a model
/// that declares a huge context costs no memory up front; a call that reaches past the table computes its rows on
/// the fly with the same arithmetic (bit-identical). Positions must lie in `0..<maxPositions`; anything else is a
/// precondition failure, so models check their context before rotating (``DecoderModel`` throws
/// ``GenerationError/contextTooLong(needed:maxPositions:)``).
///
/// ```swift
/// let rope = RoPE(rotaryDim: 64, base: 10_000, maxPositions: 4096, layout: .halfSplit)
/// rope.apply(&q, positionOffset: cacheLength)   // q: [seq, heads, headDim]
/// ```
public struct RoPE: Sendable {
    /// Which features form a rotated pair.
    public enum Layout: Sendable, Equatable {
        /// Pairs `(2i, 2i+1)`, rotated in place: RoFormer, GPT-J, the DeepSeek-V3 reference `apply_rotary_emb`
        /// (`view_as_complex`). HF's DeepSeek-V3 `rope_interleave=True` path computes the same rotation but writes
        /// the result de-interleaved (`cat(evens, odds)`); that is a fixed permutation of this output, shared by
        /// q and k, so attention scores are identical.
        case interleaved
        /// Pairs `(i, i + rotaryDim/2)` (`rotate_half`): Llama, GPT-NeoX, Qwen, HF DeepSeek with `rope_interleave=False`.
        case halfSplit
    }

    /// Context-extension schemes for the frequencies.
    public enum Scaling: Sendable, Equatable {
        /// Position interpolation: every frequency divided by `factor` (HF `rope_type: "linear"`).
        case linear(factor: Double)
        /// YaRN as in HF `_compute_yarn_parameters` / DeepSeek-V3 (`truncate = true`): pairs faster than
        /// `betaFast` rotations over `originalMaxPositions` keep their frequency, pairs slower than `betaSlow`
        /// are divided by `factor`, with a linear ramp between the two correction dims. `mscale`/`mscaleAllDim`
        /// set ``RoPE/attentionFactor`` and ``RoPE/softmaxScaleMultiplier``; `nil` (or 0) means absent, as in HF.
        case yarn(factor: Double, originalMaxPositions: Int, betaFast: Double = 32, betaSlow: Double = 1,
                  mscale: Double? = nil, mscaleAllDim: Double? = nil)
        /// LongRoPE (Phi-3, HF `_compute_longrope_parameters`): pair `i` gets `θᵢ / factor[i]`, with `shortFactor`
        /// while the positions of a call stay within `originalMaxPositions` and `longFactor` once a call reaches
        /// past it (HF `longrope_frequency_update`: the choice is made per forward call, from its largest position).
        /// `attentionFactor` multiplies cos and sin.
        case longrope(shortFactor: [Double], longFactor: [Double], originalMaxPositions: Int, attentionFactor: Double)
    }

    /// Number of leading features per head that are rotated (even).
    public let rotaryDim: Int
    /// Frequency base θ (`rope_theta`).
    public let base: Double
    /// Positions `0..<maxPositions` are tabulated.
    public let maxPositions: Int
    /// Pairing of rotated features.
    public let layout: Layout
    /// Frequency scaling, if any.
    public let scaling: Scaling?
    /// Angular frequency of each pair after scaling (`rotaryDim/2` values; HF `inv_freq`).
    public let inverseFrequencies: [Double]
    /// Factor folded into the cos/sin tables (HF `attention_scaling`): with YaRN
    /// `m(factor, mscale) / m(factor, mscaleAllDim)` when both are given, else `m(factor, 1)`, where
    /// `m(s, k) = 0.1·k·ln s + 1` (1 for `s ≤ 1`). It is 1 without YaRN.
    public let attentionFactor: Double
    /// Multiply the attention softmax scale (`1/√d_qk`) by this: `m(factor, mscaleAllDim)²` with YaRN and a
    /// non-zero `mscaleAllDim` (HF DeepSeek-V3 `yarn_apply_mscale`), otherwise 1.
    public let softmaxScaleMultiplier: Double

    /// Most positions tabulated at init; later positions are computed when used.
    public static let maxTabulatedPositions = 16_384
    /// Positions `0..<tabulatedPositions` are read from the precomputed tables.
    public var tabulatedPositions: Int { cosTable.count / (rotaryDim / 2) }

    private let cosTable: [Float]
    private let sinTable: [Float]
    /// LongRoPE: the long-factor tables (and frequencies), used by calls that reach past `originalMaxPositions`.
    private let longTables: (cos: [Float], sin: [Float], originalMaxPositions: Int, frequencies: [Double])?

    /// Builds the tables.
    ///
    /// - Parameters:
    ///   - rotaryDim: Even number of rotated features per head (may be less than the head dim).
    ///   - base: Frequency base (`rope_theta`).
    ///   - maxPositions: Table length; every rotated position must be below it.
    ///   - layout: Feature pairing.
    ///   - scaling: Optional frequency scaling.
    public init(rotaryDim: Int, base: Double = 10_000, maxPositions: Int, layout: Layout = .halfSplit,
                scaling: Scaling? = nil) {
        precondition(rotaryDim > 0 && rotaryDim % 2 == 0, "RoPE rotaryDim must be even and positive, got \(rotaryDim)")
        precondition(maxPositions > 0, "RoPE maxPositions must be positive, got \(maxPositions)")
        precondition(base > 1, "RoPE base must be > 1, got \(base)")
        self.rotaryDim = rotaryDim
        self.base = base
        self.maxPositions = maxPositions
        self.layout = layout
        self.scaling = scaling

        let half = rotaryDim / 2
        let d = Double(rotaryDim)
        var freqs = (0..<half).map { 1 / Foundation.pow(base, Double(2 * $0) / d) }
        var attention = 1.0, softmaxMultiplier = 1.0

        switch scaling {
        case nil:
            break
        case .linear(let factor):
            precondition(factor > 0, "RoPE linear scaling factor must be positive, got \(factor)")
            freqs = freqs.map { $0 / factor }
        case let .yarn(factor, original, betaFast, betaSlow, mscale, mscaleAllDim):
            precondition(factor > 0 && original > 0, "RoPE YaRN needs factor > 0 and originalMaxPositions > 0")
            func m(_ scale: Double, _ k: Double) -> Double { scale <= 1 ? 1 : 0.1 * k * Foundation.log(scale) + 1 }
            // Dimension index at which a pair completes `rotations` turns over the original context.
            func correctionDim(_ rotations: Double) -> Double {
                d * Foundation.log(Double(original) / (rotations * 2 * Double.pi)) / (2 * Foundation.log(base))
            }
            let low = Swift.max(Foundation.floor(correctionDim(betaFast)), 0)
            var high = Swift.min(Foundation.ceil(correctionDim(betaSlow)), d - 1)
            if low == high { high += 0.001 }
            for i in 0..<half {
                // ramp 0 → keep the original frequency (extrapolate), 1 → divide by factor (interpolate).
                let ramp = Swift.min(Swift.max((Double(i) - low) / (high - low), 0), 1)
                freqs[i] = freqs[i] / factor * ramp + freqs[i] * (1 - ramp)
            }
            let ms = mscale ?? 0, msAll = mscaleAllDim ?? 0
            attention = (ms != 0 && msAll != 0) ? m(factor, ms) / m(factor, msAll) : m(factor, 1)
            if msAll != 0 { softmaxMultiplier = m(factor, msAll) * m(factor, msAll) }
        case let .longrope(short, long, _, attentionFactor):
            precondition(short.count == half && long.count == half, "RoPE longrope factors must have rotaryDim/2 entries")
            freqs = zip(freqs, short).map { $0 / $1 }
            attention = attentionFactor
        }
        inverseFrequencies = freqs
        attentionFactor = attention
        softmaxScaleMultiplier = softmaxMultiplier

        let tabulated = 0..<Swift.min(maxPositions, Self.maxTabulatedPositions)
        (cosTable, sinTable) = Self.tables(tabulated, frequencies: freqs, attentionFactor: attention)
        if case let .longrope(_, long, original, _)? = scaling {
            let longFreqs = (0..<half).map { 1 / Foundation.pow(base, Double(2 * $0) / d) / long[$0] }
            let t = Self.tables(tabulated, frequencies: longFreqs, attentionFactor: attention)
            longTables = (t.cos, t.sin, original, longFreqs)
        } else {
            longTables = nil
        }
    }

    /// cos/sin rows (`[positions.count, frequencies.count]`) for `positions`, scaled by `attentionFactor`.
    private static func tables(_ positions: Range<Int>, frequencies freqs: [Double],
                               attentionFactor attention: Double) -> (cos: [Float], sin: [Float]) {
        let half = freqs.count
        var cosT = [Float](repeating: 0, count: positions.count * half)
        var sinT = [Float](repeating: 0, count: positions.count * half)
        for (row, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(p) * freqs[i]
                cosT[row * half + i] = Float(Foundation.cos(angle) * attention)
                sinT[row * half + i] = Float(Foundation.sin(angle) * attention)
            }
        }
        return (cosT, sinT)
    }

    /// Rotates `x` in place; token `t` gets position `positionOffset + t`.
    ///
    /// `x` is `[seq, heads, headDim]` or `[batch, seq, heads, headDim]` (every batch row starts at
    /// `positionOffset`), with `headDim ≥ rotaryDim`.
    public func apply(_ x: inout Tensor, positionOffset: Int = 0) {
        precondition(x.rank == 3 || x.rank == 4,
                     "RoPE.apply expects [seq, heads, headDim] or [batch, seq, heads, headDim], got \(x.shape)")
        let s = x.shape
        let (batch, seq, heads, headDim) = s.count == 4 ? (s[0], s[1], s[2], s[3]) : (1, s[0], s[1], s[2])
        precondition(headDim >= rotaryDim, "RoPE rotaryDim \(rotaryDim) exceeds head dim of shape \(s)")
        guard x.count > 0 else { return }
        x.withUnsafeMutableBufferPointer { p in
            for b in 0..<batch {
                apply(to: p.baseAddress! + b * seq * heads * headDim, seq: seq, heads: heads,
                      rowStride: heads * headDim, headStride: headDim, positionOffset: positionOffset)
            }
        }
    }

    /// Rotates strided head vectors in place, without copies.
    ///
    /// The vector of token `t`, head `h` starts at `base + t·rowStride + h·headStride`; its first ``rotaryDim``
    /// floats are rotated for position `positionOffset + t`, nothing else is touched. Point `base` at the
    /// rotary slice to rotate part of a larger projection, e.g. DeepSeek's `q_pe`:
    /// `apply(to: q + qkNopeHeadDim, seq: n, heads: h, rowStride: h * qkHeadDim, headStride: qkHeadDim, …)`.
    /// Large calls are split over tokens with ``parallelFor(_:_:)``.
    public func apply(to base: UnsafeMutablePointer<Float>, seq: Int, heads: Int, rowStride: Int, headStride: Int,
                      positionOffset: Int = 0) {
        precondition(seq >= 0 && heads >= 0, "RoPE.apply: negative seq \(seq) or heads \(heads)")
        precondition(positionOffset >= 0 && positionOffset + seq <= maxPositions,
                     "RoPE position range \(positionOffset)..<\(positionOffset + seq) exceeds maxPositions \(maxPositions)")
        guard seq > 0 && heads > 0 else { return }
        let half = rotaryDim / 2
        let interleaved = layout == .interleaved
        // LongRoPE: a call whose last position is past the original context uses the long factors (as HF).
        let useLong = longTables.map { positionOffset + seq > $0.originalMaxPositions } ?? false
        // Rows of the tables for positions positionOffset…: the precomputed ones, or (past them) computed now.
        let (cosRows, sinRows, firstRow): ([Float], [Float], Int)
        if positionOffset + seq <= tabulatedPositions {
            (cosRows, sinRows, firstRow) = useLong ? (longTables!.cos, longTables!.sin, positionOffset)
                                                   : (cosTable, sinTable, positionOffset)
        } else {
            let t = Self.tables(positionOffset..<positionOffset + seq,
                                frequencies: useLong ? longTables!.frequencies : inverseFrequencies,
                                attentionFactor: attentionFactor)
            (cosRows, sinRows, firstRow) = (t.cos, t.sin, 0)
        }
        cosRows.withUnsafeBufferPointer { cosT in
            sinRows.withUnsafeBufferPointer { sinT in
                let cosBase = cosT.baseAddress!, sinBase = sinT.baseAddress!
                let rotateTokens = { (start: Int, end: Int) in
                    for t in start..<end {
                        let row = base + t * rowStride
                        let c = cosBase + (firstRow + t) * half
                        let s = sinBase + (firstRow + t) * half
                        for h in 0..<heads {
                            if interleaved {
                                RoPE.rotateInterleaved(row + h * headStride, half: half, cos: c, sin: s)
                            } else {
                                RoPE.rotateHalfSplit(row + h * headStride, half: half, cos: c, sin: s)
                            }
                        }
                    }
                }
                let work = seq * heads * rotaryDim
                if work < 1 << 17 || seq == 1 {
                    rotateTokens(0, seq)
                } else {
                    let chunks = Swift.min(seq, 4 * Threading.workers)
                    parallelFor(chunks) { k in rotateTokens(k * seq / chunks, (k + 1) * seq / chunks) }
                }
            }
        }
    }

    @inline(__always)
    private static func rotateHalfSplit(_ x: UnsafeMutablePointer<Float>, half: Int,
                                        cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>) {
        let y = x + half
        for i in 0..<half {
            let a = x[i], b = y[i]
            x[i] = a * c[i] - b * s[i]
            y[i] = b * c[i] + a * s[i]
        }
    }

    @inline(__always)
    private static func rotateInterleaved(_ x: UnsafeMutablePointer<Float>, half: Int,
                                          cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>) {
        for i in 0..<half {
            let a = x[2 * i], b = x[2 * i + 1]
            x[2 * i] = a * c[i] - b * s[i]
            x[2 * i + 1] = b * c[i] + a * s[i]
        }
    }
}
