import Foundation
import XCTest
@testable import Tensor

final class SafeTensorsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("SafeTensorsTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    // MARK: Helpers

    /// Writes `prefix` (8-byte little-endian length, defaulting to the header's size), `header` and `buffer` as-is.
    @discardableResult
    private func writeFile(_ name: String = "test.safetensors", header: String, buffer: [UInt8] = [],
                           declaredLength: UInt64? = nil) throws -> URL {
        let json = Array(header.utf8)
        var bytes = withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { Array($0) }
        bytes += json + buffer
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// One header entry, `"name": {...}`, for hand-built headers.
    private func entry(_ name: String, _ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
        "\"\(name)\": {\"dtype\": \"\(dtype)\", \"shape\": \(shape), \"data_offsets\": [\(begin), \(end)]}"
    }

    /// The little-endian bytes of `values`, concatenated.
    private func littleEndianBytes<Bits: FixedWidthInteger>(_ values: [Bits]) -> [UInt8] {
        values.flatMap { value -> [UInt8] in withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    }

    /// A file with one tensor `x` of `dtype`, whose raw elements are `values` as little-endian `Bits`.
    private func writeSingleTensor<Bits: FixedWidthInteger>(dtype: String, values: [Bits]) throws -> URL {
        let buffer = littleEndianBytes(values)
        return try writeFile(header: "{\(entry("x", dtype, [values.count], 0, buffer.count))}", buffer: buffer)
    }

    /// Asserts that `body` throws a ``SafeTensorsError`` whose description contains every string in `expected`.
    private func assertFails<T>(_ expected: [String], file: StaticString = #filePath, line: UInt = #line,
                                _ body: () throws -> T) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let error = error as? SafeTensorsError else {
                return XCTFail("expected SafeTensorsError, got \(error)", file: file, line: line)
            }
            for text in expected {
                XCTAssertTrue(error.description.contains(text), "'\(text)' not in: \(error.description)",
                              file: file, line: line)
            }
        }
    }

    /// Asserts that opening `url` fails with a description naming the file and containing `expected`.
    private func assertOpenFails(_ url: URL, _ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertFails(expected + [url.lastPathComponent], file: file, line: line) { try SafeTensorsFile(url: url) }
    }

    // MARK: Round trip

    func testRoundTripPreservesTensorsShapesAndMetadata() throws {
        let tensors: [String: Tensor] = [
            "matrix": Tensor(shape: [2, 3], values: [1, -2, 3.5, .infinity, -0.0, 1e-30]),
            "scalar": Tensor(scalar: 42),
            "empty": Tensor(shape: [0], values: []),
            "empty.3d": Tensor(shape: [3, 0, 2], values: []),
            "layers.0/weight": Tensor(shape: [4, 1], values: [0.25, 0.5, 0.75, 1]),
        ]
        let url = directory.appendingPathComponent("round.safetensors")
        try SafeTensors.save(tensors, metadata: ["format": "pt", "note": "quotes \" and \\ survive"], to: url)

        let file = try SafeTensorsFile(url: url)
        XCTAssertEqual(file.names, tensors.keys.sorted())
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "quotes \" and \\ survive"])
        XCTAssertEqual(file.info("scalar")?.dtype, "F32")
        XCTAssertEqual(file.info("scalar")?.shape, [])
        XCTAssertEqual(file.info("empty.3d")?.shape, [3, 0, 2])
        XCTAssertNil(file.info("absent"))
        for (name, tensor) in tensors {
            XCTAssertEqual(try file.tensor(name), tensor, name)
        }
        XCTAssertEqual(try SafeTensors.load(url), tensors)
    }

    func testSaveWritesSortedContiguousF32WithHeaderPaddedToEightBytes() throws {
        let url = directory.appendingPathComponent("layout.safetensors")
        try SafeTensors.save(["b": Tensor([1, 2, 3]), "a": Tensor(scalar: 5)], to: url)
        let bytes = [UInt8](try Data(contentsOf: url))
        let length = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(length % 8, 0)
        XCTAssertEqual(bytes.count, 8 + length + 4 * 4)
        let header = String(decoding: bytes[8..<8 + length], as: UTF8.self)
        XCTAssertTrue(header.contains("\"a\":{\"data_offsets\":[0,4]"), header)
        XCTAssertTrue(header.contains("\"b\":{\"data_offsets\":[4,16]"), header)
        XCTAssertFalse(header.contains("__metadata__"), "empty metadata is omitted")
        XCTAssertEqual(Array(bytes[(8 + length)...].prefix(4)), [0x00, 0x00, 0xA0, 0x40])  // 5.0f little-endian
    }

    func testSaveRejectsReservedMetadataName() {
        let url = directory.appendingPathComponent("reserved.safetensors")
        assertFails(["invalid tensor name", "__metadata__"]) { try SafeTensors.save(["__metadata__": Tensor([1])], to: url) }
    }

    func testEmptyFileRoundTrips() throws {
        let url = directory.appendingPathComponent("none.safetensors")
        try SafeTensors.save([:], to: url)
        XCTAssertEqual(try SafeTensors.load(url), [:])
    }

    // MARK: Dtype conversion (expected values from the IEEE 754 / bfloat16 definitions)

    func testBF16ConvertsExactly() throws {
        let url = try writeSingleTensor(dtype: "BF16", values: [0x3F80, 0xC000, 0x3FC0, 0x0000, 0x8000, 0x7F80, 0xFF80,
                                                                0x0001, 0x7FC0] as [UInt16])
        let values = try SafeTensorsFile(url: url).tensor("x").scalars
        let expected: [Float] = [1, -2, 1.5, 0, -0.0, .infinity, -.infinity,
                                 Float(sign: .plus, exponent: -133, significand: 1)]  // 2^-126 · 2^-7
        XCTAssertEqual(Array(values.prefix(8)), expected)
        XCTAssertEqual(values[4].sign, .minus)
        XCTAssertTrue(values[8].isNaN)
    }

    func testF16ConvertsExactlyIncludingSubnormalsInfinityAndNaN() throws {
        let url = try writeSingleTensor(dtype: "F16", values: [0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0400, 0x03FF, 0x0001,
                                                               0x8000, 0x7C00, 0xFC00, 0x7E00] as [UInt16])
        let values = try SafeTensorsFile(url: url).tensor("x").scalars
        let expected: [Float] = [
            1, -2,
            1365.0 / 4096,                                   // (1 + 341/1024) · 2^-2
            65504,                                           // largest finite half
            Float(sign: .plus, exponent: -14, significand: 1),              // smallest normal
            Float(sign: .plus, exponent: -24, significand: 1023),           // largest subnormal, 1023 · 2^-24
            Float(sign: .plus, exponent: -24, significand: 1),              // smallest subnormal
            -0.0, .infinity, -.infinity,
        ]
        XCTAssertEqual(Array(values.prefix(10)), expected)
        XCTAssertEqual(values[7].sign, .minus)
        XCTAssertTrue(values[10].isNaN)
    }

    func testF16MatchesSwiftFloat16ForEveryBitPattern() throws {
        #if !(os(macOS) && arch(x86_64))  // Float16 is unavailable on Intel Macs
        let patterns = (0...UInt16.max).map { $0 }
        let values = try SafeTensorsFile(url: try writeSingleTensor(dtype: "F16", values: patterns)).tensor("x").scalars
        for (bits, value) in zip(patterns, values) where value.bitPattern != Float(Float16(bitPattern: bits)).bitPattern {
            return XCTFail("F16 0x\(String(bits, radix: 16)) converted to \(value), expected \(Float(Float16(bitPattern: bits)))")
        }
        #endif
    }

    func testF64ConvertsToNearestFloat() throws {
        let doubles: [Double] = [0.5, -3.25, 1024, 1e300]
        let url = try writeSingleTensor(dtype: "F64", values: doubles.map(\.bitPattern))
        XCTAssertEqual(try SafeTensorsFile(url: url).tensor("x").scalars, [0.5, -3.25, 1024, .infinity])
    }

    func testIntegerDtypesReadAsInts() throws {
        let i64: [Int64] = [0, 1, -1, 50256, .max]
        let i32: [Int32] = [7, -7]
        let buffer = littleEndianBytes(i64) + littleEndianBytes(i32) + [0xFF, 1, 0]  // then U8 255, BOOL true, false
        let header = "{" + [entry("ids", "I64", [5], 0, 40), entry("small", "I32", [2, 1], 40, 48),
                            entry("byte", "U8", [], 48, 49), entry("mask", "BOOL", [2], 49, 51)].joined(separator: ",") + "}"
        let file = try SafeTensorsFile(url: try writeFile(header: header, buffer: buffer))
        XCTAssertEqual(try file.integers("ids"), [0, 1, -1, 50256, Int.max])
        XCTAssertEqual(try file.integers("small"), [7, -7])
        XCTAssertEqual(try file.integers("byte"), [255])
        XCTAssertEqual(try file.integers("mask"), [1, 0])
        XCTAssertEqual(file.info("small")?.dtype, "I32")
        XCTAssertEqual(file.info("small")?.shape, [2, 1])
    }

    func testU64AboveIntMaxIsAnError() throws {
        let url = try writeSingleTensor(dtype: "U64", values: [1, UInt64.max])
        assertFails(["integer out of range", "'x'", "element 1"]) { try SafeTensorsFile(url: url).integers("x") }
    }

    func testTensorOnIntegerDtypeIsAnError() throws {
        let url = try writeSingleTensor(dtype: "I64", values: [1, 2] as [Int64])
        assertFails(["wrong dtype", "'x'", "I64", "integers(_:)", url.lastPathComponent]) {
            try SafeTensorsFile(url: url).tensor("x")
        }
        assertFails(["wrong dtype", "'x'"]) { try SafeTensors.load(url) }
    }

    func testIntegersOnFloatDtypeIsAnError() throws {
        let url = try writeSingleTensor(dtype: "F32", values: [Float(1).bitPattern])
        assertFails(["wrong dtype", "'x'", "F32"]) { try SafeTensorsFile(url: url).integers("x") }
    }

    func testUnknownTensorNameIsAnError() throws {
        let url = try writeSingleTensor(dtype: "F32", values: [Float(1).bitPattern])
        assertFails(["no such tensor", "'nope'", url.lastPathComponent]) { try SafeTensorsFile(url: url).tensor("nope") }
    }

    // MARK: Reference files

    /// Every fixture in the bundle was written by the reference (Python) implementation and must open and convert.
    func testOpensFilesWrittenByTheReferenceImplementation() throws {
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let urls = try FileManager.default.contentsOfDirectory(at: fixtures, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "safetensors" }
        for url in urls {
            let file = try SafeTensorsFile(url: url)
            for name in file.names {
                if ["F32", "F16", "BF16", "F64"].contains(file.info(name)!.dtype) {
                    XCTAssertEqual(try file.tensor(name).shape, file.info(name)!.shape)
                } else {
                    XCTAssertNoThrow(try file.integers(name))
                }
            }
        }
    }

    // MARK: Checkpoints

    private func writeIndex(_ weightMap: [String: String]) throws {
        let index: [String: Any] = ["metadata": ["total_size": 48], "weight_map": weightMap]
        try JSONSerialization.data(withJSONObject: index)
            .write(to: directory.appendingPathComponent(SafeTensorsCheckpoint.indexFileName))
    }

    func testShardedCheckpointReadsEveryShard() throws {
        try SafeTensors.save(["a": Tensor([1, 2]), "b": Tensor(scalar: 3)],
                             to: directory.appendingPathComponent("model-00001-of-00002.safetensors"))
        try SafeTensors.save(["c": Tensor(shape: [1, 2], values: [4, 5])],
                             to: directory.appendingPathComponent("model-00002-of-00002.safetensors"))
        try writeIndex(["a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                        "c": "model-00002-of-00002.safetensors"])

        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        XCTAssertEqual(checkpoint.names, ["a", "b", "c"])
        XCTAssertTrue(checkpoint.contains("c"))
        XCTAssertFalse(checkpoint.contains("d"))
        XCTAssertEqual(try checkpoint.tensor("a"), Tensor([1, 2]))
        XCTAssertEqual(try checkpoint.tensor("b"), Tensor(scalar: 3))
        XCTAssertEqual(try checkpoint.tensor("c"), Tensor(shape: [1, 2], values: [4, 5]))
        XCTAssertEqual(checkpoint.info("c")?.shape, [1, 2])
        assertFails(["no such tensor", "'d'", directory.lastPathComponent]) { try checkpoint.tensor("d") }
    }

    func testCheckpointFallsBackToSingleFile() throws {
        try SafeTensors.save(["w": Tensor([1, 2, 3])],
                             to: directory.appendingPathComponent(SafeTensorsCheckpoint.singleFileName))
        let checkpoint = try SafeTensorsCheckpoint(directory: directory)
        XCTAssertEqual(checkpoint.names, ["w"])
        XCTAssertEqual(try checkpoint.tensor("w"), Tensor([1, 2, 3]))
    }

    func testCheckpointWithoutAnyModelFileIsAnError() {
        assertFails(["file not found", SafeTensorsCheckpoint.singleFileName]) {
            try SafeTensorsCheckpoint(directory: directory)
        }
    }

    func testMissingShardIsAnError() throws {
        try SafeTensors.save(["a": Tensor([1])], to: directory.appendingPathComponent("shard-1.safetensors"))
        try writeIndex(["a": "shard-1.safetensors", "b": "shard-2.safetensors"])
        assertFails(["missing shard", "shard-2.safetensors", "'b'"]) { try SafeTensorsCheckpoint(directory: directory) }
    }

    func testIndexNamingTensorAbsentFromShardIsAnError() throws {
        try SafeTensors.save(["a": Tensor([1])], to: directory.appendingPathComponent("shard-1.safetensors"))
        try writeIndex(["a": "shard-1.safetensors", "ghost": "shard-1.safetensors"])
        assertFails(["no such tensor", "shard-1.safetensors", "'ghost'"]) { try SafeTensorsCheckpoint(directory: directory) }
    }

    func testIndexShardOutsideDirectoryIsAnError() throws {
        try writeIndex(["a": "../elsewhere.safetensors"])
        assertFails(["invalid index", "not a plain file name"]) { try SafeTensorsCheckpoint(directory: directory) }
    }

    // MARK: Invalid files: framing

    func testTruncatedFileIsAnError() throws {
        let url = directory.appendingPathComponent("short.safetensors")
        try Data([1, 0, 0, 0]).write(to: url)
        assertOpenFails(url, ["truncated", "4 bytes"])
    }

    func testHeaderLengthPastEndOfFileIsAnError() throws {
        let url = try writeFile(header: "{}", declaredLength: 1000)
        assertOpenFails(url, ["past end of file", "1000"])
    }

    func testHeaderLengthOver100MBIsAnError() throws {
        let url = try writeFile(header: "{}", declaredLength: 100_000_001)
        assertOpenFails(url, ["header too large", "100000001"])
    }

    func testHugeHeaderLengthDoesNotOverflow() throws {
        let url = try writeFile(header: "{}", declaredLength: .max)
        assertOpenFails(url, ["header too large"])
    }

    // MARK: Invalid files: header JSON

    func testBadJSONIsAnError() throws {
        let url = try writeFile(header: "{\"x\": {\"dtype\": \"F32\",")
        assertOpenFails(url, ["invalid header", "not valid JSON"])
    }

    func testHeaderThatIsNotAnObjectIsAnError() throws {
        let url = try writeFile(header: "[1, 2]")
        assertOpenFails(url, ["invalid header", "not a JSON object"])
    }

    func testHeaderWithInvalidUTF8IsAnError() throws {
        let url = directory.appendingPathComponent("utf8.safetensors")
        try Data([4, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0xFF, 0xFE, 0x7D]).write(to: url)
        assertOpenFails(url, ["invalid header", "UTF-8"])
    }

    func testNonStringMetadataIsAnError() throws {
        let url = try writeFile(header: "{\"__metadata__\": {\"n\": 3}}")
        assertOpenFails(url, ["invalid header", "__metadata__"])
    }

    func testEntryMissingDtypeIsAnError() throws {
        let url = try writeFile(header: "{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", buffer: [0, 0, 0, 0])
        assertOpenFails(url, ["invalid entry", "'w'", "missing 'dtype'"])
    }

    func testEntryThatIsNotAnObjectIsAnError() throws {
        let url = try writeFile(header: "{\"w\": 5}")
        assertOpenFails(url, ["invalid entry", "'w'"])
    }

    func testNonIntegerShapeIsAnError() throws {
        let url = try writeFile(header: "{\"w\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}",
                                buffer: [0, 0, 0, 0])
        assertOpenFails(url, ["invalid entry", "'w'", "'shape' must be an array of non-negative integers"])
    }

    func testNegativeShapeIsAnError() throws {
        let url = try writeFile(header: "{\(entry("w", "F32", [-1], 0, 4))}", buffer: [0, 0, 0, 0])
        assertOpenFails(url, ["invalid entry", "'w'", "non-negative", "[-1]"])
    }

    func testWrongNumberOfOffsetsIsAnError() throws {
        let url = try writeFile(header: "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}",
                                buffer: [0, 0, 0, 0])
        assertOpenFails(url, ["invalid entry", "'w'", "data_offsets"])
    }

    func testUnknownDtypeIsAnError() throws {
        let url = try writeFile(header: "{\(entry("w", "F17", [1], 0, 4))}", buffer: [0, 0, 0, 0])
        assertOpenFails(url, ["unknown dtype", "'w'", "F17"])
    }

    // MARK: Invalid files: layout

    func testOffsetsPastEndOfBufferIsAnError() throws {
        let url = try writeFile(header: "{\(entry("w", "F32", [2], 0, 8))}", buffer: [0, 0, 0, 0])
        assertOpenFails(url, ["invalid data_offsets", "'w'", "past the end"])
    }

    func testOffsetsBeginAfterEndIsAnError() throws {
        let url = try writeFile(header: "{\(entry("w", "F32", [0], 4, 0))}", buffer: [0, 0, 0, 0])
        assertOpenFails(url, ["invalid data_offsets", "'w'", "after end"])
    }

    func testSizeMismatchIsAnError() throws {
        let url = try writeFile(header: "{\(entry("w", "F32", [2, 2], 0, 12))}", buffer: Array(repeating: 0, count: 12))
        assertOpenFails(url, ["size mismatch", "'w'", "16", "12"])
    }

    func testOverflowingShapeIsAnErrorNotACrash() throws {
        let huge = 1 << 40
        let url = try writeFile(header: "{\(entry("w", "F32", [huge, huge, 0], 0, 0))}")
        assertOpenFails(url, ["invalid entry", "'w'", "overflows"])
    }

    func testOverlappingRangesIsAnError() throws {
        let header = "{\(entry("a", "F32", [2], 0, 8)), \(entry("b", "F32", [2], 4, 12))}"
        let url = try writeFile(header: header, buffer: Array(repeating: 0, count: 12))
        assertOpenFails(url, ["overlapping", "'b'", "'a'"])
    }

    func testHoleInBufferIsAnError() throws {
        let header = "{\(entry("a", "F32", [1], 0, 4)), \(entry("b", "F32", [1], 8, 12))}"
        let url = try writeFile(header: header, buffer: Array(repeating: 0, count: 12))
        assertOpenFails(url, ["hole in data buffer", "'b'", "4..<8"])
    }

    func testUnusedBytesAfterLastTensorAreAHole() throws {
        let url = try writeFile(header: "{\(entry("a", "F32", [1], 0, 4))}", buffer: Array(repeating: 0, count: 6))
        assertOpenFails(url, ["hole in data buffer", "4..<6"])
    }
}
