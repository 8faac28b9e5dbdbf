import Foundation

// Reading GGUF files (llama.cpp's model format, versions 2 and 3, little-endian):
//
//     u32 magic "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//     metadata_kv_count × { string key | u32 value type | value }
//     tensor_count × { string name | u32 n_dims | u64 dims[n_dims] | u32 ggml type | u64 offset }
//     padding to `general.alignment` (default 32) | data section (tensor offsets are relative to its start)
//
// where a string is a u64 byte length followed by UTF-8 bytes, and an array value is u32 element type | u64 count |
// elements. ggml lists dims innermost first (dims[0] varies fastest), so a tensor's row-major shape is the reversed
// dims: a ggml [in, out] weight is read as a Tensor [out, in], the Hugging Face layout.
//
// The file is memory-mapped and the whole header is validated at open: every read is bounds-checked, every count is
// checked against the bytes left before anything is allocated for it, and every tensor's data must lie, aligned,
// inside the file. A corrupt or hostile file therefore fails with a descriptive error instead of crashing or
// allocating absurd amounts of memory. Tensors are dequantised to float32 on request (GGUFQuantization.swift).

#if _endian(big)
#error("GGUF reading assumes a little-endian host")
#endif

// MARK: - Errors

/// A problem with a GGUF file.
///
/// The description names the file, the metadata key or tensor (when there is one) and the problem, e.g.
/// `gguf /m/model.gguf, tensor 'blk.0.attn_q.weight': tensor data past end of file: bytes 4096..<8704 of the data
/// section, which is 6000 bytes`.
public struct GGUFError: Error, CustomStringConvertible, Sendable {
    /// What went wrong; the raw value is the phrase used in ``description``.
    public enum Kind: String, Sendable {
        case unreadable = "cannot read file"
        case badMagic = "not a GGUF file (bad magic)"
        case unsupportedVersion = "unsupported version"
        case truncated = "truncated file"
        case countTooLarge = "count too large for the file"
        case unknownValueType = "unknown metadata value type"
        case nestingTooDeep = "arrays nested too deeply"
        case duplicateKey = "duplicate metadata key"
        case invalidAlignment = "invalid alignment"
        case tooManyDimensions = "too many dimensions"
        case invalidShape = "invalid shape"
        case unknownTensorType = "unknown tensor type"
        case unsupportedTensorType = "unsupported tensor type"
        case dataPastEnd = "tensor data past end of file"
        case misalignedOffset = "misaligned tensor offset"
        case duplicateTensor = "duplicate tensor name"
        case tensorNotFound = "no such tensor"
    }

    /// The kind of problem.
    public let kind: Kind
    /// The file concerned.
    public let file: URL
    /// The metadata key concerned, if any.
    public let key: String?
    /// The tensor concerned, if any.
    public let tensor: String?
    /// Specifics: the offending values and what was expected.
    public let detail: String

    public init(kind: Kind, file: URL, key: String? = nil, tensor: String? = nil, detail: String) {
        self.kind = kind
        self.file = file
        self.key = key
        self.tensor = tensor
        self.detail = detail
    }

    public var description: String {
        var subject = file.path
        if let key { subject += ", key '\(key)'" }
        if let tensor { subject += ", tensor '\(tensor)'" }
        return "gguf \(subject): \(kind.rawValue): \(detail)"
    }
}

// MARK: - Metadata values

