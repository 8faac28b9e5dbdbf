import Foundation

// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//
//     [8 bytes: header length N, little-endian u64]
//     [N bytes: UTF-8 JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}]
//     [data buffer; offsets are relative to its start]
//
// The whole header is validated when a file is opened, with the same rules as the reference implementation (offsets
// in bounds, sizes matching shapes, tensors covering the buffer exactly, no overlaps), so a hostile or corrupt file
// fails with a descriptive error instead of crashing or allocating absurd amounts of memory.

#if _endian(big)
#error("SafeTensors copies float32 data in host byte order; safetensors is little-endian")
#endif

// MARK: - Errors

/// A problem with a safetensors file, checkpoint or save request.
///
/// The description names the file, the tensor (when there is one) and the problem, e.g.
/// `safetensors /m/model.safetensors, tensor 'wte': size mismatch: F32 [2, 3] needs 24 bytes but data_offsets span 20`.
public struct SafeTensorsError: Error, CustomStringConvertible, Sendable {
    /// What went wrong; the raw value is the phrase used in ``description``.
    public enum Kind: String, Sendable {
        case unreadable = "cannot read file"
        case notFound = "file not found"
        case truncated = "truncated file"
        case headerTooLarge = "header too large"
        case headerPastEnd = "header length past end of file"
        case invalidHeader = "invalid header"
        case invalidEntry = "invalid entry"
        case unknownDtype = "unknown dtype"
        case invalidOffsets = "invalid data_offsets"
        case sizeMismatch = "size mismatch"
        case overlap = "overlapping tensors"
        case hole = "hole in data buffer"
        case tensorNotFound = "no such tensor"
        case wrongDtype = "wrong dtype"
        case integerOutOfRange = "integer out of range"
        case invalidIndex = "invalid index"
        case missingShard = "missing shard"
        case invalidName = "invalid tensor name"
        case writeFailed = "cannot write file"
    }

    /// The kind of problem.
    public let kind: Kind
    /// The file (or checkpoint directory) concerned.
    public let file: URL
    /// The tensor concerned, if the problem is specific to one.
    public let tensor: String?
    /// Specifics: the offending values and what was expected.
    public let detail: String

    public var description: String {
        let subject = tensor.map { "\(file.path), tensor '\($0)'" } ?? file.path
        return "safetensors \(subject): \(kind.rawValue): \(detail)"
    }
}

// MARK: - Element types

/// Element types of the safetensors format that this reader recognises (all byte-sized ones of the reference).
enum SafeTensorsDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U64, U32, U16, U8, BOOL

    /// Bytes per element.
    var size: Int {
        switch self {
        case .F64, .I64, .U64: 8
        case .F32, .I32, .U32: 4
        case .F16, .BF16, .I16, .U16: 2
        case .F8_E4M3, .F8_E5M2, .I8, .U8, .BOOL: 1
        }
    }
}

// MARK: - Header JSON

/// Name of the reserved header entry holding string metadata.
private let metadataKey = "__metadata__"

/// A JSON object key that is any string (tensor names).
private struct NameKey: CodingKey {
    let stringValue: String
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.init(stringValue) }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// The fields of one tensor entry, doubling as the JSON keys of ``HeaderJSON/Entry``.
private enum EntryField: String, CodingKey {
    case dtype, shape
    case dataOffsets = "data_offsets"

    /// What a valid value looks like, for error messages.
    var expectation: String {
        switch self {
        case .dtype: "a string"
        case .shape: "an array of non-negative integers"
        case .dataOffsets: "an array of two non-negative integers [begin, end]"
        }
    }
}

/// A JSON number that must be an integer representable as `Int`.
///
/// Decoding `Int` directly would report `1.5` or `1e30` as "not valid JSON" with no coding path; this wrapper
/// reports it at its own path so the error can name the tensor and field.
private struct StrictInt: Decodable {
    let value: Int

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let value = try? container.decode(Int.self) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an integer representable as Int")
        }
        self.value = value
    }
}

/// The header as JSON: tensor entries plus the optional `__metadata__` object. Used for both reading and writing.
private struct HeaderJSON: Codable {
    struct Entry: Codable {
        var dtype: String
        var shape: [Int]
        var dataOffsets: [Int]
        typealias CodingKeys = EntryField
    }

