import Foundation

/// The key/value cache: per layer, preallocated rows for every position of the context.
///
/// A forward pass over `n` new tokens writes their keys and values at positions `length..<length + n` of every
/// layer, attends over `0..<length + n`, and then ``advance(by:)`` moves `length`. Decoding one token therefore costs
/// one row of K/V per layer instead of recomputing the prefix. Each layer decides what a "row" is:
/// `kvHeads × headDim` keys and values for MHA/GQA/MQA, or (kv_lora_rank + qk_rope_head_dim) latent floats for
/// DeepSeek's absorbed MLA (whose values are read from the same rows).
public final class KVCache: @unchecked Sendable {
    /// Storage of one layer: `keys` rows of `keyWidth` floats, `values` rows of `valueWidth` floats (or none).
    public final class Layer: @unchecked Sendable {
        public let keyWidth: Int
        public let valueWidth: Int
        public let keys: UnsafeMutablePointer<Float>
        public let values: UnsafeMutablePointer<Float>?
        /// Positions each row array holds.
        public let capacity: Int

        init(capacity: Int, keyWidth: Int, valueWidth: Int) {
            self.capacity = capacity
            self.keyWidth = keyWidth
            self.valueWidth = valueWidth
            keys = .allocate(capacity: max(1, capacity * keyWidth))
            values = valueWidth > 0 ? .allocate(capacity: max(1, capacity * valueWidth)) : nil
        }

        deinit {
            keys.deallocate()
            values?.deallocate()
        }

        /// The one way into the cache: fills positions `position..<position + count`. `fill(t, key, value)` writes
        /// position `position + t`: `key` is its `keyWidth` floats, `value` its `valueWidth` floats (nil when the layer
        /// keeps no separate values, as absorbed MLA's latent rows).
        public func write(at position: Int, count: Int,
                          _ fill: (_ t: Int, _ key: UnsafeMutableBufferPointer<Float>, _ value: UnsafeMutableBufferPointer<Float>?) -> Void) {
            precondition(position >= 0 && count >= 0 && position + count <= capacity,
                         "KV cache write of \(count) positions at \(position) outside the capacity \(capacity)")
            for t in 0..<count {
                let key = UnsafeMutableBufferPointer(start: keys + (position + t) * keyWidth, count: keyWidth)
                let value = values.map { UnsafeMutableBufferPointer(start: $0 + (position + t) * valueWidth, count: valueWidth) }
                fill(t, key, value)
            }
        }

        /// Writes `count` positions from rows of a projection: keys from `key`, values from `value` (row stride
        /// `stride` floats for both).
        public func write(key: UnsafePointer<Float>, value: UnsafePointer<Float>, stride: Int, count: Int, at position: Int) {
            write(at: position, count: count) { t, k, v in
                k.baseAddress!.update(from: key + t * stride, count: keyWidth)
                v!.baseAddress!.update(from: value + t * stride, count: valueWidth)
            }
        }

        /// Attention of `queries` new tokens at positions `position..<position + queries` (already written) over the
        /// cache's first `position + queries` positions — the one place a block builds the kernel's operands.
        ///
        /// Query row t, head h starts at `query + t·queryRowStride + h·headDim`; output is dense `[queries, heads,
        /// valueDim]`. Key rows hold `kvHeads × headDim` floats; values come from the value rows (`kvHeads ×
        /// valueDim`), or — for a layer without them — from the first `valueDim` floats of each key row (MQA over
        /// MLA's latent). The mask is causal from `position` unless `options` says more.
        public func attend(query: UnsafePointer<Float>, queryRowStride: Int, queries: Int, at position: Int,
                           heads: Int, kvHeads: Int, headDim: Int, valueDim: Int,
                           output: UnsafeMutablePointer<Float>, options: Attention.Options) {
            precondition(kvHeads * headDim == keyWidth && (values == nil ? valueDim <= keyWidth && kvHeads == 1
                                                                          : kvHeads * valueDim == valueWidth),
                         "attention geometry does not match this cache layer's rows")
            let g = Attention.Geometry(batch: 1, queries: queries, keys: position + queries, heads: heads,
                                       kvHeads: kvHeads, headDim: headDim, valueDim: valueDim)
            var ops = Attention.Operands(query: query, key: keys, value: values ?? keys, output: output, geometry: g)
            ops.queryRowStride = queryRowStride
            if values == nil {
                ops.valueRowStride = keyWidth
                ops.valueBatchStride = g.keys * keyWidth
            }
            var options = options
            options.mask.causal = true
            options.mask.queryOffset = position
            Attention.flash(g, ops, options: options)
        }
    }