/// One GGUF metadata value.
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    /// Elements all of one type (arrays may nest).
    case array([GGUFValue])
    case uint64(UInt64)
    case int64(Int64)
    case float64(Double)

    /// Any integer value that fits in `Int` (not bools).
    public var int: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// Any float value, or an integer value converted to `Double` (a hyperparameter such as a RoPE base may be
    /// written either way).
    public var float: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        case .uint64(let v): Double(v)
        default: int.map(Double.init)
        }
    }

    /// The value of a bool.
    public var bool: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    /// The value of a string.
    public var string: String? {
        if case .string(let v) = self { return v }
        return nil
    }

    /// The elements of an array.
    public var array: [GGUFValue]? {
        if case .array(let v) = self { return v }
        return nil
    }

    /// An array whose elements are all strings.
    public var strings: [String]? {
        guard case .array(let elements) = self else { return nil }
        var out: [String] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard case .string(let s) = element else { return nil }
            out.append(s)
        }
        return out
    }

    /// An array whose elements are all integers fitting in `Int`.
    public var ints: [Int]? {
        guard case .array(let elements) = self else { return nil }
        var out: [Int] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard let v = element.int else { return nil }
            out.append(v)
        }
        return out
    }

    /// An array whose elements are all numbers (see ``float``), as `Float`.
    public var floats: [Float]? {
        guard case .array(let elements) = self else { return nil }
        var out: [Float] = []
        out.reserveCapacity(elements.count)
        for element in elements {
            guard let v = element.float else { return nil }
            out.append(Float(v))
        }
        return out
    }
}

extension GGUFValue: CustomStringConvertible {
    /// The value as written in Python: `48`, `0.5`, `true`, `"text"`, `[1, 2, 3]`; arrays longer than 8 elements
    /// are abbreviated (`[…, … (49152 elements)]`).
    public var description: String {
        switch self {
        case .uint8(let v): "\(v)"
        case .int8(let v): "\(v)"
        case .uint16(let v): "\(v)"
        case .int16(let v): "\(v)"
        case .uint32(let v): "\(v)"
        case .int32(let v): "\(v)"
        case .uint64(let v): "\(v)"
        case .int64(let v): "\(v)"
        case .float32(let v): "\(v)"
        case .float64(let v): "\(v)"
        case .bool(let v): "\(v)"
        case .string(let v): v.debugDescription
        case .array(let v):
            v.count <= 8 ? "[\(v.map(\.description).joined(separator: ", "))]"
                : "[\(v.prefix(3).map(\.description).joined(separator: ", ")), … (\(v.count) elements)]"
        }
    }
}

/// The value type codes of the format.
enum GGUFValueType: UInt32 {
    case uint8 = 0, int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64

    /// Fewest bytes a value of this type occupies (a string is at least its length, an array its type and count).
    var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }

    var name: String { String(describing: self).uppercased() }
}

// MARK: - Tensor types

/// A ggml tensor element type (the `type` field of a tensor info).
///
/// All types of current ggml are known by name and size so that any file opens (its metadata readable, its layout
/// validated); ``GGUFFile/tensor(_:)`` dequantises the types in ``dequantizable``: F32, F16, BF16, Q8_0, Q4_0,
/// Q4_1, Q5_0, Q5_1 and the K-quants Q2_K … Q6_K.
public struct GGMLType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    public static let q4_0 = GGMLType(rawValue: 2)
    public static let q4_1 = GGMLType(rawValue: 3)
    public static let q5_0 = GGMLType(rawValue: 6)
    public static let q5_1 = GGMLType(rawValue: 7)
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let q2_K = GGMLType(rawValue: 10)
    public static let q3_K = GGMLType(rawValue: 11)
    public static let q4_K = GGMLType(rawValue: 12)
    public static let q5_K = GGMLType(rawValue: 13)
    public static let q6_K = GGMLType(rawValue: 14)
    public static let bf16 = GGMLType(rawValue: 30)

    /// Name, block size (elements) and block byte size of every type in ggml's `ggml_type` (gguf-py's
    /// `GGML_QUANT_SIZES`). Numbers not listed (4, 5, 31–33, 36–38: removed types) are unknown.
    static let traits: [UInt32: (name: String, blockSize: Int, blockBytes: Int)] = [
        0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
        6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
        10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
        14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
        18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
        22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4),
        27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54),
        35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
    ]

    /// The types ``GGUFFile/tensor(_:)`` can dequantise.
    public static let dequantizable: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1,
                                                   .q2_K, .q3_K, .q4_K, .q5_K, .q6_K]

    /// Whether ggml defines this type number.
    public var isKnown: Bool { Self.traits[rawValue] != nil }
    /// ggml's name (`"Q4_1"`), or `"type 99"` for an unknown number.
    public var name: String { Self.traits[rawValue]?.name ?? "type \(rawValue)" }
    /// Elements per block (1 for plain types); nil if unknown.
    public var blockSize: Int? { Self.traits[rawValue]?.blockSize }
    /// Bytes per block; nil if unknown.
    public var blockBytes: Int? { Self.traits[rawValue]?.blockBytes }

    /// `"Q4_1 (3)"`.
    public var description: String { "\(name) (\(rawValue))" }
}