    var entries: [String: Entry] = [:]
    var metadata: [String: String] = [:]

    init(entries: [String: Entry], metadata: [String: String]) {
        self.entries = entries
        self.metadata = metadata
    }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: NameKey.self)
        for key in container.allKeys {
            if key.stringValue == metadataKey {
                metadata = try container.decodeIfPresent([String: String].self, forKey: key) ?? [:]
            } else {
                entries[key.stringValue] = try container.decode(Entry.self, forKey: key)
            }
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: NameKey.self)
        if !metadata.isEmpty { try container.encode(metadata, forKey: NameKey(metadataKey)) }
        for (name, entry) in entries { try container.encode(entry, forKey: NameKey(name)) }
    }
}

extension HeaderJSON.Entry {
    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: EntryField.self)
        dtype = try container.decode(String.self, forKey: .dtype)
        shape = try container.decode([StrictInt].self, forKey: .shape).map(\.value)
        dataOffsets = try container.decode([StrictInt].self, forKey: .dataOffsets).map(\.value)
    }
}

// MARK: - Single file

/// One safetensors file, memory-mapped and validated once at open; tensors are converted on request.
///
/// ```swift
/// let file = try SafeTensorsFile(url: url)
/// for name in file.names { print(name, file.info(name)!) }
/// let w = try file.tensor("wte.weight")
/// ```
public struct SafeTensorsFile: Sendable {
    /// Location and layout of one tensor; `bytes` is absolute within the file.
    struct Entry: Sendable {
        let dtype: SafeTensorsDType
        let shape: [Int]
        let bytes: Range<Int>
    }

    /// Largest header accepted, as in the reference implementation.
    public static let maxHeaderLength = 100_000_000

    /// The file this was opened from.
    public let url: URL
    /// Tensor names, sorted.
    public let names: [String]
    /// The header's `__metadata__` (empty when absent).
    public let metadata: [String: String]
    private let data: Data
    private let entries: [String: Entry]

    /// Maps the file and validates its header and layout.
    ///
    /// - Throws: ``SafeTensorsError`` for an unreadable file or any violation of the format.
    public init(url: URL) throws {
        self.url = url
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafeTensorsError(kind: .unreadable, file: url, tensor: nil, detail: error.localizedDescription)
        }
        let header = try Self.readHeader(data, file: url)
        let bufferStart = 8 + header.length
        let bufferSize = data.count - bufferStart
        var entries: [String: Entry] = [:]
        for (name, raw) in header.json.entries.sorted(by: { $0.key < $1.key }) {  // deterministic first error
            entries[name] = try Self.validate(raw, bufferStart: bufferStart, bufferSize: bufferSize) {
                SafeTensorsError(kind: $0, file: url, tensor: name, detail: $1)
            }
        }
        try Self.checkCoverage(entries, bufferStart: bufferStart, bufferSize: bufferSize, file: url)
        self.entries = entries
        self.names = entries.keys.sorted()
        self.metadata = header.json.metadata
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { entries[name] != nil }

    /// The dtype (e.g. `"F32"`, `"BF16"`, `"I64"`) and shape of tensor `name`, or `nil` if there is none.
    public func info(_ name: String) -> (dtype: String, shape: [Int])? {
        entries[name].map { ($0.dtype.rawValue, $0.shape) }
    }

    /// Tensor `name` as float32: F32 as stored, F16 / BF16 exactly, F64 rounded to nearest.
    ///
    /// - Throws: ``SafeTensorsError`` if there is no such tensor or its dtype is not a float type
    ///   (integer tensors are read with ``integers(_:)``).
    public func tensor(_ name: String) throws -> Tensor {
        let entry = try lookup(name)
        guard let decode = Self.floatDecoder(entry.dtype) else {
            let hint = Self.integerReader(entry.dtype) != nil ? "; read it with integers(_:)" : ""
            throw error(.wrongDtype, name, "\(entry.dtype.rawValue) cannot be loaded as a float tensor\(hint)")
        }
        var result = Tensor(uninitializedShape: entry.shape)
        result.withUnsafeMutableBufferPointer { out in withBytes(of: entry) { decode($0, out) } }
        return result
    }

