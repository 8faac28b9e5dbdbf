import Foundation

// The n-d float32 tensor: contiguous row-major storage with value semantics (copy-on-write).
//
// Naming: the module is `Tensor` and so is its main type. Inside other modules `Tensor` always resolves to the
// type; the only thing that does not work is the fully qualified `Tensor.Tensor`, which no client needs (see README).

/// Reference-counted, 64-byte aligned float buffer behind a ``Tensor``.
@usableFromInline
final class TensorStorage: @unchecked Sendable {
    @usableFromInline let pointer: UnsafeMutablePointer<Float>
    @usableFromInline let count: Int

    @usableFromInline
    init(count: Int) {
        precondition(count >= 0, "negative element count \(count)")
        self.count = count
        pointer = BufferPool.shared.allocate(floats: count)
    }

    @usableFromInline
    func copy() -> TensorStorage {
        let s = TensorStorage(count: count)
        s.pointer.update(from: pointer, count: count)
        return s
    }

    deinit { BufferPool.shared.release(pointer, floats: count) }
}

/// Keeps recently freed large buffers for reuse. A forward pass allocates the same activation sizes over and over;
/// fresh multi-megabyte allocations come from `mmap` and pay a page fault per 4 KiB on first touch (measured: ≈ 12%
/// of a 1024³ matmul), while a reused buffer is already mapped. Small buffers go straight to the allocator.
final class BufferPool: @unchecked Sendable {
    static let shared = BufferPool()
    /// Buffers of at least this many floats (1 MiB) are pooled.
    static let minimumFloats = 1 << 18
    /// At most this many bytes are kept idle.
    static let capacityBytes = 512 << 20

    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var idleBytes = 0
    private var lock = pthread_mutex_t()

    init() { pthread_mutex_init(&lock, nil) }

    func allocate(floats: Int) -> UnsafeMutablePointer<Float> {
        if floats >= Self.minimumFloats {
            pthread_mutex_lock(&lock)
            if let p = free[floats]?.popLast() {
                idleBytes -= floats * MemoryLayout<Float>.stride
                pthread_mutex_unlock(&lock)
                return p
            }
            pthread_mutex_unlock(&lock)
        }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: Swift.max(floats, 1) * MemoryLayout<Float>.stride, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: Swift.max(floats, 1))
    }

    func release(_ p: UnsafeMutablePointer<Float>, floats: Int) {
        let bytes = floats * MemoryLayout<Float>.stride
        if floats >= Self.minimumFloats {
            pthread_mutex_lock(&lock)
            if idleBytes + bytes <= Self.capacityBytes {
                free[floats, default: []].append(p)
                idleBytes += bytes
                pthread_mutex_unlock(&lock)
                return
            }
            pthread_mutex_unlock(&lock)
        }
        UnsafeMutableRawPointer(p).deallocate()
    }
}

/// An n-dimensional array of `Float` in contiguous row-major order.
///
/// `Tensor` is a value type: copies share storage until one of them is mutated (copy-on-write).
/// Shape mismatches at public entry points stop with a message naming both shapes.
///
/// ```swift
/// let x = Tensor.randomNormal([2, 3], seed: 42)
/// let y = (x * 2 + 1).softmax()
/// ```
public struct Tensor: @unchecked Sendable {
    /// Extent of each axis, outermost first.
    public internal(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// Number of elements (product of ``shape``).
    @inlinable public var count: Int { storage.count }
    /// Number of axes.
    @inlinable public var rank: Int { shape.count }

    /// Creates an uninitialised tensor; callers must write every element before reading.
    public init(uninitializedShape shape: [Int]) {
        self.shape = shape
        self.storage = TensorStorage(count: Tensor.elementCount(shape))
    }

    /// A tensor of the given shape filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        self.init(uninitializedShape: shape)
        storage.pointer.initialize(repeating: value, count: count)
    }