// MARK: - Tensor infos

/// Layout of one tensor in a ``GGUFFile``.
public struct GGUFTensorInfo: Equatable, Sendable {
    /// The tensor's name.
    public let name: String
    /// Extents in ggml order: `dimensions[0]` is the innermost (fastest-varying) axis. Empty for a scalar.
    public let dimensions: [Int]
    /// Element type.
    public let type: GGMLType
    /// Start of the data, relative to ``GGUFFile/dataOffset``.
    public let offset: Int
    /// Size of the data in bytes.
    public let byteCount: Int

    /// Row-major shape (outermost first): the reversed ``dimensions``.
    public var shape: [Int] { dimensions.reversed() }
    /// Number of elements.
    public var elementCount: Int { dimensions.reduce(1, *) }
}

// MARK: - File

/// A GGUF file (v2 or v3), memory-mapped and validated once at open; tensors are dequantised on request, or used in
/// place (``quantizedMatrix(_:)``: blocks and F32/F16 matrices read straight from the mapping).
///
/// ```swift
/// let file = try GGUFFile(url: url)
/// let layers = file.metadata["llama.block_count"]?.int
/// let vocab = file.metadata["tokenizer.ggml.tokens"]?.strings
/// let wq = try file.tensor("blk.0.attn_q.weight")   // [out, in]
/// ```
public struct GGUFFile: Sendable {
    /// Default of `general.alignment`.
    public static let defaultAlignment = 32
    /// Most dimensions a tensor may have (`GGML_MAX_DIMS`).
    public static let maxDimensions = 4
    /// Deepest nesting of metadata arrays accepted.
    public static let maxArrayNesting = 16

    /// The file this was opened from.
    public let url: URL
    /// Format version (2 or 3).
    public let version: Int
    /// Every metadata key and value.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Every tensor's layout, by name.
    public let tensors: [String: GGUFTensorInfo]
    /// Tensor names in file order.
    public let tensorNames: [String]
    /// Data alignment (`general.alignment`, default 32).
    public let alignment: Int
    /// Absolute file offset of the data section.
    public let dataOffset: Int
    /// The file's bytes: a read-only private mapping (or, for ``init(data:url:)``, a copy), shared by every
    /// ``QuantizedMatrix`` made from it and unmapped when the last of them is gone.
    let mapping: MappedFile

    /// Maps the file (`mmap`, read-only, private) and parses and validates its header. Nothing is read up front:
    /// pages are faulted in as tensors are used.
    ///
    /// - Throws: ``GGUFError`` for an unreadable file or any violation of the format.
    public init(url: URL) throws {
        let mapping: MappedFile
        do {
            mapping = try MappedFile(path: url.path)
        } catch {
            throw GGUFError(kind: .unreadable, file: url, detail: "\(error)")
        }
        try self.init(mapping: mapping, url: url)
    }

    /// Parses a file already in memory (copied); `url` only names it in errors.
    init(data: Data, url: URL) throws {
        try self.init(mapping: MappedFile(copying: data), url: url)
    }

    private init(mapping: MappedFile, url: URL) throws {
        self.url = url
        self.mapping = mapping
        let header = try {
            var parser = GGUFParser(bytes: mapping.bytes, file: url)
            return try parser.parse()
        }()
        version = header.version
        metadata = header.metadata
        metadataKeys = header.metadataKeys
        tensors = header.tensors
        tensorNames = header.tensorNames
        alignment = header.alignment
        dataOffset = header.dataOffset
    }

    /// Metadata value for `key`, or nil.
    public subscript(key: String) -> GGUFValue? { metadata[key] }

