import Foundation
import XCTest

/// A test case with a fresh scratch folder per test (removed afterwards) and an assertion that an error names
/// what is wrong: the base of the tests that write broken models and check the messages they get back.
class ScratchTestCase: XCTestCase {
    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(type(of: self))-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    /// Asserts that `body` throws an error whose description contains every one of `needles`.
    func assertError(_ needles: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("no error thrown (expected one naming \(needles))", file: file, line: line)
        } catch {
            for n in needles {
                XCTAssertTrue("\(error)".contains(n), "error does not name '\(n)': \(error)", file: file, line: line)
            }
        }
    }
}