    /// Integer tensor `name` (I64, I32, I16, I8, U64, U32, U16, U8 or BOOL) as row-major `Int`s.
    ///
    /// - Throws: ``SafeTensorsError`` if there is no such tensor, its dtype is not an integer type, or a U64 value
    ///   exceeds `Int.max`.
    public func integers(_ name: String) throws -> [Int] {
        let entry = try lookup(name)
        guard let read = Self.integerReader(entry.dtype) else {
            throw error(.wrongDtype, name, "\(entry.dtype.rawValue) is not an integer type; read it with tensor(_:)")
        }
        return try withBytes(of: entry) { raw in
            let values = read(raw)
            if let bad = values.firstIndex(of: nil) {
                throw error(.integerOutOfRange, name, "element \(bad) does not fit in Int")
            }
            return values.map { $0! }
        }
    }

    // MARK: Access helpers

    private func lookup(_ name: String) throws -> Entry {
        guard let entry = entries[name] else { throw error(.tensorNotFound, name, "the file has no tensor of that name") }
        return entry
    }

    private func error(_ kind: SafeTensorsError.Kind, _ tensor: String?, _ detail: String) -> SafeTensorsError {
        SafeTensorsError(kind: kind, file: url, tensor: tensor, detail: detail)
    }

    private func withBytes<R>(of entry: Entry, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try data.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[entry.bytes])) }
    }

    // MARK: Conversions

    /// Converter from a tensor's raw little-endian bytes to float32, for the float dtypes.
    private static func floatDecoder(
        _ dtype: SafeTensorsDType
    ) -> ((UnsafeRawBufferPointer, UnsafeMutableBufferPointer<Float>) -> Void)? {
        switch dtype {
        case .F32: { raw, out in UnsafeMutableRawBufferPointer(out).copyMemory(from: raw) }
        case .F16: { raw, out in convert(raw, out, halfToFloat) }
        case .BF16: { raw, out in convert(raw, out) { (bits: UInt16) in Float(bitPattern: UInt32(bits) << 16) } }
        case .F64: { raw, out in convert(raw, out) { (bits: UInt64) in Float(Double(bitPattern: bits)) } }
        default: nil
        }
    }


    /// Reader of a tensor's raw bytes as `Int`s (`nil` for a value that does not fit), for the integer dtypes.
    private static func integerReader(_ dtype: SafeTensorsDType) -> ((UnsafeRawBufferPointer) -> [Int?])? {
        switch dtype {
        case .I64: { readIntegers($0, as: Int64.self) }
        case .I32: { readIntegers($0, as: Int32.self) }
        case .I16: { readIntegers($0, as: Int16.self) }
        case .I8: { readIntegers($0, as: Int8.self) }
        case .U64: { readIntegers($0, as: UInt64.self) }
        case .U32: { readIntegers($0, as: UInt32.self) }
        case .U16: { readIntegers($0, as: UInt16.self) }
        case .U8, .BOOL: { readIntegers($0, as: UInt8.self) }
        default: nil
        }
    }

    private static func readIntegers<Bits: FixedWidthInteger>(_ raw: UnsafeRawBufferPointer, as _: Bits.Type) -> [Int?] {
        (0..<raw.count / MemoryLayout<Bits>.size).map {
            Int(exactly: Bits(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<Bits>.size, as: Bits.self)))
        }
    }

    /// `out[i] = transform(element i of raw)`, in chunks spread over the engine's workers for large tensors.
    private static func convert<Bits: FixedWidthInteger>(
        _ raw: UnsafeRawBufferPointer, _ out: UnsafeMutableBufferPointer<Float>, _ transform: (Bits) -> Float
    ) {
        let chunk = 1 << 16
        let width = MemoryLayout<Bits>.size
        parallelFor((out.count + chunk - 1) / chunk) { c in
            for i in c * chunk..<min(out.count, (c + 1) * chunk) {
                out[i] = transform(Bits(littleEndian: raw.loadUnaligned(fromByteOffset: i * width, as: Bits.self)))
            }
        }
    }

    // MARK: Validation

    /// Reads the length prefix and decodes the JSON header.
    private static func readHeader(_ data: Data, file: URL) throws -> (length: Int, json: HeaderJSON) {
        func fail(_ kind: SafeTensorsError.Kind, _ detail: String) -> SafeTensorsError {
            SafeTensorsError(kind: kind, file: file, tensor: nil, detail: detail)
        }
        guard data.count >= 8 else {
            throw fail(.truncated, "the file is \(data.count) bytes, shorter than the 8-byte header length")
        }
        let declared = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared <= UInt64(maxHeaderLength) else {
            throw fail(.headerTooLarge, "header length \(declared) exceeds the \(maxHeaderLength)-byte limit")
        }
        let length = Int(declared)
        guard length <= data.count - 8 else {
            throw fail(.headerPastEnd, "header length \(length) points past end of file (\(data.count) bytes)")
        }
        let bytes = Data(data[8..<8 + length])
        guard String(data: bytes, encoding: .utf8) != nil else { throw fail(.invalidHeader, "not valid UTF-8") }
        do {
            return (length, try JSONDecoder().decode(HeaderJSON.self, from: bytes))
        } catch let error as DecodingError {
            throw explain(error, file: file)
        }
    }

    /// Turns a JSON decoding failure into an error naming the tensor entry and field at fault.
    private static func explain(_ error: DecodingError, file: URL) -> SafeTensorsError {
        let context: DecodingError.Context
        var missingKey: CodingKey?
        switch error {
        case .keyNotFound(let key, let c): context = c; missingKey = key
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): context = c
        @unknown default: return SafeTensorsError(kind: .invalidHeader, file: file, tensor: nil, detail: "\(error)")
        }
        let path = context.codingPath.map(\.stringValue)
        guard let name = path.first else {
            if case .dataCorrupted = error {
                let reason = context.underlyingError.map { " (\($0))" } ?? ""
                return SafeTensorsError(kind: .invalidHeader, file: file, tensor: nil, detail: "not valid JSON\(reason)")
            }
            return SafeTensorsError(kind: .invalidHeader, file: file, tensor: nil, detail: "not a JSON object")
        }
        if name == metadataKey {
            return SafeTensorsError(kind: .invalidHeader, file: file, tensor: nil,
                                    detail: "\(metadataKey) must be an object mapping strings to strings")
        }
        let detail: String
        if let missingKey, path.count == 1 {
            detail = "missing '\(missingKey.stringValue)'"
        } else if path.count >= 2, let field = EntryField(stringValue: path[1]) {
            detail = "'\(field.rawValue)' must be \(field.expectation)"
        } else {
            detail = "must be an object with dtype, shape and data_offsets"
        }
        return SafeTensorsError(kind: .invalidEntry, file: file, tensor: name, detail: detail)
    }

    /// Checks one entry against the format rules; `fail` builds an error naming the entry.
    private static func validate(
        _ raw: HeaderJSON.Entry, bufferStart: Int, bufferSize: Int,
        fail: (SafeTensorsError.Kind, String) -> SafeTensorsError
    ) throws -> Entry {
        guard let dtype = SafeTensorsDType(rawValue: raw.dtype) else {
            let known = SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            throw fail(.unknownDtype, "'\(raw.dtype)' is not one of \(known)")
        }
        guard raw.shape.allSatisfy({ $0 >= 0 }) else {
            throw fail(.invalidEntry, "'shape' must be \(EntryField.shape.expectation), got \(raw.shape)")
        }
        let offsets = raw.dataOffsets
        guard offsets.count == 2, offsets.allSatisfy({ $0 >= 0 }) else {
            throw fail(.invalidEntry, "'data_offsets' must be \(EntryField.dataOffsets.expectation), got \(offsets)")
        }
        let (begin, end) = (offsets[0], offsets[1])
        guard begin <= end else { throw fail(.invalidOffsets, "begin \(begin) is after end \(end)") }
        guard end <= bufferSize else {
            throw fail(.invalidOffsets, "[\(begin), \(end)] runs past the end of the \(bufferSize)-byte data buffer")
        }
        // dtype size × dims, in the order Tensor multiplies them, so a passing shape never overflows there either.
        var needed = dtype.size
        for dim in raw.shape {
            let (product, overflow) = needed.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw fail(.invalidEntry, "shape \(raw.shape) is too large (byte size overflows)") }
            needed = product
        }
        guard needed == end - begin else {
            throw fail(.sizeMismatch, "\(dtype.rawValue) \(raw.shape) needs \(needed) bytes but data_offsets span \(end - begin)")
        }
        return Entry(dtype: dtype, shape: raw.shape, bytes: bufferStart + begin..<bufferStart + end)
    }

    /// Requires the tensors to tile the data buffer exactly: no overlaps and no unused bytes.
    private static func checkCoverage(_ entries: [String: Entry], bufferStart: Int, bufferSize: Int, file: URL) throws {
        let ordered = entries.sorted { ($0.value.bytes.lowerBound, $0.value.bytes.upperBound, $0.key)
                                       < ($1.value.bytes.lowerBound, $1.value.bytes.upperBound, $1.key) }
        var covered = 0  // relative to the buffer
        var previous: String?
        for (name, entry) in ordered {
            let begin = entry.bytes.lowerBound - bufferStart
            if begin < covered {
                throw SafeTensorsError(kind: .overlap, file: file, tensor: name,
                                       detail: "data starting at \(begin) overlaps tensor '\(previous ?? "")' ending at \(covered)")
            }
            if begin > covered {
                throw SafeTensorsError(kind: .hole, file: file, tensor: name,
                                       detail: "bytes \(covered)..<\(begin) before this tensor belong to no tensor")
            }
            covered = entry.bytes.upperBound - bufferStart
            previous = name
        }
        if covered != bufferSize {
            throw SafeTensorsError(kind: .hole, file: file, tensor: nil,
                                   detail: "bytes \(covered)..<\(bufferSize) at the end belong to no tensor")
        }
    }
}