    /// `general.architecture`, e.g. `"llama"`.
    public var architecture: String? { metadata["general.architecture"]?.string }

    /// Tensor `name` dequantised to float32, in row-major shape (the reversed ggml dims).
    ///
    /// - Throws: ``GGUFError`` if there is no such tensor or its type is not one of ``GGMLType/dequantizable``.
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        guard GGMLType.dequantizable.contains(info.type) else {
            let supported = GGMLType.dequantizable.map(\.name).joined(separator: ", ")
            throw GGUFError(kind: .unsupportedTensorType, file: url, tensor: name,
                            detail: "\(info.type) cannot be dequantised; supported types are \(supported)")
        }
        var result = Tensor(uninitializedShape: info.shape)
        let rowLength = info.dimensions.first ?? 1
        result.withUnsafeMutableBufferPointer { out in
            withRawBytes(info) { raw in
                GGUFDequantizer.dequantize(raw, type: info.type, rowLength: rowLength, into: out)
            }
        }
        return result
    }

    /// Calls `body` with the raw (still quantised) bytes of tensor `name`, a view into the mapped file.
    ///
    /// - Throws: ``GGUFError`` if there is no such tensor, or what `body` throws.
    public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try withRawBytes(try info(name), body)
    }

    private func info(_ name: String) throws -> GGUFTensorInfo {
        guard let info = tensors[name] else {
            throw GGUFError(kind: .tensorNotFound, file: url, tensor: name, detail: "the file has no tensor of that name")
        }
        return info
    }

    private func withRawBytes<R>(_ info: GGUFTensorInfo, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(rawBytes(info))
    }

    /// The bytes of a tensor inside ``mapping`` (valid while the mapping lives).
    func rawBytes(_ info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let start = dataOffset + info.offset
        return UnsafeRawBufferPointer(rebasing: mapping.bytes[start..<start + info.byteCount])
    }

    /// Size of the file in bytes.
    public var fileSize: Int { mapping.bytes.count }
}

// MARK: - Parsing

/// The validated header of a file.
private struct GGUFHeader {
    var version = 0
    var metadata: [String: GGUFValue] = [:]
    var metadataKeys: [String] = []
    var tensors: [String: GGUFTensorInfo] = [:]
    var tensorNames: [String] = []
    var alignment = GGUFFile.defaultAlignment
    var dataOffset = 0
}

/// Bounds-checked little-endian reader over the mapped file; errors name the key or tensor being read.
private struct GGUFParser {
    let bytes: UnsafeRawBufferPointer
    let file: URL
    var position = 0
    /// What is being read, for error messages: the key or tensor, else a description of the place (`context`).
    var key: String?
    var tensor: String?
    var context: String? = "header"

    init(bytes: UnsafeRawBufferPointer, file: URL) {
        self.bytes = bytes
        self.file = file
    }

    var remaining: Int { bytes.count - position }

    func fail(_ kind: GGUFError.Kind, _ detail: String) -> GGUFError {
        GGUFError(kind: kind, file: file, key: key, tensor: tensor, detail: context.map { "\($0): \(detail)" } ?? detail)
    }