    /// A tensor from row-major `values`; `values.count` must equal the product of `shape`.
    public init(shape: [Int], values: [Float]) {
        precondition(Tensor.elementCount(shape) == values.count,
                     "shape \(shape) needs \(Tensor.elementCount(shape)) values, got \(values.count)")
        self.init(uninitializedShape: shape)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    /// A 1-D tensor of `values`.
    public init(_ values: [Float]) { self.init(shape: [values.count], values: values) }

    /// A scalar (rank-0) tensor.
    public init(scalar: Float) { self.init(shape: [], values: [scalar]) }

    @usableFromInline
    static func elementCount(_ shape: [Int]) -> Int {
        var n = 1
        for d in shape {
            precondition(d >= 0, "negative dimension in shape \(shape)")
            n *= d
        }
        return n
    }

    // MARK: Creation

    /// All zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 0) }
    /// All ones.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 1) }
    /// Every element equal to `value`.
    public static func filled(_ shape: [Int], _ value: Float) -> Tensor { Tensor(shape: shape, repeating: value) }

    /// `[0, 1, …)` up to but excluding `end`, as a 1-D tensor.
    public static func arange(_ end: Float) -> Tensor { arange(0, end) }

    /// `[start, start + step, …)` up to but excluding `end`, as a 1-D tensor.
    public static func arange(_ start: Float, _ end: Float, step: Float = 1) -> Tensor {
        precondition(step != 0, "arange step must be non-zero")
        let n = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        var t = Tensor(uninitializedShape: [n])
        t.withUnsafeMutableBufferPointer { p in for i in 0..<n { p[i] = start + Float(i) * step } }
        return t
    }

    // MARK: Element access

    /// Flat (row-major) storage as an array.
    public var scalars: [Float] { withUnsafeBufferPointer { Array($0) } }

    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item needs a one-element tensor, shape is \(shape)")
        return storage.pointer[0]
    }

    /// Row-major strides (elements) of ``shape``.
    public var strides: [Int] {
        var s = [Int](repeating: 1, count: rank)
        var acc = 1
        for i in stride(from: rank - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    @inlinable
    func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == rank, "index \(index) has \(index.count) axes, tensor shape \(shape) has \(rank)")
        var flat = 0
        for (i, (ix, d)) in zip(index, shape).enumerated() {
            precondition(ix >= 0 && ix < d, "index \(index) out of range on axis \(i) of shape \(shape)")
            flat = flat * d + ix
        }
        return flat
    }

    /// Element at a full n-d index.
    public subscript(_ index: Int...) -> Float {
        get { storage.pointer[flatIndex(index)] }
        set { makeUnique(); storage.pointer[flatIndex(index)] = newValue }
    }

    /// Reads the storage.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: count))
    }

    /// Writes the storage (copying it first if it is shared).
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: count))
    }

    @inlinable
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Same storage, new shape with the same element count; one dimension may be `-1` (inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let hole = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != hole }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            s[hole] = count / known
        }
        precondition(Tensor.elementCount(s) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        var t = self
        t.shape = s
        return t
    }
}

extension Tensor {
    /// True when both tensors share one storage buffer (e.g. tied embedding and output weights).
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }
}

extension Tensor: Equatable {
    /// Exact equality of shape and every element.
    public static func == (a: Tensor, b: Tensor) -> Bool {
        a.shape == b.shape && a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in pa.elementsEqual(pb) } }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { String(format: "%.4g", Double($0)) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", …" : "")])"
    }
}

extension Tensor {
    /// Largest absolute elementwise difference; shapes must match.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shapes differ: \(shape) vs \(other.shape)")
        return withUnsafeBufferPointer { a in
            other.withUnsafeBufferPointer { b in
                var m: Float = 0
                for i in 0..<a.count { m = Swift.max(m, abs(a[i] - b[i])) }
                return m
            }
        }
    }

    /// True when every |a − b| ≤ atol + rtol·|b| (the `torch.allclose` rule) and shapes match; NaN never matches.
    public func isClose(to reference: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6) -> Bool {
        guard shape == reference.shape else { return false }
        return withUnsafeBufferPointer { a in
            reference.withUnsafeBufferPointer { b in
                for i in 0..<a.count {
                    if a[i] == b[i] { continue }  // also equal infinities
                    if a[i].isInfinite || b[i].isInfinite { return false }  // else |a − ∞| = ∞ ≤ rtol·∞ would pass
                    if !(abs(a[i] - b[i]) <= atol + rtol * abs(b[i])) { return false }
                }
                return true
            }
        }
    }
}