    /// Positions the cache can hold.
    public let capacity: Int
    /// Positions filled so far.
    public private(set) var length = 0
    public let layers: [Layer]

    /// A cache for `capacity` positions; `widths[i]` gives layer i's (key, value) floats per position.
    public init(capacity: Int, widths: [(key: Int, value: Int)]) {
        precondition(capacity > 0, "KV cache capacity must be positive")
        self.capacity = capacity
        layers = widths.map { Layer(capacity: capacity, keyWidth: $0.key, valueWidth: $0.value) }
    }

    /// A cache for `capacity` positions, or ``GenerationError/invalidCapacity(_:)`` /
    /// ``GenerationError/cacheTooLarge(bytes:available:)`` when `capacity` is not positive or the cache would
    /// overflow `Int` or exceed the machine's physical memory: what callers sizing a cache from user input
    /// (a context length, a token count) should use.
    public static func checked(capacity: Int, widths: [(key: Int, value: Int)]) throws -> KVCache {
        guard capacity > 0 else { throw GenerationError.invalidCapacity(capacity) }
        var perToken = 0
        for w in widths {
            guard w.key >= 0, w.value >= 0 else { throw GenerationError.invalidCapacity(capacity) }
            let (sum, o1) = perToken.addingReportingOverflow(w.key)
            let (sum2, o2) = sum.addingReportingOverflow(w.value)
            guard !o1 && !o2 else { throw GenerationError.cacheTooLarge(bytes: Int.max, available: physicalMemory) }
            perToken = sum2
        }
        let (floats, o) = perToken.multipliedReportingOverflow(by: capacity)
        let (bytes, o2) = floats.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard !o && !o2, bytes <= physicalMemory else {
            throw GenerationError.cacheTooLarge(bytes: o || o2 ? Int.max : bytes, available: physicalMemory)
        }
        return KVCache(capacity: capacity, widths: widths)
    }

    private static var physicalMemory: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }

    /// Bytes the cache stores per position over all layers.
    public var bytesPerToken: Int { layers.reduce(0) { $0 + ($1.keyWidth + $1.valueWidth) * MemoryLayout<Float>.stride } }

    /// Total bytes allocated.
    public var bytesAllocated: Int { bytesPerToken * capacity }

    /// Positions still free.
    public var remaining: Int { capacity - length }

    /// Throws when `count` more positions do not fit.
    public func reserve(_ count: Int) throws {
        guard count <= remaining else {
            let (needed, overflow) = length.addingReportingOverflow(count)
            throw GenerationError.contextOverflow(needed: overflow ? Int.max : needed, capacity: capacity)
        }
    }

    /// Marks `count` more positions as filled (after every layer wrote them).
    public func advance(by count: Int) {
        precondition(count <= remaining, "KV cache overflow")
        length += count
    }

    /// Forgets everything (keeps the memory).
    public func reset() { length = 0 }

    /// Forgets positions from `newLength` on (e.g. to rewind to a shared prefix).
    public func truncate(to newLength: Int) {
        precondition(newLength >= 0 && newLength <= length, "truncate(to: \(newLength)) outside 0...\(length)")
        length = newLength
    }
}

/// Errors of running and generating.
public enum GenerationError: Error, CustomStringConvertible, Equatable {
    case contextOverflow(needed: Int, capacity: Int)
    case tokenOutOfRange(id: Int, vocabularySize: Int)
    case emptyInput
    /// More positions than the model's context (`max_position_embeddings`) allows.
    case contextTooLong(needed: Int, maxPositions: Int)
    /// A KV-cache capacity that is not positive.
    case invalidCapacity(Int)
    /// A KV cache larger than the machine's memory.
    case cacheTooLarge(bytes: Int, available: Int)

    public var description: String {
        switch self {
        case .contextOverflow(let needed, let capacity):
            return "context overflow: \(needed) positions needed, the KV cache holds \(capacity)"
        case .tokenOutOfRange(let id, let vocab): return "token id \(id) is outside the vocabulary (size \(vocab))"
        case .emptyInput: return "no input tokens"
        case .contextTooLong(let needed, let max):
            return "context overflow: \(needed) positions needed, the model's context (max_position_embeddings) is \(max)"
        case .invalidCapacity(let c): return "KV cache capacity (context length) must be positive, got \(c)"
        case .cacheTooLarge(let bytes, let available):
            return "a KV cache of \(bytes == Int.max ? "more than Int.max" : "\(bytes)") bytes does not fit in memory "
                + "(\(available) bytes): use a shorter context"
        }
    }
}
