import Foundation

/// A value seen by a Jinja template, with Python's semantics (what Python's jinja2 sees when Hugging Face renders a
/// chat template): `None`, booleans, integers, floats, strings, lists, insertion-ordered dictionaries with string
/// keys, plus the template-only kinds (undefined variables, `namespace()` objects, callables).
public indirect enum JinjaValue {
    /// A name or attribute that does not exist (jinja2's default `Undefined`): prints as "", is falsy, iterates as
    /// empty; arithmetic or attribute access on it throws. The payload names it for error messages.
    case undefined(String)
    /// Python `None` (`none` in templates).
    case none
    /// A boolean.
    case bool(Bool)
    /// An integer.
    case int(Int)
    /// A float.
    case double(Double)
    /// A string.
    case string(String)
    /// A list (Python tuples are lists here, except that ``isTuple`` changes how they print).
    case array([JinjaValue], isTuple: Bool = false)
    /// A dictionary with string keys, in insertion order.
    case object(JinjaDictionary)
    /// A `namespace(...)` object: the only mutable value (`{% set ns.x = ... %}`).
    case namespace(JinjaNamespace)
    /// A callable: global function, bound method or macro.
    case function(JinjaFunction)

    /// A list.
    public static func list(_ items: [JinjaValue]) -> JinjaValue { .array(items, isTuple: false) }

    /// The value of a JSON document (objects keep their key order, as Python's `json.load` does).
    public init(json text: String) throws {
        var parser = OrderedJSONParser(Array(text.utf8))
        self = try parser.parseDocument()
    }

    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    var isNone: Bool { if case .none = self { return true } else { return false } }

    /// Python truthiness.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a, _): return !a.isEmpty
        case .object(let o): return !o.isEmpty
        case .namespace, .function: return true
        }
    }

    /// Python's type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array(_, let t): return t ? "tuple" : "list"
        case .object: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        }
    }

    /// Python `str(value)`: what `{{ value }}` prints.
    var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return pythonRepr
        }
    }

    /// Python `repr(value)`.
    var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return Self.pythonFloat(d)
        case .string(let s): return Self.pythonStringRepr(s)
        case .array(let a, let isTuple):
            let inner = a.map(\.pythonRepr).joined(separator: ", ")
            if isTuple { return a.count == 1 ? "(\(inner),)" : "(\(inner))" }
            return "[\(inner)]"
        case .object(let o):
            return "{" + o.keys.map { Self.pythonStringRepr($0) + ": " + o[$0]!.pythonRepr }.joined(separator: ", ") + "}"
        case .namespace(let ns):
            return "<Namespace " + ns.values.keys.map { "\($0)=\(ns.values[$0]!.pythonRepr)" }.joined(separator: ", ") + ">"
        case .function(let f): return "<function \(f.name)>"
        }
    }

    /// Python's `repr(float)`: shortest round-trip digits, `1.0` for integral values, exponent form outside
    /// [1e-4, 1e16).
    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        // Swift's description is also the shortest round-trip representation; only the exponent thresholds and
        // spelling differ.
        let mag = abs(d)
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        if mag >= 1e16 || mag < 1e-4 {
            var s = "\(d)"  // e.g. "1e+16", "1.5e-05"
            if !s.contains("e") {
                // Swift prints some of these in positional form; rebuild scientific notation
                let exp = Int(floor(log10(mag)))
                let mant = d / pow(10, Double(exp))
                s = "\(mant)e\(exp >= 0 ? "+" : "-")\(abs(exp) < 10 ? "0" : "")\(abs(exp))"
            }
            // Python: mantissa without ".0", exponent with at least two digits
            if let e = s.firstIndex(of: "e") {
                var mant = String(s[..<e])
                if mant.hasSuffix(".0") { mant.removeLast(2) }
                var exp = String(s[s.index(after: e)...])
                var sign = "+"
                if exp.hasPrefix("-") { sign = "-"; exp.removeFirst() } else if exp.hasPrefix("+") { exp.removeFirst() }
                if exp.count < 2 { exp = "0" + exp }
                return mant + "e" + sign + exp
            }
            return s
        }
        var s = "\(d)"
        if s.contains("e") {  // Swift uses exponents for some values Python prints positionally
            s = String(format: "%.17g", d)
            if let v = Double(s), v == d {
                // trim to shortest
                for p in 1...17 {
                    let t = String(format: "%.\(p)g", d)
                    if Double(t) == d { s = t; break }
                }
            }
        }
        if !s.contains(".") && !s.contains("e") { s += ".0" }
        return s
    }

    /// Python's `repr(str)`: single quotes unless the string contains a single quote and no double quote.
    static func pythonStringRepr(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(u) == quote {
                    out += "\\" + String(quote)
                } else if u.value < 0x20 || u.value == 0x7F {
                    out += String(format: "\\x%02x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out.append(quote)
        return out
    }
}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByFloatLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .list(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) {
        var o = JinjaDictionary()
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
}

/// An insertion-ordered dictionary with string keys (a Python `dict` as chat templates use them).
public struct JinjaDictionary {
    /// Keys in insertion order.
    public private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    /// An empty dictionary.
    public init() {}

    /// Number of entries.
    public var count: Int { keys.count }
    /// Whether there are no entries.
    public var isEmpty: Bool { keys.isEmpty }

    /// Reads or writes an entry; writing `nil` removes it. A new key goes last, an existing one keeps its place.
    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    /// (key, value) pairs in order.
    public var items: [(String, JinjaValue)] { keys.map { ($0, storage[$0]!) } }
}

/// The object `namespace(...)` returns: attributes that a `{% set ns.name = ... %}` inside a loop can change.
public final class JinjaNamespace {
    var values: JinjaDictionary
    init(_ values: JinjaDictionary) { self.values = values }
}

/// A callable value: positional arguments and keyword arguments in, a value out.
public final class JinjaFunction {
    let name: String
    let body: ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue
    init(_ name: String, _ body: @escaping ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue) {
        self.name = name
        self.body = body
    }
}

/// A JSON parser that keeps object key order (Python's `json.load` does; `JSONSerialization` does not, and key
/// order shows in `tojson` output and `items()` loops).
struct OrderedJSONParser {
    let b: [UInt8]
    var i = 0
    init(_ bytes: [UInt8]) { b = bytes }

    mutating func parseDocument() throws -> JinjaValue {
        let v = try parseValue()
        skipSpace()
        guard i == b.count else { throw fail("trailing characters") }
        return v
    }

    func fail(_ what: String) -> JinjaError {
        JinjaError.invalidInput("JSON: \(what) at byte \(i)")
    }

    mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func parseValue() throws -> JinjaValue {
        skipSpace()
        guard i < b.count else { throw fail("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var o = JinjaDictionary()
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let k = try parseString()
                skipSpace()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                o[k] = try parseValue()
                skipSpace()
                guard i < b.count else { throw fail("unterminated object") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            i += 1
            var a = [JinjaValue]()
            skipSpace()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .list(a) }
            while true {
                a.append(try parseValue())
                skipSpace()
                guard i < b.count else { throw fail("unterminated array") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .list(a) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .none)
        default:
            return try parseNumber()
        }
    }

    mutating func literal(_ word: String, _ v: JinjaValue) throws -> JinjaValue {
        let w = Array(word.utf8)
        guard i + w.count <= b.count, Array(b[i..<(i + w.count)]) == w else { throw fail("invalid literal") }
        i += w.count
        return v
    }

    mutating func parseNumber() throws -> JinjaValue {
        let start = i
        var isFloat = false
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        while i < b.count {
            let c = b[i]
            if c >= 0x30 && c <= 0x39 {
                i += 1
            } else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
                        || c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                isFloat = true
                i += 1
            } else {
                break
            }
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        if !isFloat, let v = Int(text) { return .int(v) }
        guard let d = Double(text), !text.isEmpty else { throw fail("invalid number '\(text)'") }
        return .double(d)
    }

    mutating func parseString() throws -> String {
        i += 1  // opening quote
        var bytes = [UInt8]()
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c != UInt8(ascii: "\\") { bytes.append(c); continue }
            guard i < b.count else { throw fail("unterminated escape") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "/"), UInt8(ascii: "\\"), UInt8(ascii: "\""): bytes.append(e)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), i + 1 < b.count, b[i] == UInt8(ascii: "\\"),
                   b[i + 1] == UInt8(ascii: "u") {
                    i += 2
                    let low = try hex4()
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                bytes.append(contentsOf: Array(String(u).utf8))
            default: throw fail("invalid escape")
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= b.count, let v = UInt32(String(decoding: b[i..<(i + 4)], as: UTF8.self), radix: 16) else {
            throw fail("invalid \\u escape")
        }
        i += 4
        return v
    }
}
