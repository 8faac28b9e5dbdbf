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

        init(capacity: Int, keyWidth: Int, valueWidth: Int) {
            self.keyWidth = keyWidth
            self.valueWidth = valueWidth
            keys = .allocate(capacity: max(1, capacity * keyWidth))
            values = valueWidth > 0 ? .allocate(capacity: max(1, capacity * valueWidth)) : nil
        }

        deinit {
            keys.deallocate()
            values?.deallocate()
        }

        /// Copies `rows` rows (row stride `stride` floats, `keyWidth` wide) into key positions `at..<at + rows`.
        public func writeKeys(_ src: UnsafePointer<Float>, rows: Int, stride: Int, at position: Int) {
            for r in 0..<rows { (keys + (position + r) * keyWidth).update(from: src + r * stride, count: keyWidth) }
        }

        /// Copies value rows, like ``writeKeys(_:rows:stride:at:)``.
        public func writeValues(_ src: UnsafePointer<Float>, rows: Int, stride: Int, at position: Int) {
            guard let values else { preconditionFailure("this cache layer stores no separate values") }
            for r in 0..<rows { (values + (position + r) * valueWidth).update(from: src + r * stride, count: valueWidth) }
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
