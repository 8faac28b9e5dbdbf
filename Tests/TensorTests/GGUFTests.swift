import Foundation
import XCTest
@testable import Tensor

// The GGUF reader against files written by gguf-py (llama.cpp's Python package), from `scripts/fixtures/gguf.py`
// (regenerate with `scripts/make_fixtures.sh gguf`):
//   * gguf/types.gguf.bin: one metadata key of every value type and one tensor per supported type, the expected
//     dequantised values (gguf-py's reference `gguf.quants.dequantize`) in gguf/types_expected.safetensors;
//   * gguf/v2_align64.gguf.bin: a version-2 file with `general.alignment` = 64 and a 0-dim tensor.
// The expected metadata values below are the literals the Python script writes. Malformed files are made here by
// mutating valid bytes or with a small in-test writer.

final class GGUFTests: XCTestCase {
    // MARK: Fixtures and helpers

    private static let fixtures = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("gguf")
    private let typesURL = GGUFTests.fixtures.appendingPathComponent("types.gguf.bin")
    private let v2URL = GGUFTests.fixtures.appendingPathComponent("v2_align64.gguf.bin")
    private let badURL = URL(fileURLWithPath: "/virtual/bad.gguf")

    private func typesBytes() throws -> [UInt8] { [UInt8](try Data(contentsOf: typesURL)) }

