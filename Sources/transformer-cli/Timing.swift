import ArgumentParser
import Foundation
import ArgumentParser
import Transformer

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
    /// Minimum printed width per column (default 12, or the column name's length).
    var widths: [String: Int] = [:]

    mutating func add(_ row: [String: JSONValue]) {
        rows.append(row)
        print(rowString(row))
        fflush(stdout)
    }

    func header() -> String {
        columns.map { $0.padding(toLength: width($0), withPad: " ", startingAt: 0) }.joined(separator: " ")
    }

    func rowString(_ row: [String: JSONValue]) -> String {
        columns.map { c in (row[c]?.display ?? "-").padding(toLength: width(c), withPad: " ", startingAt: 0) }
            .joined(separator: " ")
    }

    func width(_ column: String) -> Int { max(widths[column] ?? 12, column.count) }

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

/// `--threads N`: the engine's worker count for this command (`TRANSFORMER_THREADS` is the library-level default).
struct ThreadsOption: ParsableArguments {
    @Option(help: "Worker threads (default: TRANSFORMER_THREADS, else every core).") var threads: Int?

    /// Applies the flag; call first in `run()`.
    func apply() throws {
        guard let threads else { return }
        guard threads >= 1 && threads <= 1024 else { throw ValidationError("--threads must be between 1 and 1024, got \(threads)") }
        Threading.workers = threads
    }
}

/// A list of thread counts for benchmarks (`--threads 1,2,4`), and the scaling table printed after the rows.
enum ThreadList {
    static func parse(_ text: String?) throws -> [Int] {
        guard let text, !text.isEmpty else { return [Threading.workers] }
        let counts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard counts.allSatisfy({ $0 != nil && $0! >= 1 && $0! <= 1024 }) else {
            throw ValidationError("--threads takes comma-separated counts between 1 and 1024, got '\(text)'")
        }
        return counts.map { $0! }
    }

    /// For every row measured at the first count, the speed-up of each other count: time(first) ÷ time(count).
    static func printScaling(_ rows: [[String: JSONValue]], counts: [Int], key: [String], time: String) {
        guard counts.count > 1 else { return }
        func id(_ row: [String: JSONValue]) -> String { key.map { row[$0]?.display ?? "-" }.joined(separator: " ") }
        func seconds(_ row: [String: JSONValue]) -> Double? {
            if case .double(let v, _)? = row[time] { return v }
            return nil
        }
        func threads(_ row: [String: JSONValue]) -> Int? {
            if case .int(let v)? = row["threads"] { return v }
            return nil
        }
        print("-- scaling: \(time) at \(counts[0]) thread(s) ÷ \(time) at " + counts.dropFirst().map(String.init).joined(separator: ", "))
        for row in rows where threads(row) == counts[0] {
            guard let base = seconds(row) else { continue }
            let ratios = counts.dropFirst().map { n -> String in
                guard let other = rows.first(where: { threads($0) == n && id($0) == id(row) }), let t = seconds(other), t > 0
                else { return "-" }
                return String(format: "%d: %.2f×", n, base / t)
            }
            print("  \(id(row)): " + ratios.joined(separator: "  "))
        }
    }
}
