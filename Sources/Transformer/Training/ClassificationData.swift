import Foundation

/// One text-classification example; `label` is nil for unlabelled input.
public struct ClassificationExample: Sendable, Equatable {
    public var text: String
    public var label: String?
    public init(text: String, label: String?) { (self.text, self.label) = (text, label) }
}

/// Reads classification data sets:
///
/// - CSV (RFC 4180): a header row naming a `text` column and (for training / evaluation) a `label` column, other
///   columns ignored; fields may be quoted with `"`, a quote inside a quoted field doubled (`""`), and quoted fields
///   may hold commas and line breaks. `\n` and `\r\n` line ends.
/// - JSONL: one object per line with a string `text` and a `label` (string or integer); blank lines skipped.
///
/// The format is chosen by extension (`.jsonl` / `.json` → JSONL, anything else CSV).
public enum ClassificationData {
    /// Loads `url`; with `requireLabels` every example must have a non-empty label.
    public static func load(_ url: URL, requireLabels: Bool) throws -> [ClassificationExample] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainingError.io("cannot read \(url.path)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TrainingError.invalidData("\(url.path) is not UTF-8")
        }
        let ext = url.pathExtension.lowercased()
        let examples = ext == "jsonl" || ext == "json" ? try parseJSONL(text, name: url.lastPathComponent)
            : try parseCSV(text, name: url.lastPathComponent)
        if requireLabels {
            if let i = examples.firstIndex(where: { ($0.label ?? "").isEmpty }) {
                throw TrainingError.invalidData("\(url.lastPathComponent): example \(i + 1) has no label")
            }
        }
        guard !examples.isEmpty else { throw TrainingError.invalidData("\(url.lastPathComponent) has no examples") }
        return examples
    }

    /// Splits CSV text into records of fields.
    public static func csvRecords(_ text: String) throws -> [[String]] {
        var records: [[String]] = []
        var record: [String] = []
        var field = ""
        var inQuotes = false, fieldStarted = false, wasQuoted = false
        var it = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func next() -> Unicode.Scalar? {
            if let p = pending { pending = nil; return p }
            return it.next()
        }
        var line = 1
        while let c = next() {
            if inQuotes {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" { field.unicodeScalars.append("\"") } else { inQuotes = false; pending = n }
                    } else { inQuotes = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"":
                if fieldStarted && !field.isEmpty || wasQuoted {
                    throw TrainingError.invalidData("CSV line \(line): quote inside an unquoted field")
                }
                inQuotes = true; fieldStarted = true; wasQuoted = true
            case ",":
                record.append(field); field = ""; fieldStarted = false; wasQuoted = false
            case "\r":
                continue
            case "\n":
                line += 1
                record.append(field); field = ""; fieldStarted = false; wasQuoted = false
                if !(record.count == 1 && record[0].isEmpty) { records.append(record) }
                record = []
            default:
                if wasQuoted { throw TrainingError.invalidData("CSV line \(line): text after a closing quote") }
                field.unicodeScalars.append(c); fieldStarted = true
            }
        }
        if inQuotes { throw TrainingError.invalidData("CSV: unterminated quoted field at end of file") }
        if fieldStarted || !record.isEmpty {
            record.append(field)
            records.append(record)
        }
        return records
    }

    static func parseCSV(_ text: String, name: String) throws -> [ClassificationExample] {
        let records = try csvRecords(text)
        guard let header = records.first else { throw TrainingError.invalidData("\(name) is empty") }
        let cols = header.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let ti = cols.firstIndex(of: "text") else {
            throw TrainingError.invalidData("\(name): the CSV header has no `text` column (found: \(header.joined(separator: ", ")))")
        }
        let li = cols.firstIndex(of: "label")
        var out: [ClassificationExample] = []
        for (n, r) in records.dropFirst().enumerated() {
            guard r.count == header.count else {
                throw TrainingError.invalidData("\(name): record \(n + 1) has \(r.count) fields, the header has \(header.count)")
            }
            out.append(ClassificationExample(text: r[ti], label: li.map { r[$0] }))
        }
        return out
    }

    static func parseJSONL(_ text: String, name: String) throws -> [ClassificationExample] {
        var out: [ClassificationExample] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let s = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if s.isEmpty { continue }
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any] else {
                throw TrainingError.invalidData("\(name) line \(n + 1) is not a JSON object")
            }
            guard let t = obj["text"] as? String else {
                throw TrainingError.invalidData("\(name) line \(n + 1) has no string \"text\"")
            }
            var label: String? = nil
            if let l = obj["label"] {
                if let s = l as? String { label = s } else if let i = l as? Int { label = String(i) } else if !(l is NSNull) {
                    throw TrainingError.invalidData("\(name) line \(n + 1): \"label\" must be a string or an integer")
                }
            }
            out.append(ClassificationExample(text: t, label: label))
        }
        return out
    }
}
