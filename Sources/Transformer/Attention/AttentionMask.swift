/// Which (query, key) pairs may attend: one description shared by the FlashAttention kernel and the reference.
///
/// Positions: key `j` sits at position `j`; query `i` sits at `queryOffset + i` (decode against a cache).
/// A pair is allowed when
///
///     j < keyLength[b]  ∧  (¬causal ∨ j ≤ pos)  ∧  ((window ∧ block) ∨ global(pos) ∨ global(j))
///
/// where *window* is |pos − j| ≤ w, *block* looks the pair's blocks up in ``BlockSparseLayout``, and *global* marks
/// tokens that attend to and are attended by every other (Longformer / BigBird global tokens). Rows with no allowed
/// key produce zeros.
public struct AttentionMask: Sendable, Equatable {
    /// Key `j` is visible only to queries at positions ≥ j.
    public var causal: Bool
    /// Position of query row 0 (keys start at position 0).
    public var queryOffset: Int
    /// Sliding window half-width w: |pos − j| ≤ w (Longformer); combine with `causal` for a causal window.
    public var window: Int?
    /// Positions of global tokens.
    public var globalTokens: [Int]
    /// Block-sparse layout (BigBird / Sparse Transformer style).
    public var blockSparse: BlockSparseLayout?
    /// Valid key count per batch entry (key padding); keys at or past it are masked.
    public var keyLengths: [Int]?

    public init(causal: Bool = false, queryOffset: Int = 0, window: Int? = nil, globalTokens: [Int] = [],
                blockSparse: BlockSparseLayout? = nil, keyLengths: [Int]? = nil) {
        self.causal = causal
        self.queryOffset = queryOffset
        self.window = window
        self.globalTokens = globalTokens
        self.blockSparse = blockSparse
        self.keyLengths = keyLengths
    }

    /// No masking at all.
    public static let none = AttentionMask()
    /// Causal (decoder) masking.
    public static let causal = AttentionMask(causal: true)

    /// True when every pair is allowed for keys below the padding length (no per-pair test needed).
    var isDense: Bool { !causal && window == nil && blockSparse == nil }
}

/// A block-level sparsity pattern: `allowed[qb * keyBlocks + kb]` says whether query block `qb` may attend to key
/// block `kb`; blocks are `blockSize` positions square.
public struct BlockSparseLayout: Sendable, Equatable {
    public let blockSize: Int
    public let queryBlocks: Int
    public let keyBlocks: Int
    public let allowed: [Bool]

    public init(blockSize: Int, queryBlocks: Int, keyBlocks: Int, allowed: [Bool]) {
        precondition(blockSize > 0 && allowed.count == queryBlocks * keyBlocks,
                     "block layout needs \(queryBlocks)×\(keyBlocks) entries, got \(allowed.count)")
        self.blockSize = blockSize
        self.queryBlocks = queryBlocks
        self.keyBlocks = keyBlocks
        self.allowed = allowed
    }

    /// BigBird-style layout over `length` positions: a band of `windowBlocks` blocks each side of the diagonal,
    /// the first `globalBlocks` block rows and columns, and `randomBlocks` random key blocks per query block
    /// (seeded, so a seed gives the same layout everywhere).
    public static func bigBird(length: Int, blockSize: Int, windowBlocks: Int = 1, globalBlocks: Int = 1,
                               randomBlocks: Int = 2, seed: UInt64 = 0) -> BlockSparseLayout {
        let n = (length + blockSize - 1) / blockSize
        var allowed = [Bool](repeating: false, count: n * n)
        var rng = SeededGenerator(seed: seed)
        for qb in 0..<n {
            for kb in 0..<n where abs(qb - kb) <= windowBlocks || qb < globalBlocks || kb < globalBlocks {
                allowed[qb * n + kb] = true
            }
            for _ in 0..<randomBlocks where n > 0 { allowed[qb * n + Int(rng.next() % UInt64(n))] = true }
        }
        return BlockSparseLayout(blockSize: blockSize, queryBlocks: n, keyBlocks: n, allowed: allowed)
    }

    @inline(__always)
    func allows(queryPosition p: Int, key j: Int) -> Bool {
        let qb = p / blockSize, kb = j / blockSize
        return qb < queryBlocks && kb < keyBlocks && allowed[qb * keyBlocks + kb]
    }
}