// MARK: - Whole-file load and save

/// Whole-file convenience API for float32 safetensors files.
public enum SafeTensors {
    /// Every tensor of the file at `url`, converted to float32 (see ``SafeTensorsFile/tensor(_:)``).
    ///
    /// - Throws: ``SafeTensorsError`` if the file is invalid or holds a non-float tensor; use ``SafeTensorsFile``
    ///   to read files that mix float and integer tensors.
    public static func load(_ url: URL) throws -> [String: Tensor] {
        let file = try SafeTensorsFile(url: url)
        var tensors: [String: Tensor] = [:]
        for name in file.names { tensors[name] = try file.tensor(name) }
        return tensors
    }

    /// Writes `tensors` as F32 (names sorted, header space-padded to a multiple of 8 bytes) atomically to `url`.
    ///
    /// - Throws: ``SafeTensorsError`` if a tensor is named `__metadata__` or the file cannot be written.
    public static func save(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL) throws {
        if tensors[metadataKey] != nil {
            throw SafeTensorsError(kind: .invalidName, file: url, tensor: metadataKey, detail: "the name is reserved for metadata")
        }
        let names = tensors.keys.sorted()
        var entries: [String: HeaderJSON.Entry] = [:]
        var offset = 0
        for name in names {
            let tensor = tensors[name]!
            let size = tensor.count * MemoryLayout<Float>.size
            entries[name] = HeaderJSON.Entry(dtype: SafeTensorsDType.F32.rawValue, shape: tensor.shape,
                                             dataOffsets: [offset, offset + size])
            offset += size
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var header = try encoder.encode(HeaderJSON(entries: entries, metadata: metadata))
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))

