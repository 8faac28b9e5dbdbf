import ArgumentParser
import Foundation

/// Wall-clock seconds of the fastest of `repeats` runs of `body` (after one warm-up run).
func bestTime(repeats: Int, _ body: () -> Void) -> Double {
    body()
    var best = Double.infinity
    for _ in 0..<repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
    }
    return best
}

/// Rows of a benchmark: printed as an aligned table and optionally written as JSON.
struct Report {
    var columns: [String]
    var rows: [[String: JSONValue]] = []

    mutating func add(_ row: [String: JSONValue]) {
        rows.append(row)
        print(rowString(row))
        fflush(stdout)
    }

    func header() -> String {
        columns.map { $0.padding(toLength: max(12, $0.count), withPad: " ", startingAt: 0) }.joined(separator: " ")
    }

    func rowString(_ row: [String: JSONValue]) -> String {
        columns.map { c in (row[c]?.display ?? "-").padding(toLength: max(12, c.count), withPad: " ", startingAt: 0) }
            .joined(separator: " ")
    }

    func write(json path: String?, benchmark: String, extra: [String: JSONValue] = [:]) throws {
        guard let path else { return }
        var doc: [String: JSONValue] = extra
        doc["benchmark"] = .string(benchmark)
        doc["rows"] = .array(rows.map { .object($0) })
        let data = try JSONSerialization.data(withJSONObject: JSONValue.object(doc).foundation,
                                              options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
        FileHandle.standardError.write("wrote \(path)\n".data(using: .utf8)!)
    }
}

enum JSONValue {
    case string(String), int(Int), double(Double, digits: Int), bool(Bool), array([JSONValue]), object([String: JSONValue])

    static func num(_ v: Double, _ digits: Int = 2) -> JSONValue { .double(v, digits: digits) }

    var display: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d, let digits): return String(format: "%.\(digits)f", d)
        case .bool(let b): return b ? "yes" : "no"
        case .array(let a): return a.map(\.display).joined(separator: ",")
        case .object: return "{…}"
        }
    }

    var foundation: Any {
        switch self {
        case .string(let s): return s
        case .int(let i): return i
        case .double(let d, _): return d.isFinite ? d : NSNull()
        case .bool(let b): return b
        case .array(let a): return a.map(\.foundation)
        case .object(let o): return o.mapValues(\.foundation)
        }
    }
}

/// Throws a ValidationError naming `flag` unless every value is in `range` (benchmark sizes, counts).
func requireInRange(_ flag: String, _ values: [Int], _ range: ClosedRange<Int>) throws {
    for v in values where !range.contains(v) {
        throw ValidationError("\(flag) must be in \(range.lowerBound)...\(range.upperBound), got \(v)")
    }
}

func stderrPrint(_ s: String) { FileHandle.standardError.write((s + "\n").data(using: .utf8)!) }