/// How much of a (query rows × key tile) rectangle a mask lets through.
enum TileCoverage {
    case empty, partial, full

    static func && (a: TileCoverage, b: TileCoverage) -> TileCoverage {
        if a == .empty || b == .empty { return .empty }
        return a == .full && b == .full ? .full : .partial
    }

    static func || (a: TileCoverage, b: TileCoverage) -> TileCoverage {
        if a == .full || b == .full { return .full }
        return a == .empty && b == .empty ? .empty : .partial
    }
}

/// An ``AttentionMask`` prepared for one call: global tokens as a lookup table, per-pair and per-tile tests.
struct ResolvedMask {
    let mask: AttentionMask
    let isGlobal: [Bool]  // indexed by position, covers queries and keys
    let hasGlobals: Bool

    init(_ mask: AttentionMask, queries: Int, keys: Int) {
        self.mask = mask
        let extent = max(keys, mask.queryOffset + queries)
        var g = [Bool](repeating: false, count: extent)
        for p in mask.globalTokens where p >= 0 && p < extent { g[p] = true }
        isGlobal = g
        hasGlobals = !mask.globalTokens.isEmpty
    }

    func keyLength(batch b: Int, keys: Int) -> Int { min(keys, mask.keyLengths?[b] ?? keys) }

    /// Whether query position `p` may attend to key `j` (`j` already known to be inside the padding length).
    @inline(__always)
    func allows(position p: Int, key j: Int) -> Bool {
        if mask.causal && j > p { return false }
        var local = true
        if let w = mask.window, abs(p - j) > w { local = false }
        if local, let layout = mask.blockSparse, !layout.allows(queryPosition: p, key: j) { local = false }
        return local || (hasGlobals && (isGlobal[p] || isGlobal[j]))
    }

    /// The allowed keys of query position `p` as one interval, when the mask has that shape (causal, window and
    /// padding only; nil with global tokens or a block layout). `keyLength` is the batch entry's padding length.
    @inline(__always)
    func allowedInterval(position p: Int, keyLength: Int) -> Range<Int>? {
        guard !hasGlobals, mask.blockSparse == nil else { return nil }
        var lo = 0, hi = keyLength
        if mask.causal { hi = min(hi, p + 1) }
        if let w = mask.window {
            lo = max(lo, p - w)
            hi = min(hi, p + w + 1)
        }
        return lo..<max(lo, hi)
    }

    /// Coverage of the rectangle positions `p0...p1` × keys `j0..<j1` (keys already clipped to the padding length).
    func coverage(positions p0: Int, _ p1: Int, keys j0: Int, _ j1: Int) -> TileCoverage {
        let jl = j1 - 1
        var causal = TileCoverage.full
        if mask.causal { causal = j0 > p1 ? .empty : (jl <= p0 ? .full : .partial) }
        var local = TileCoverage.full
        if let w = mask.window {
            if j0 > p1 + w || jl < p0 - w { local = .empty } else if jl <= p0 + w && j0 >= p1 - w { local = .full } else {
                local = .partial
            }
        }
        if local != .empty, let layout = mask.blockSparse {
            var any = false, all = true
            for qb in (p0 / layout.blockSize)...(p1 / layout.blockSize) {
                for kb in (j0 / layout.blockSize)...(jl / layout.blockSize) {
                    let ok = qb < layout.queryBlocks && kb < layout.keyBlocks && layout.allowed[qb * layout.keyBlocks + kb]
                    any = any || ok
                    all = all && ok
                }
            }
            local = local && (all ? .full : (any ? .partial : .empty))
        }
        var global = TileCoverage.empty
        if hasGlobals && local != .full {
            if isGlobal[p0...p1].contains(true) || isGlobal[j0..<j1].contains(true) { global = .partial }
        }
        return causal && (local || global)
    }

    /// Keys `lo..<hi` outside of which no key can be allowed for positions `p0...p1` (tile iteration bounds).
    func keyBounds(positions p0: Int, _ p1: Int, keyLength: Int) -> Range<Int> {
        var hi = keyLength
        if mask.causal { hi = min(hi, p1 + 1) }
        var lo = 0
        if !hasGlobals, mask.blockSparse == nil, let w = mask.window {
            lo = max(0, p0 - w)
            hi = min(hi, p1 + w + 1)
        }
        return lo..<max(lo, hi)
    }
}