        var file = Data(capacity: 8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(header)
        for name in names { tensors[name]!.withUnsafeBufferPointer { file.append($0) } }
        do {
            try file.write(to: url, options: .atomic)
        } catch {
            throw SafeTensorsError(kind: .writeFailed, file: url, tensor: nil, detail: error.localizedDescription)
        }
    }
}

// MARK: - Sharded checkpoints

/// A Hugging Face–style checkpoint directory: `model.safetensors.index.json` plus its shards, or a single
/// `model.safetensors`. Every file is opened and validated once, at init.
public struct SafeTensorsCheckpoint: Sendable {
    /// Name of the shard index (`{"metadata": {...}, "weight_map": {tensor: shard file}}`).
    public static let indexFileName = "model.safetensors.index.json"
    /// Name of the single-file checkpoint used when there is no index.
    public static let singleFileName = "model.safetensors"

    /// The checkpoint directory.
    public let directory: URL
    /// All tensor names, sorted.
    public let names: [String]
    private let shardOf: [String: String]
    private let shards: [String: SafeTensorsFile]

    /// Opens the index and every shard it names, or the single `model.safetensors` when there is no index.
    ///
    /// - Throws: ``SafeTensorsError`` for an invalid index, a missing or invalid shard, or an index entry whose
    ///   shard does not contain the tensor.
    public init(directory: URL) throws {
        self.directory = directory
        let indexURL = directory.appendingPathComponent(Self.indexFileName)
        let singleURL = directory.appendingPathComponent(Self.singleFileName)
        if FileManager.default.fileExists(atPath: indexURL.path) {
            let weightMap = try Self.readWeightMap(indexURL)
            var shards: [String: SafeTensorsFile] = [:]
            for (shard, tensors) in Dictionary(grouping: weightMap.keys, by: { weightMap[$0]! }).sorted(by: { $0.key < $1.key }) {
                shards[shard] = try Self.openShard(shard, in: directory, index: indexURL, tensors: tensors.sorted())
            }
            self.shards = shards
            shardOf = weightMap
        } else if FileManager.default.fileExists(atPath: singleURL.path) {
            let file = try SafeTensorsFile(url: singleURL)
            shards = [Self.singleFileName: file]
            shardOf = Dictionary(uniqueKeysWithValues: file.names.map { ($0, Self.singleFileName) })
        } else {
            throw SafeTensorsError(kind: .notFound, file: directory, tensor: nil,
                                   detail: "neither \(Self.indexFileName) nor \(Self.singleFileName) exists")
        }
        names = shardOf.keys.sorted()
    }