    /// Asserts that `body` throws a ``GGUFError`` whose description contains every string in `expected`.
    private func assertFails<T>(_ expected: [String], file: StaticString = #filePath, line: UInt = #line,
                                _ body: () throws -> T) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let error = error as? GGUFError else {
                return XCTFail("expected GGUFError, got \(error)", file: file, line: line)
            }
            for text in expected {
                XCTAssertTrue(error.description.contains(text), "'\(text)' not in: \(error.description)",
                              file: file, line: line)
            }
        }
    }

    /// Opens `bytes` as a GGUF file named bad.gguf and expects an error mentioning `expected` and the file name.
    private func assertRejects(_ bytes: [UInt8], _ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertFails(expected + ["bad.gguf"], file: file, line: line) { try GGUFFile(data: Data(bytes), url: badURL) }
    }

    private func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    private func ggufString(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }

    /// Offset just past the unique occurrence of the GGUF string `s` (length prefix + bytes) in `bytes`.
    private func offset(after s: String, in bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> Int {
        let needle = ggufString(s)
        var hits: [Int] = []
        if bytes.count >= needle.count {
            for i in 0...(bytes.count - needle.count) where bytes[i] == needle[0] && Array(bytes[i..<i + needle.count]) == needle {
                hits.append(i + needle.count)
            }
        }
        XCTAssertEqual(hits.count, 1, "'\(s)' should occur exactly once", file: file, line: line)
        return hits.first ?? 0
    }

    private func put<T: FixedWidthInteger>(_ v: T, at offset: Int, in bytes: inout [UInt8]) {
        bytes.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: le(v))
    }

    /// A minimal GGUF writer for malformed files the Python writer refuses to produce.
    private struct Builder {
        var version: UInt32 = 3
        var metadata: [(key: String, type: UInt32, value: [UInt8])] = []
        var tensors: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)] = []
        var alignment = 32
        var data: [UInt8] = []

        func bytes() -> [UInt8] {
            func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
            func str(_ s: String) -> [UInt8] { le(UInt64(s.utf8.count)) + Array(s.utf8) }
            var out = Array("GGUF".utf8) + le(version) + le(UInt64(tensors.count)) + le(UInt64(metadata.count))
            for kv in metadata { out += str(kv.key) + le(kv.type) + kv.value }
            for t in tensors {
                out += str(t.name) + le(UInt32(t.dims.count))
                for d in t.dims { out += le(d) }
                out += le(t.type) + le(t.offset)
            }
            out += [UInt8](repeating: 0, count: (alignment - out.count % alignment) % alignment)
            return out + data
        }
    }

    // MARK: Metadata

    func testMetadataOfEveryValueType() throws {
        let file = try GGUFFile(url: typesURL)
        XCTAssertEqual(file.version, 3)
        XCTAssertEqual(file.alignment, 32)
        XCTAssertEqual(file.dataOffset % 32, 0)
        let m = file.metadata
        XCTAssertEqual(m["general.architecture"], .string("test"))
        XCTAssertEqual(file.architecture, "test")
        XCTAssertEqual(m["test.uint8"], .uint8(200))
        XCTAssertEqual(m["test.int8"], .int8(-100))
        XCTAssertEqual(m["test.uint16"], .uint16(65000))
        XCTAssertEqual(m["test.int16"], .int16(-32000))
        XCTAssertEqual(m["test.uint32"], .uint32(4_000_000_000))
        XCTAssertEqual(m["test.int32"], .int32(-2_000_000_000))
        XCTAssertEqual(m["test.float32"], .float32(0.15625))
        XCTAssertEqual(m["test.bool_true"], .bool(true))
        XCTAssertEqual(m["test.bool_false"], .bool(false))
        XCTAssertEqual(m["test.string"], .string("héllo, GGUF ✓"))
        XCTAssertEqual(m["test.uint64"], .uint64(18_000_000_000_000_000_000))
        XCTAssertEqual(m["test.int64"], .int64(-9_000_000_000_000_000_000))
        XCTAssertEqual(m["test.float64"], .float64(3.141592653589793))
        XCTAssertEqual(m["test.array_int32"], .array([.int32(1), .int32(-2), .int32(3)]))
        XCTAssertEqual(m["test.array_uint8"], .array([.uint8(0), .uint8(1), .uint8(255)]))
        XCTAssertEqual(m["test.array_float32"], .array([.float32(0.5), .float32(-1.25), .float32(1e-3)]))
        XCTAssertEqual(m["test.array_bool"], .array([.bool(true), .bool(false), .bool(true)]))
        XCTAssertEqual(m["test.array_string"], .array([.string("a"), .string(""), .string("ünï")]))
        XCTAssertEqual(m["test.array_nested"],
                       .array([.array([.int32(1), .int32(2), .int32(3)]), .array([.int32(4), .int32(5)])]))
        XCTAssertEqual(m["test.array_nested_string"],
                       .array([.array([.string("x"), .string("y")]), .array([.string("z")])]))
        XCTAssertEqual(file.metadataKeys, [
            "general.architecture", "test.uint8", "test.int8", "test.uint16", "test.int16", "test.uint32", "test.int32",
            "test.float32", "test.bool_true", "test.bool_false", "test.string", "test.uint64", "test.int64",
            "test.float64", "test.array_int32", "test.array_uint8", "test.array_float32", "test.array_bool",
            "test.array_string", "test.array_nested", "test.array_nested_string",
        ])
        XCTAssertEqual(m.count, file.metadataKeys.count)
    }

    func testValueAccessors() throws {
        let m = try GGUFFile(url: typesURL).metadata
        XCTAssertEqual(m["test.uint8"]?.int, 200)
        XCTAssertEqual(m["test.int16"]?.int, -32000)
        XCTAssertEqual(m["test.uint32"]?.int, 4_000_000_000)
        XCTAssertEqual(m["test.int64"]?.int, -9_000_000_000_000_000_000)
        XCTAssertNil(m["test.uint64"]?.int, "18e18 does not fit in Int")
        XCTAssertEqual(m["test.uint64"]?.float, 18e18)
        XCTAssertEqual(m["test.float32"]?.float, 0.15625)
        XCTAssertEqual(m["test.float64"]?.float, 3.141592653589793)
        XCTAssertEqual(m["test.int32"]?.float, -2e9, "integers convert to Double")
        XCTAssertNil(m["test.float32"]?.int)
        XCTAssertNil(m["test.string"]?.int)
        XCTAssertNil(m["test.bool_true"]?.int)
        XCTAssertEqual(m["test.bool_true"]?.bool, true)
        XCTAssertEqual(m["test.string"]?.string, "héllo, GGUF ✓")
        XCTAssertNil(m["test.uint8"]?.string)
        XCTAssertEqual(m["test.array_string"]?.strings, ["a", "", "ünï"])
        XCTAssertEqual(m["test.array_int32"]?.ints, [1, -2, 3])
        XCTAssertEqual(m["test.array_uint8"]?.ints, [0, 1, 255])
        XCTAssertEqual(m["test.array_float32"]?.floats, [0.5, -1.25, 1e-3])
        XCTAssertEqual(m["test.array_int32"]?.floats, [1, -2, 3])
        XCTAssertEqual(m["test.array_nested"]?.array?.count, 2)
        XCTAssertEqual(m["test.array_nested"]?.array?[1].ints, [4, 5])
        XCTAssertNil(m["test.array_nested"]?.ints)
        XCTAssertNil(m["test.array_int32"]?.strings)
        XCTAssertNil(m["test.string"]?.array)
        XCTAssertEqual(m["test.string"]?.description, "\"héllo, GGUF ✓\"")
        XCTAssertEqual(m["test.array_nested"]?.description, "[[1, 2, 3], [4, 5]]")
        XCTAssertEqual(GGUFValue.array((0..<100).map { .uint16(UInt16($0)) }).description, "[0, 1, 2, … (100 elements)]")
    }

    // MARK: Tensors

    func testEveryTypeDequantisesExactlyLikeGGUFPy() throws {
        let file = try GGUFFile(url: typesURL)
        let expected = try SafeTensorsFile(url: GGUFTests.fixtures.appendingPathComponent("types_expected.safetensors"))
        let types = ["f32": GGMLType.f32, "f16": .f16, "bf16": .bf16, "q8_0": .q8_0, "q4_0": .q4_0, "q4_1": .q4_1]
        XCTAssertEqual(Set(file.tensorNames), Set(expected.names))
        XCTAssertEqual(file.tensorNames.count, 12)
        for name in file.tensorNames {
            let info = try XCTUnwrap(file.tensors[name])
            XCTAssertEqual(info.type, types[String(name.split(separator: ".")[0])], name)
            let actual = try file.tensor(name)
            let reference = try expected.tensor(name)
            XCTAssertEqual(actual.shape, reference.shape, name)
            // Bit-for-bit (so NaN, infinities and -0.0 are checked too).
            let a = actual.scalars.map(\.bitPattern), e = reference.scalars.map(\.bitPattern)
            let mismatches = zip(a, e).enumerated().filter { $0.element.0 != $0.element.1 }
            XCTAssertTrue(mismatches.isEmpty, "\(name): \(mismatches.count) elements differ, first at "
                          + "\(mismatches.first.map { "\($0.offset): \(Float(bitPattern: $0.element.0)) vs \(Float(bitPattern: $0.element.1))" } ?? "")")
        }
        // The special values really are there (the fixture is not vacuous).
        let f16 = try file.tensor("f16.3x64").scalars
        XCTAssertTrue(f16.contains(.infinity) && f16.contains(-.infinity) && f16.contains { $0.isNaN })
        XCTAssertTrue(f16.contains(Float(bitPattern: 0x3380_0000)), "smallest f16 subnormal 2^-24")
        let q4 = try file.tensor("q4_1.3x64").scalars
        XCTAssertEqual(Array(q4[0..<32]), [Float](repeating: 0, count: 32), "all-zero block")
    }

    func testShapesAreReversedGGMLDims() throws {
        let file = try GGUFFile(url: typesURL)
        let a = try XCTUnwrap(file.tensors["q4_1.3x64"])
        XCTAssertEqual(a.dimensions, [64, 3])
        XCTAssertEqual(a.shape, [3, 64])
        XCTAssertEqual(a.elementCount, 192)
        XCTAssertEqual(a.byteCount, 6 * 20)
        XCTAssertEqual(a.offset % 32, 0)
        let b = try XCTUnwrap(file.tensors["bf16.2x3x32"])
        XCTAssertEqual(b.dimensions, [32, 3, 2])
        XCTAssertEqual(b.shape, [2, 3, 32])
        XCTAssertEqual(b.byteCount, 192 * 2)
        XCTAssertEqual(try file.tensor("bf16.2x3x32").shape, [2, 3, 32])
        XCTAssertEqual(try file.tensor("q8_0.3x64").shape, [3, 64])
        XCTAssertEqual(file.tensorNames.first, "f32.3x64")
        XCTAssertEqual(try file.withRawBytes(of: "q8_0.3x64") { $0.count }, 6 * 34)
        XCTAssertEqual(GGMLType.q4_1.description, "Q4_1 (3)")
        XCTAssertEqual(GGMLType(rawValue: 99).name, "type 99")
    }

    func testVersion2WithCustomAlignmentAndScalar() throws {
        let file = try GGUFFile(url: v2URL)
        XCTAssertEqual(file.version, 2)
        XCTAssertEqual(file.alignment, 64)
        XCTAssertEqual(file.metadata["general.alignment"], .uint32(64))
        XCTAssertEqual(file.metadata["test.note"]?.string, "version 2")
        XCTAssertEqual(file.dataOffset % 64, 0)
        XCTAssertEqual(file.tensorNames, ["q8_0.2x64", "f32.5", "f32.scalar"])
        for name in file.tensorNames { XCTAssertEqual(file.tensors[name]!.offset % 64, 0, name) }
        XCTAssertEqual(try file.tensor("f32.5").scalars.map(\.bitPattern), [1, -2, 0.5, 3.25, -0.0].map { Float($0).bitPattern })
        let scalar = try file.tensor("f32.scalar")
        XCTAssertEqual(file.tensors["f32.scalar"]?.dimensions, [])
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.item, 7.5)
        let expected = try SafeTensorsFile(url: GGUFTests.fixtures.appendingPathComponent("v2_align64_expected.safetensors"))
        XCTAssertEqual(try file.tensor("q8_0.2x64"), try expected.tensor("q8_0.2x64"))
    }

    func testUnsupportedButKnownTensorTypeOpensAndFailsOnRead() throws {
        var b = Builder()
        b.tensors = [(name: "k.weight", dims: [256, 1], type: 16, offset: 0)]  // IQ2_XXS: 66 bytes per 256
        b.data = [UInt8](repeating: 0, count: 66)
        let file = try GGUFFile(data: Data(b.bytes()), url: badURL)
        XCTAssertEqual(file.tensors["k.weight"]?.byteCount, 66)
        assertFails(["unsupported tensor type", "'k.weight'", "IQ2_XXS (16)", "bad.gguf"]) { try file.tensor("k.weight") }
        XCTAssertNil(try file.quantizedMatrix("k.weight"))
        assertFails(["no such tensor", "'nope'"]) { try file.tensor("nope") }
    }

    func testLargeTensorIsSplitAcrossWorkersCorrectly() throws {
        // Enough rows for several parallel chunks, with a row length that does not divide the chunk size.
        let rows = 700, cols = 96, blocksPerRow = cols / 32
        var data: [UInt8] = []
        var expected: [Float] = []
        for r in 0..<rows {
            for blk in 0..<blocksPerRow {
                let d = Float16(Float(r % 7 + 1) / 16), m = Float16(-Float(blk + 1))
                data += withUnsafeBytes(of: d.bitPattern.littleEndian) { Array($0) }
                data += withUnsafeBytes(of: m.bitPattern.littleEndian) { Array($0) }
                var q = [Float](repeating: 0, count: 32)
                for j in 0..<16 {
                    let lo = UInt8((r + j) % 16), hi = UInt8((r * 3 + j + blk) % 16)
                    data.append(lo | hi << 4)
                    q[j] = Float(lo) * Float(d) + Float(m)
                    q[j + 16] = Float(hi) * Float(d) + Float(m)
                }
                expected += q
            }
        }
        var b = Builder()
        b.tensors = [(name: "big", dims: [UInt64(cols), UInt64(rows)], type: 3, offset: 0)]
        b.data = data
        let t = try GGUFFile(data: Data(b.bytes()), url: badURL).tensor("big")
        XCTAssertEqual(t.shape, [rows, cols])
        XCTAssertEqual(t.scalars, expected)
    }

    // MARK: Malformed files

    func testRejectsWrongMagic() throws {
        var bytes = try typesBytes()
        bytes.replaceSubrange(0..<4, with: Array("GGML".utf8))
        assertRejects(bytes, ["bad magic", "47 47 4d 4c"])
        assertRejects([], ["truncated", "magic"])
    }

    func testRejectsVersion1AndUnknownVersions() throws {
        var bytes = try typesBytes()
        put(UInt32(1), at: 4, in: &bytes)
        assertRejects(bytes, ["unsupported version", "version 1", "v1"])
        put(UInt32(4), at: 4, in: &bytes)
        assertRejects(bytes, ["unsupported version", "version 4"])
        put(UInt32(3).byteSwapped, at: 4, in: &bytes)
        assertRejects(bytes, ["unsupported version", "big-endian"])
    }

    func testRejectsTruncatedHeader() throws {
        let bytes = try typesBytes()
        assertRejects(Array(bytes[0..<10]), ["truncated", "tensor_count"])
        assertRejects(Array(bytes[0..<20]), ["truncated", "metadata_kv_count"])
    }

    func testRejectsTruncationInMetadata() throws {
        let bytes = try typesBytes()
        let value = offset(after: "test.float64", in: bytes) + 4  // after the u32 value type
        assertRejects(Array(bytes[0..<value + 3]), ["truncated", "key 'test.float64'", "FLOAT64"])
        // Cut inside a key: the error names the entry by position.
        let key = offset(after: "test.array_nested_string", in: bytes)
        assertRejects(Array(bytes[0..<key - 2]), ["metadata entry 20 of 21", "key length 24", "past the end"])
        // Cut early: the declared count of metadata entries cannot fit.
        assertRejects(Array(bytes[0..<100]), ["count too large", "metadata_kv_count 21"])
    }

    func testEveryTruncatedPrefixIsRejected() throws {
        let bytes = try typesBytes()
        let file = try GGUFFile(url: typesURL)
        let last = try XCTUnwrap(file.tensors[file.tensorNames.last!])
        let end = file.dataOffset + last.offset + last.byteCount  // the rest is the writer's final padding
        for length in 0..<end {
            XCTAssertThrowsError(try GGUFFile(data: Data(bytes[0..<length]), url: badURL), "prefix \(length)") { error in
                XCTAssertTrue(error is GGUFError, "prefix \(length): \(error)")
                if length >= file.dataOffset {
                    XCTAssertTrue("\(error)".contains("tensor data past end of file"), "prefix \(length): \(error)")
                }
            }
        }
    }

    func testRejectsStringLengthPastEnd() throws {
        var bytes = try typesBytes()
        let key = offset(after: "test.string", in: bytes)
        put(UInt64(1_000_000), at: key + 4, in: &bytes)
        assertRejects(bytes, ["count too large", "key 'test.string'", "string length 1000000", "past the end"])
    }

    func testRejectsAbsurdArrayCountWithoutAllocating() throws {
        var bytes = try typesBytes()
        let key = offset(after: "test.array_string", in: bytes)
        put(UInt64(1) << 60, at: key + 4 + 4, in: &bytes)  // after value type ARRAY and element type STRING
        let start = Date()
        assertRejects(bytes, ["count too large", "key 'test.array_string'", "array count \(UInt64(1) << 60)"])
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.5)
        put(UInt64.max, at: key + 4 + 4, in: &bytes)
        assertRejects(bytes, ["count too large", "test.array_string"])
        // The same for the header counts.
        var header = try typesBytes()
        put(UInt64(1) << 60, at: 8, in: &header)
        assertRejects(header, ["count too large", "tensor_count"])
        header = try typesBytes()
        put(UInt64(1) << 60, at: 16, in: &header)
        assertRejects(header, ["count too large", "metadata_kv_count"])
    }

    func testRejectsUnknownValueType() throws {
        var bytes = try typesBytes()
        put(UInt32(13), at: offset(after: "test.uint8", in: bytes), in: &bytes)
        assertRejects(bytes, ["unknown metadata value type", "key 'test.uint8'", "13"])
        bytes = try typesBytes()
        put(UInt32(99), at: offset(after: "test.array_int32", in: bytes) + 4, in: &bytes)
        assertRejects(bytes, ["unknown metadata value type", "key 'test.array_int32'", "array element type 99"])
    }

    func testRejectsDeeplyNestedArrays() {
        var b = Builder()
        var value: [UInt8] = []
        for _ in 0..<20 { value += le(UInt32(9)) + le(UInt64(1)) }  // element type ARRAY, count 1, ...
        value += le(UInt32(0)) + le(UInt64(0))
        b.metadata = [(key: "deep", type: 9, value: value)]
        assertRejects(b.bytes(), ["nested too deeply", "key 'deep'"])
    }

    func testRejectsDuplicateKeysAndTensorNames() throws {
        var bytes = try typesBytes()
        var at = offset(after: "test.int16", in: bytes) - 10
        bytes.replaceSubrange(at..<at + 10, with: Array("test.int32".utf8))
        assertRejects(bytes, ["duplicate metadata key", "key 'test.int32'"])
        bytes = try typesBytes()
        at = offset(after: "f16.3x64", in: bytes) - 8
        bytes.replaceSubrange(at..<at + 8, with: Array("f32.3x64".utf8))
        assertRejects(bytes, ["duplicate tensor name", "tensor 'f32.3x64'"])
    }

    func testRejectsInvalidAlignment() {
        var b = Builder()
        b.metadata = [(key: "general.alignment", type: 4, value: le(UInt32(48)))]
        assertRejects(b.bytes(), ["invalid alignment", "key 'general.alignment'", "48"])
    }

    func testRejectsUnknownTensorType() throws {
        var bytes = try typesBytes()
        let name = offset(after: "q4_0.3x64", in: bytes)
        put(UInt32(99), at: name + 4 + 2 * 8, in: &bytes)  // after n_dims and two dims
        assertRejects(bytes, ["unknown tensor type", "tensor 'q4_0.3x64'", "99"])
    }

    func testRejectsBadShapes() {
        var b = Builder()
        b.tensors = [(name: "five", dims: [1, 1, 1, 1, 1], type: 0, offset: 0)]
        assertRejects(b.bytes(), ["too many dimensions", "tensor 'five'", "n_dims is 5"])
        b.tensors = [(name: "huge", dims: [1 << 40, 1 << 40], type: 0, offset: 0)]
        assertRejects(b.bytes(), ["invalid shape", "tensor 'huge'", "overflows"])
        b.tensors = [(name: "bytes", dims: [1 << 62, 1], type: 0, offset: 0)]
        assertRejects(b.bytes(), ["invalid shape", "tensor 'bytes'", "byte size", "overflows"])
        b.tensors = [(name: "neg", dims: [UInt64.max], type: 0, offset: 0)]
        assertRejects(b.bytes(), ["invalid shape", "tensor 'neg'", "too large"])
        b.tensors = [(name: "ragged", dims: [33, 2], type: 8, offset: 0)]
        assertRejects(b.bytes(), ["invalid shape", "tensor 'ragged'", "Q8_0 (8)", "not a multiple of 32"])
    }

    func testRejectsTensorDataPastEnd() throws {
        let bytes = try typesBytes()
        let file = try GGUFFile(url: typesURL)
        let last = try XCTUnwrap(file.tensors["q4_1.2x3x32"])
        let end = file.dataOffset + last.offset + last.byteCount  // the writer pads the file after the last tensor
        XCTAssertEqual(file.tensorNames.last, last.name)
        XCTAssertNoThrow(try GGUFFile(data: Data(bytes[0..<end]), url: badURL))
        assertRejects(Array(bytes[0..<end - 1]), ["tensor data past end of file", "tensor 'q4_1.2x3x32'",
                                                  "bytes \(last.offset)..<\(last.offset + last.byteCount) of the data section",
                                                  "which is \(end - 1 - file.dataOffset) bytes"])
        var moved = bytes
        let name = offset(after: "f32.3x64", in: bytes)
        put(UInt64(1 << 20), at: name + 4 + 2 * 8 + 4, in: &moved)
        assertRejects(moved, ["tensor data past end of file", "tensor 'f32.3x64'", "1048576"])
        put(UInt64.max - 31, at: name + 4 + 2 * 8 + 4, in: &moved)
        assertRejects(moved, ["tensor data past end of file", "tensor 'f32.3x64'"])
    }

    func testRejectsMisalignedOffset() throws {
        var bytes = try typesBytes()
        let name = offset(after: "q8_0.3x64", in: bytes)
        let field = name + 4 + 2 * 8 + 4
        let original = bytes[field..<field + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        put(original + 4, at: field, in: &bytes)
        assertRejects(bytes, ["misaligned tensor offset", "tensor 'q8_0.3x64'", "\(original + 4)", "alignment 32"])
    }

    func testRandomCorruptionNeverCrashes() throws {
        let bytes = try typesBytes()
        let headerEnd = try GGUFFile(url: typesURL).dataOffset
        var rng = SeededGenerator(seed: 20240611)
        var rejected = 0
        for _ in 0..<2000 {
            var b = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                b[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            do {
                let file = try GGUFFile(data: Data(b), url: badURL)
                for name in file.tensorNames { _ = try? file.tensor(name) }
            } catch is GGUFError {
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 0)
    }

    // MARK: Real model (scripts/get-model.sh)

    func testRealModelMetadataIfPresent() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let url = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("\(url.path) is absent; run scripts/get-model.sh to fetch it")
        }
        let file = try GGUFFile(url: url)
        let m = file.metadata
        XCTAssertEqual(file.architecture, "llama")
        XCTAssertEqual(m["llama.block_count"]?.int, 30)
        XCTAssertEqual(m["llama.embedding_length"]?.int, 576)
        XCTAssertEqual(m["llama.attention.head_count"]?.int, 9)
        XCTAssertEqual(m["llama.attention.head_count_kv"]?.int, 3)
        XCTAssertEqual(m["llama.rope.freq_base"]?.float, 100_000)
        let tokens = try XCTUnwrap(m["tokenizer.ggml.tokens"]?.strings)
        XCTAssertEqual(tokens.count, 49152)
        XCTAssertEqual(tokens[1], "<|im_start|>")
        XCTAssertEqual(m["tokenizer.ggml.token_type"]?.ints?.count, 49152)
        XCTAssertEqual(file.tensorNames.count, 272)
        XCTAssertEqual(file.tensors["token_embd.weight"]?.shape, [49152, 576])
        XCTAssertEqual(file.tensors["blk.0.attn_k.weight"]?.shape, [192, 576])
        XCTAssertEqual(file.tensors["blk.0.ffn_down.weight"]?.shape, [576, 1536])
        for name in file.tensorNames {
            let t = try file.tensor(name)
            XCTAssertEqual(t.shape, file.tensors[name]!.shape, name)
            XCTAssertTrue(t.withUnsafeBufferPointer { $0.allSatisfy(\.isFinite) }, "\(name) has non-finite values")
        }
    }
}