    /// Throws unless `count` more bytes are available for `item`.
    func need(_ count: Int, for item: String) throws {
        guard count <= remaining else {
            throw fail(.truncated, "\(item) needs \(count) bytes at offset \(position), "
                       + "but the file is \(bytes.count) bytes")
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ item: String) throws -> T {
        try need(MemoryLayout<T>.size, for: item)
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
        position += MemoryLayout<T>.size
        return v
    }

    /// A u64 count that must fit in `Int` and whose `count × minimumSize` bytes must remain in the file.
    mutating func readCount(_ item: String, minimumSize: Int) throws -> Int {
        let raw = try read(UInt64.self, item)
        let fits = raw <= UInt64(Int.max) && (minimumSize == 0 || Int(raw) <= remaining / minimumSize)
        guard fits else {
            let each = minimumSize == 1 ? "" : " × at least \(minimumSize) bytes"
            throw fail(.countTooLarge, "\(item) \(raw)\(each) runs past the end of the file "
                       + "(only \(remaining) bytes remain after offset \(position))")
        }
        return Int(raw)
    }

    mutating func readString(_ item: String) throws -> String {
        let length = try readCount("\(item) length", minimumSize: 1)
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[position..<position + length]), as: UTF8.self)
        position += length
        return s
    }

    mutating func readValueType(_ item: String) throws -> GGUFValueType {
        let raw = try read(UInt32.self, item)
        guard let type = GGUFValueType(rawValue: raw) else {
            throw fail(.unknownValueType, "\(item) \(raw) at offset \(position - 4) is not one of 0...12")
        }
        return type
    }

    mutating func readValue(_ type: GGUFValueType, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, "UINT8 value"))
        case .int8: return .int8(try read(Int8.self, "INT8 value"))
        case .uint16: return .uint16(try read(UInt16.self, "UINT16 value"))
        case .int16: return .int16(try read(Int16.self, "INT16 value"))
        case .uint32: return .uint32(try read(UInt32.self, "UINT32 value"))
        case .int32: return .int32(try read(Int32.self, "INT32 value"))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, "FLOAT32 value")))
        case .uint64: return .uint64(try read(UInt64.self, "UINT64 value"))
        case .int64: return .int64(try read(Int64.self, "INT64 value"))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, "FLOAT64 value")))
        case .bool:
            let b = try read(UInt8.self, "BOOL value")
            return .bool(b != 0)
        case .string: return .string(try readString("string"))
        case .array:
            guard depth < GGUFFile.maxArrayNesting else {
                throw fail(.nestingTooDeep, "more than \(GGUFFile.maxArrayNesting) levels of nested arrays")
            }
            let elementType = try readValueType("array element type")
            let count = try readCount("array count", minimumSize: elementType.minimumSize)
            var elements: [GGUFValue] = []
            elements.reserveCapacity(count)
            for _ in 0..<count { elements.append(try readValue(elementType, depth: depth + 1)) }
            return .array(elements)
        }
    }

    mutating func parse() throws -> GGUFHeader {
        var header = GGUFHeader()
        try need(4, for: "magic")
        let magic = bytes.loadUnaligned(as: UInt32.self)
        guard UInt32(littleEndian: magic) == 0x4655_4747 else {  // "GGUF"
            let shown = (0..<4).map { String(format: "%02x", bytes[$0]) }.joined(separator: " ")
            throw fail(.badMagic, "the first 4 bytes are \(shown), expected 47 47 55 46 (\"GGUF\")")
        }
        position = 4
        let version = try read(UInt32.self, "version")
        guard version == 2 || version == 3 else {
            let hint: String
            if version == 1 {
                hint = "GGUF v1 (32-bit counts) is obsolete; re-convert the model"
            } else if version.byteSwapped == 2 || version.byteSwapped == 3 {
                hint = "this is a big-endian file; only little-endian files are supported"
            } else {
                hint = "this reader supports versions 2 and 3"
            }
            throw fail(.unsupportedVersion, "version \(version): \(hint)")
        }
        header.version = Int(version)
        // tensor_count is checked after the metadata, against the bytes left then, before anything is allocated.
        let rawTensorCount = try read(UInt64.self, "tensor_count")
        let kvCount = try readCount("metadata_kv_count", minimumSize: 13)

        // Metadata.
        header.metadata.reserveCapacity(kvCount)
        header.metadataKeys.reserveCapacity(kvCount)
        for index in 0..<kvCount {
            context = "metadata entry \(index) of \(kvCount)"
            let key = try readString("key")
            self.key = key
            context = nil
            let type = try readValueType("value type")
            let value = try readValue(type)
            guard header.metadata.updateValue(value, forKey: key) == nil else {
                throw fail(.duplicateKey, "the key appears more than once")
            }
            header.metadataKeys.append(key)
            self.key = nil
        }
        if let value = header.metadata["general.alignment"] {
            key = "general.alignment"
            guard let a = value.int, a > 0, a & (a - 1) == 0, a <= 1 << 30 else {
                throw fail(.invalidAlignment, "\(value) is not a power of two between 1 and 2^30")
            }
            header.alignment = a
            key = nil
        }

        // Tensor infos.
        context = nil
        guard rawTensorCount <= UInt64(remaining / 24) else {
            throw fail(.countTooLarge, "tensor_count \(rawTensorCount) × at least 24 bytes runs past the end of the "
                       + "file (only \(remaining) bytes remain after the metadata, at offset \(position))")
        }
        let tensorCount = Int(rawTensorCount)
        header.tensors.reserveCapacity(tensorCount)
        header.tensorNames.reserveCapacity(tensorCount)
        for index in 0..<tensorCount {
            context = "tensor info \(index) of \(tensorCount)"
            let name = try readString("name")
            tensor = name
            context = nil
            let info = try readTensorInfo(name, alignment: header.alignment)
            guard header.tensors.updateValue(info, forKey: name) == nil else {
                throw fail(.duplicateTensor, "a tensor of that name appears more than once (at index \(index))")
            }
            header.tensorNames.append(name)
            tensor = nil
        }

        // Data section: every tensor inside it.
        let (padded, overflow) = position.addingReportingOverflow((header.alignment - position % header.alignment) % header.alignment)
        header.dataOffset = overflow ? Int.max : padded
        let dataSize = max(0, bytes.count - header.dataOffset)
        for name in header.tensorNames {
            let info = header.tensors[name]!
            tensor = name
            let (end, overflow) = info.offset.addingReportingOverflow(info.byteCount)
            guard !overflow, end <= dataSize else {
                throw fail(.dataPastEnd, "\(info.type) \(info.dimensions) (ggml order) occupies bytes "
                           + "\(info.offset)..<\(overflow ? "overflow" : String(end)) of the data section, which is "
                           + "\(dataSize) bytes (file \(bytes.count) bytes, data section at \(header.dataOffset))")
            }
        }
        tensor = nil
        return header
    }

    /// Reads dims, type and offset after the name, validating everything that does not depend on the data section.
    mutating func readTensorInfo(_ name: String, alignment: Int) throws -> GGUFTensorInfo {
        let nDims = try read(UInt32.self, "n_dims")
        guard nDims <= GGUFFile.maxDimensions else {
            throw fail(.tooManyDimensions, "n_dims is \(nDims); at most \(GGUFFile.maxDimensions) are supported")
        }
        var dims: [Int] = []
        dims.reserveCapacity(Int(nDims))
        for i in 0..<Int(nDims) {
            let d = try read(UInt64.self, "dims[\(i)]")
            guard d <= UInt64(Int64.max) else { throw fail(.invalidShape, "dims[\(i)] = \(d) is too large") }
            dims.append(Int(d))
        }
        let rawType = try read(UInt32.self, "type")
        let type = GGMLType(rawValue: rawType)
        guard let blockSize = type.blockSize, let blockBytes = type.blockBytes else {
            throw fail(.unknownTensorType, "type \(rawType) is not a ggml type this reader knows")
        }
        let offsetRaw = try read(UInt64.self, "offset")

        var elements = 1
        for d in dims {
            let (product, overflow) = elements.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail(.invalidShape, "element count of dims \(dims) overflows") }
            elements = product
        }
        let rowLength = dims.first ?? 1
        guard rowLength % blockSize == 0 else {
            throw fail(.invalidShape, "\(type) stores blocks of \(blockSize) elements, but dims[0] = \(rowLength) "
                       + "is not a multiple of \(blockSize)")
        }
        let (byteCount, overflow) = (elements / blockSize).multipliedReportingOverflow(by: blockBytes)
        guard !overflow else { throw fail(.invalidShape, "byte size of \(type) dims \(dims) overflows") }
        guard offsetRaw <= UInt64(Int.max) else {
            throw fail(.dataPastEnd, "offset \(offsetRaw) is beyond any file")
        }
        let offset = Int(offsetRaw)
        guard offset % alignment == 0 else {
            throw fail(.misalignedOffset, "offset \(offset) is not a multiple of the alignment \(alignment)")
        }
        return GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: offset, byteCount: byteCount)
    }
}