    /// Whether the checkpoint holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { shardOf[name] != nil }

    /// The dtype and shape of tensor `name`, or `nil` if there is none.
    public func info(_ name: String) -> (dtype: String, shape: [Int])? { try? file(holding: name).info(name) }

    /// Tensor `name` as float32 (see ``SafeTensorsFile/tensor(_:)``).
    public func tensor(_ name: String) throws -> Tensor { try file(holding: name).tensor(name) }

    /// Integer tensor `name` (see ``SafeTensorsFile/integers(_:)``).
    public func integers(_ name: String) throws -> [Int] { try file(holding: name).integers(name) }

    private func file(holding name: String) throws -> SafeTensorsFile {
        guard let shard = shardOf[name], let file = shards[shard] else {
            throw SafeTensorsError(kind: .tensorNotFound, file: directory, tensor: name, detail: "the checkpoint has no tensor of that name")
        }
        return file
    }

    private static func readWeightMap(_ indexURL: URL) throws -> [String: String] {
        struct Index: Decodable { let weight_map: [String: String] }
        do {
            return try JSONDecoder().decode(Index.self, from: Data(contentsOf: indexURL)).weight_map
        } catch {
            throw SafeTensorsError(kind: .invalidIndex, file: indexURL, tensor: nil,
                                   detail: "expected {\"weight_map\": {tensor: shard file}} (\(error))")
        }
    }

    /// Opens one shard and checks it holds every tensor the index assigns to it (`tensors`, sorted, non-empty).
    private static func openShard(_ shard: String, in directory: URL, index: URL, tensors: [String]) throws -> SafeTensorsFile {
        guard !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".." else {
            throw SafeTensorsError(kind: .invalidIndex, file: index, tensor: tensors[0],
                                   detail: "shard '\(shard)' is not a plain file name")
        }
        let url = directory.appendingPathComponent(shard)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw SafeTensorsError(kind: .missingShard, file: url, tensor: tensors[0],
                                   detail: "\(indexFileName) assigns \(tensors.count) tensor(s) to this file, which does not exist")
        }
        let file = try SafeTensorsFile(url: url)
        if let absent = tensors.first(where: { !file.contains($0) }) {
            throw SafeTensorsError(kind: .tensorNotFound, file: url, tensor: absent,
                                   detail: "\(indexFileName) assigns the tensor to this shard, which does not contain it")
        }
        return file
    }
}
