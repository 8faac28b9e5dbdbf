import Foundation

/// The filters, tests, global functions and Python methods (`str.strip()`, `dict.items()`, ...) that chat templates
/// use, each with jinja2's / Python's behaviour; HF's `tojson`, `raise_exception` and `strftime_now`. Anything else
/// throws ``JinjaError/unsupported(_:)`` naming it.
extension JinjaEvaluator {
    // MARK: Globals

    func globalFunction(_ name: String) -> JinjaValue? {
        let now = self.now
        switch name {
        case "raise_exception":
            return .function(JinjaFunction(name) { args, _ in
                throw JinjaError.raised(args.first?.pythonString ?? "")
            })
        case "strftime_now":
            return .function(JinjaFunction(name) { args, _ in
                guard case .string(let fmt)? = args.first else { throw JinjaError.runtime("strftime_now() needs a format string") }
                return .string(try Self.strftime(fmt, now))
            })
        case "namespace", "dict":
            return .function(JinjaFunction(name) { args, kwargs in
                var o = JinjaDictionary()
                for a in args {
                    guard case .object(let d) = a else { throw JinjaError.runtime("\(name)() positional argument must be a dict") }
                    for (k, v) in d.items { o[k] = v }
                }
                for (k, v) in kwargs { o[k] = v }
                return name == "dict" ? .object(o) : .namespace(JinjaNamespace(o))
            })
        case "range":
            return .function(JinjaFunction(name) { args, _ in
                let ints = try args.map { a -> Int in
                    guard let i = Self.intIndex(a) else { throw JinjaError.runtime("range() arguments must be integers") }
                    return i
                }
                var (start, stop, step) = (0, 0, 1)
                switch ints.count {
                case 1: stop = ints[0]
                case 2: (start, stop) = (ints[0], ints[1])
                case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
                default: throw JinjaError.runtime("range expected 1 to 3 arguments")
                }
                guard step != 0 else { throw JinjaError.runtime("range() arg 3 must not be zero") }
                var out: [JinjaValue] = []
                var i = start
                while step > 0 ? i < stop : i > stop {
                    out.append(.int(i))
                    i += step
                    if out.count > 1_000_000 { throw JinjaError.runtime("range too big") }
                }
                return .list(out)
            })
        case "cycler", "joiner", "lipsum", "self", "caller":
            return .function(JinjaFunction(name) { _, _ in throw JinjaError.unsupported("the global '\(name)'") })
        default:
            return nil
        }
    }

    /// Python `datetime.strftime` for the directives chat templates use (`%d %b %Y`, ...); glibc's `%-d` style
    /// flag drops padding.
    static func strftime(_ fmt: String, _ date: Date) throws -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone.current
        let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                      "October", "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        let year = c.year!, month = c.month!, day = c.day!, hour = c.hour!, minute = c.minute!, second = c.second!
        let weekday = c.weekday! - 1
        let dayOfYear = cal.ordinality(of: .day, in: .year, for: date) ?? 1
        var out = ""
        var it = Array(fmt).makeIterator()
        while let ch = it.next() {
            guard ch == "%" else { out.append(ch); continue }
            guard var d = it.next() else { out.append("%"); break }
            var pad = true
            if d == "-" {
                pad = false
                guard let n = it.next() else { out += "%-"; break }
                d = n
            }
            func num(_ v: Int, _ width: Int) -> String {
                pad ? String(repeating: "0", count: max(0, width - String(v).count)) + String(v) : String(v)
            }
            switch d {
            case "d": out += num(day, 2)
            case "e": out += pad ? (day < 10 ? " \(day)" : "\(day)") : "\(day)"
            case "m": out += num(month, 2)
            case "Y": out += String(year)
            case "y": out += num(year % 100, 2)
            case "H": out += num(hour, 2)
            case "I": out += num(hour % 12 == 0 ? 12 : hour % 12, 2)
            case "M": out += num(minute, 2)
            case "S": out += num(second, 2)
            case "p": out += hour < 12 ? "AM" : "PM"
            case "b", "h": out += String(months[month - 1].prefix(3))
            case "B": out += months[month - 1]
            case "a": out += String(days[weekday].prefix(3))
            case "A": out += days[weekday]
            case "w": out += String(weekday)
            case "j": out += num(dayOfYear, 3)
            case "F": out += "\(year)-\(num(month, 2))-\(num(day, 2))"
            case "%": out += "%"
            default: throw JinjaError.unsupported("strftime directive %\(d)")
            }
        }
        return out
    }

    // MARK: Methods

    /// A bound Python method of a string, dict or list, or nil when the type has no such attribute.
    func method(_ obj: JinjaValue, _ name: String) throws -> JinjaValue? {
        func fn(_ body: @escaping ([JinjaValue], [(String, JinjaValue)]) throws -> JinjaValue) -> JinjaValue {
            .function(JinjaFunction(name, body))
        }
        func optString(_ args: [JinjaValue], _ i: Int) throws -> String? {
            guard i < args.count else { return nil }
            switch args[i] {
            case .none: return nil
            case .string(let s): return s
            default: throw JinjaError.runtime("\(name)() argument must be str or None, not \(args[i].typeName)")
            }
        }
        switch obj {
        case .string(let s):
            switch name {
            case "strip", "lstrip", "rstrip":
                return fn { args, _ in
                    let chars = try optString(args, 0)
                    return .string(Self.pythonStrip(s, chars, leading: name != "rstrip", trailing: name != "lstrip"))
                }
            case "upper": return fn { _, _ in .string(s.uppercased()) }
            case "lower": return fn { _, _ in .string(s.lowercased()) }
            case "title": return fn { _, _ in .string(Self.pythonTitle(s)) }
            case "capitalize": return fn { _, _ in .string(Self.capitalize(s)) }
            case "startswith", "endswith":
                return fn { args, _ in
                    guard let first = args.first else { throw JinjaError.runtime("\(name)() takes at least 1 argument") }
                    let options: [JinjaValue]
                    if case .array(let a, _) = first { options = a } else { options = [first] }
                    for o in options {
                        guard case .string(let p) = o else { throw JinjaError.runtime("\(name) first arg must be str or a tuple of str") }
                        let hit = name == "startswith" ? s.unicodeScalars.starts(with: p.unicodeScalars)
                            : s.unicodeScalars.reversed().starts(with: p.unicodeScalars.reversed())
                        if hit { return .bool(true) }
                    }
                    return .bool(false)
                }
            case "split", "rsplit":
                return fn { args, kwargs in
                    let sep = try optString(args, 0) ?? kwargs.first(where: { $0.0 == "sep" }).flatMap { if case .string(let x) = $0.1 { return x } else { return nil } }
                    var maxsplit = -1
                    if args.count > 1, let m = Self.intIndex(args[1]) { maxsplit = m }
                    if let m = kwargs.first(where: { $0.0 == "maxsplit" }), let v = Self.intIndex(m.1) { maxsplit = v }
                    return .list(try Self.pythonSplit(s, sep, maxsplit, fromRight: name == "rsplit").map { .string($0) })
                }
            case "splitlines":
                return fn { _, _ in
                    var lines: [JinjaValue] = []
                    var cur = ""
                    var prevCR = false
                    for u in s.unicodeScalars {
                        if prevCR && u == "\n" { prevCR = false; continue }
                        prevCR = u == "\r"
                        if ["\n", "\r", "\u{0B}", "\u{0C}", "\u{1C}", "\u{1D}", "\u{1E}", "\u{85}", "\u{2028}", "\u{2029}"].contains(u) {
                            lines.append(.string(cur))
                            cur = ""
                        } else {
                            cur.unicodeScalars.append(u)
                        }
                    }
                    if !cur.isEmpty { lines.append(.string(cur)) }
                    return .list(lines)
                }
            case "replace":
                return fn { args, _ in
                    guard args.count >= 2, case .string(let old) = args[0], case .string(let new) = args[1] else {
                        throw JinjaError.runtime("replace() needs two string arguments")
                    }
                    let count = args.count > 2 ? Self.intIndex(args[2]) ?? -1 : -1
                    return .string(Self.pythonReplace(s, old, new, count))
                }
            case "join":
                return fn { args, _ in
                    guard let a = args.first else { throw JinjaError.runtime("join() takes exactly one argument") }
                    let parts = try iterate(a)
                    return .string(try parts.map { p -> String in
                        guard case .string(let x) = p else { throw JinjaError.runtime("sequence item: expected str instance, \(p.typeName) found") }
                        return x
                    }.joined(separator: s))
                }
            case "find", "rfind", "count", "index", "rindex":
                return fn { args, _ in
                    guard case .string(let sub)? = args.first else { throw JinjaError.runtime("\(name)() needs a string") }
                    let hay = Array(s.unicodeScalars), needle = Array(sub.unicodeScalars)
                    var hits: [Int] = []
                    var i = 0
                    while i + needle.count <= hay.count {
                        if Array(hay[i..<(i + needle.count)]) == needle {
                            hits.append(i)
                            i += max(needle.count, 1)
                        } else {
                            i += 1
                        }
                    }
                    switch name {
                    case "count": return .int(hits.count)
                    case "find": return .int(hits.first ?? -1)
                    case "rfind":
                        // rfind allows overlapping positions: scan from the right
                        var j = hay.count - needle.count
                        while j >= 0 { if Array(hay[j..<(j + needle.count)]) == needle { return .int(j) }; j -= 1 }
                        return .int(-1)
                    default:
                        guard let h = hits.first else { throw JinjaError.runtime("substring not found") }
                        return .int(h)
                    }
                }
            case "isdigit", "isalpha", "isspace", "isalnum", "islower", "isupper":
                return fn { _, _ in
                    guard !s.isEmpty else { return .bool(false) }
                    let u = s.unicodeScalars
                    switch name {
                    case "isdigit": return .bool(u.allSatisfy { $0.properties.numericType == .decimal || $0.properties.numericType == .digit })
                    case "isalpha": return .bool(u.allSatisfy { $0.properties.isAlphabetic })
                    case "isspace": return .bool(u.allSatisfy { $0.properties.isWhitespace })
                    case "isalnum": return .bool(u.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
                    case "islower": return .bool(s.lowercased() == s && s.uppercased() != s)
                    default: return .bool(s.uppercased() == s && s.lowercased() != s)
                    }
                }
            case "format", "format_map", "encode", "center", "ljust", "rjust", "zfill", "expandtabs", "partition",
                 "rpartition", "swapcase", "casefold", "translate", "maketrans", "removeprefix", "removesuffix",
                 "isnumeric", "isdecimal", "isidentifier", "isprintable", "istitle", "isascii":
                throw JinjaError.unsupported("the string method .\(name)()")
            default:
                return nil
            }
        case .object(let o):
            switch name {
            case "items": return fn { _, _ in .list(o.items.map { .array([.string($0.0), $0.1], isTuple: true) }) }
            case "keys": return fn { _, _ in .list(o.keys.map { .string($0) }) }
            case "values": return fn { _, _ in .list(o.items.map { $0.1 }) }
            case "get":
                return fn { args, _ in
                    guard case .string(let k)? = args.first else {
                        if args.isEmpty { throw JinjaError.runtime("get expected at least 1 argument") }
                        return args.count > 1 ? args[1] : .none
                    }
                    return o[k] ?? (args.count > 1 ? args[1] : .none)
                }
            case "copy", "pop", "popitem", "update", "setdefault", "clear", "fromkeys":
                throw JinjaError.unsupported("the dict method .\(name)() (the sandbox forbids changing data)")
            default:
                return nil
            }
        case .array:
            switch name {
            case "append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear", "copy", "index", "count":
                throw JinjaError.unsupported("the list method .\(name)()")
            default:
                return nil
            }
        default:
            return nil
        }
    }

    static func isPythonSpace(_ u: Unicode.Scalar) -> Bool {
        u.properties.isWhitespace || (0x1C...0x1F).contains(u.value)
    }

    static func pythonStrip(_ s: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        var u = Array(s.unicodeScalars)
        let set = chars.map { Set($0.unicodeScalars) }
        func strip(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isPythonSpace(c) }
        if trailing { while let l = u.last, strip(l) { u.removeLast() } }
        if leading {
            var k = 0
            while k < u.count, strip(u[k]) { k += 1 }
            u.removeFirst(k)
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: u)
        return String(out)
    }

    /// Python `str.title()`: a cased letter after an uncased character is uppercased, other letters lowercased.
    static func pythonTitle(_ s: String) -> String {
        var out = ""
        var prevCased = false
        for ch in s {
            let str = String(ch)
            let cased = ch.isCased
            out += prevCased ? str.lowercased() : titlecased(ch)
            prevCased = cased
        }
        return out
    }

    /// Python `str.capitalize()`: first character uppercased (titlecase), the rest lowercased.
    static func capitalize(_ s: String) -> String {
        guard let f = s.first else { return s }
        return titlecased(f) + s.dropFirst().lowercased()
    }

    /// Unicode titlecase of a character (Python uses it for the first letter in `capitalize()` and `title()`).
    static func titlecased(_ ch: Character) -> String {
        var out = ""
        for u in ch.unicodeScalars { out += u.properties.titlecaseMapping }
        return out
    }

    static func pythonReplace(_ s: String, _ old: String, _ new: String, _ count: Int) -> String {
        let hay = Array(s.unicodeScalars), needle = Array(old.unicodeScalars)
        var out = String.UnicodeScalarView()
        var done = 0
        if needle.isEmpty {
            // Python inserts `new` between characters and at both ends
            for (k, u) in hay.enumerated() {
                if count < 0 || done < count { out.append(contentsOf: new.unicodeScalars); done += 1 }
                out.append(u)
                _ = k
            }
            if count < 0 || done < count { out.append(contentsOf: new.unicodeScalars) }
            return String(out)
        }
        var i = 0
        while i < hay.count {
            if (count < 0 || done < count), i + needle.count <= hay.count, Array(hay[i..<(i + needle.count)]) == needle {
                out.append(contentsOf: new.unicodeScalars)
                i += needle.count
                done += 1
            } else {
                out.append(hay[i])
                i += 1
            }
        }
        return String(out)
    }

    static func pythonSplit(_ s: String, _ sep: String?, _ maxsplit: Int, fromRight: Bool) throws -> [String] {
        let u = Array(s.unicodeScalars)
        func str(_ a: ArraySlice<Unicode.Scalar>) -> String {
            var v = String.UnicodeScalarView()
            v.append(contentsOf: a)
            return String(v)
        }
        if let sep {
            let n = Array(sep.unicodeScalars)
            guard !n.isEmpty else { throw JinjaError.runtime("empty separator") }
            var parts: [String] = []
            if !fromRight {
                var start = 0, i = 0
                while i + n.count <= u.count {
                    if (maxsplit < 0 || parts.count < maxsplit), Array(u[i..<(i + n.count)]) == n {
                        parts.append(str(u[start..<i]))
                        i += n.count
                        start = i
                    } else {
                        i += 1
                    }
                }
                parts.append(str(u[start...]))
                return parts
            }
            var end = u.count, i = u.count - n.count
            while i >= 0 {
                if (maxsplit < 0 || parts.count < maxsplit), Array(u[i..<(i + n.count)]) == n {
                    parts.append(str(u[(i + n.count)..<end]))
                    end = i
                    i -= n.count
                } else {
                    i -= 1
                }
            }
            parts.append(str(u[0..<end]))
            return parts.reversed()
        }
        // whitespace split: runs of whitespace separate, no empty strings
        var words: [(Int, Int)] = []
        var i = 0
        while i < u.count {
            while i < u.count, isPythonSpace(u[i]) { i += 1 }
            guard i < u.count else { break }
            let st = i
            while i < u.count, !isPythonSpace(u[i]) { i += 1 }
            words.append((st, i))
        }
        if maxsplit < 0 || words.count <= maxsplit + 1 { return words.map { str(u[$0.0..<$0.1]) } }
        if !fromRight {
            var out = words[0..<maxsplit].map { str(u[$0.0..<$0.1]) }
            var rest = u[words[maxsplit].0...]
            while let l = rest.last, isPythonSpace(l) { rest.removeLast() }
            out.append(str(rest))
            return out
        }
        let keep = words.count - maxsplit
        var head = u[..<words[keep - 1].1]
        while let f = head.first, isPythonSpace(f) { head.removeFirst() }
        return [str(head)] + words[keep...].map { str(u[$0.0..<$0.1]) }
    }

    // MARK: Filters

    func applyFilter(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        func arg(_ i: Int, _ key: String) -> JinjaValue? {
            i < args.count ? args[i] : kwargs.first(where: { $0.0 == key })?.1
        }
        func str(_ v: JinjaValue) -> String { v.pythonString }
        switch name {
        case "trim":
            var chars: String?
            if case .string(let c)? = arg(0, "chars") { chars = c }
            return .string(Self.pythonStrip(str(value), chars, leading: true, trailing: true))
        case "length", "count":
            switch value {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .array(let a, _): return .int(a.count)
            case .object(let o): return .int(o.count)
            case .undefined: return .int(0)
            default: throw JinjaError.runtime("object of type '\(value.typeName)' has no len()")
            }
        case "tojson":
            // HF: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
            var indent: String?
            switch arg(1, "indent") {
            case .int(let n)?: indent = String(repeating: " ", count: max(0, n))
            case .string(let s)?: indent = s
            case .none?, .undefined?, nil: indent = nil
            case let v?: throw JinjaError.runtime("tojson indent must be an int or a string, not \(v.typeName)")
            }
            let ensureASCII = arg(0, "ensure_ascii")?.truthy ?? false
            let sortKeys = arg(3, "sort_keys")?.truthy ?? false
            var separators = indent == nil ? (", ", ": ") : (",", ": ")
            if case .array(let seps, _)? = arg(2, "separators"), seps.count == 2,
               case .string(let a) = seps[0], case .string(let b) = seps[1] {
                separators = (a, b)
            }
            var out = ""
            try Self.writeJSON(value, &out, indent: indent, level: 0, separators: separators,
                               ensureASCII: ensureASCII, sortKeys: sortKeys)
            return .string(out)
        case "upper": return .string(str(value).uppercased())
        case "lower": return .string(str(value).lowercased())
        case "capitalize": return .string(Self.capitalize(str(value)))
        case "title":
            // jinja2's title filter: words start after whitespace or one of - ( { [ <
            var out = ""
            var startOfWord = true
            for ch in str(value) {
                out += startOfWord ? String(ch).uppercased() : String(ch).lowercased()
                startOfWord = ch.isWhitespace || "-({[<".contains(ch)
            }
            return .string(out)
        case "default", "d":
            let fallback = arg(0, "default_value") ?? .string("")
            var boolean = false
            if let b = arg(1, "boolean") { boolean = b.truthy }
            if value.isUndefined || (boolean && !value.truthy) { return fallback }
            return value
        case "first", "last":
            let items = try iterate(value)
            guard let v = name == "first" ? items.first : items.last else {
                return .undefined("\(name) of an empty sequence")
            }
            return v
        case "list": return .list(try iterate(value))
        case "join":
            let sep = arg(0, "d").map(str) ?? ""
            var items = try iterate(value)
            if let attr = arg(1, "attribute") { items = try items.map { try getItemOrAttribute($0, attr) } }
            return .string(items.map(str).joined(separator: sep))
        case "replace":
            guard let old = arg(0, "old"), let new = arg(1, "new") else { throw JinjaError.runtime("replace needs old and new") }
            let count = arg(2, "count").flatMap { Self.intIndex($0) } ?? -1
            return .string(Self.pythonReplace(str(value), str(old), str(new), count))
        case "selectattr", "rejectattr":
            guard let attr = args.first else { throw JinjaError.runtime("\(name) needs an attribute name") }
            let keep = name == "selectattr"
            return .list(try iterate(value).filter { item in
                let v = try getItemOrAttribute(item, attr)
                let pass: Bool
                if args.count > 1 {
                    guard case .string(let test) = args[1] else { throw JinjaError.runtime("\(name) test name must be a string") }
                    pass = try applyTest(test, v, Array(args.dropFirst(2)))
                } else {
                    pass = v.truthy
                }
                return pass == keep
            })
        case "select", "reject":
            let keep = name == "select"
            return .list(try iterate(value).filter { item in
                let pass: Bool
                if let t = args.first {
                    guard case .string(let test) = t else { throw JinjaError.runtime("\(name) test name must be a string") }
                    pass = try applyTest(test, item, Array(args.dropFirst()))
                } else {
                    pass = item.truthy
                }
                return pass == keep
            })
        case "map":
            let items = try iterate(value)
            if let attr = kwargs.first(where: { $0.0 == "attribute" })?.1 {
                let def = kwargs.first(where: { $0.0 == "default" })?.1
                return .list(try items.map { item in
                    let v = try getItemOrAttribute(item, attr)
                    if v.isUndefined, let def { return def }
                    return v
                })
            }
            guard case .string(let f)? = args.first else { throw JinjaError.runtime("map needs a filter name or attribute=") }
            return .list(try items.map { try applyFilter(f, $0, Array(args.dropFirst()), []) })
        case "items":
            switch value {
            case .object(let o): return .list(o.items.map { .array([.string($0.0), $0.1], isTuple: true) })
            case .undefined: return .list([])
            default: throw JinjaError.runtime("items filter: '\(value.typeName)' is not a mapping")
            }
        case "string": return .string(str(value))
        case "safe", "escape", "e", "forceescape":
            if name == "safe" { return value.isUndefined ? .string("") : value }
            throw JinjaError.unsupported("the '\(name)' filter")
        case "int":
            let def = arg(0, "default") ?? .int(0)
            switch value {
            case .int: return value
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return d.isFinite ? .int(Int(d)) : def
            case .string(let s):
                let t = Self.pythonStrip(s, nil, leading: true, trailing: true).replacingOccurrences(of: "_", with: "")
                if let i = Int(t) { return .int(i) }
                if let d = Double(t), d.isFinite { return .int(Int(d)) }
                return def
            default: return def
            }
        case "float":
            let def = arg(0, "default") ?? .double(0)
            switch value {
            case .int(let i): return .double(Double(i))
            case .bool(let b): return .double(b ? 1 : 0)
            case .double: return value
            case .string(let s): return Double(Self.pythonStrip(s, nil, leading: true, trailing: true)).map { .double($0) } ?? def
            default: return def
            }
        case "abs":
            switch value {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            case .bool(let b): return .int(b ? 1 : 0)
            default: throw JinjaError.runtime("bad operand type for abs(): '\(value.typeName)'")
            }
        case "reverse":
            if case .string(let s) = value { return .string(String(s.reversed())) }
            return .list(try iterate(value).reversed())
        case "unique":
            var out: [JinjaValue] = []
            for v in try iterate(value) {
                let key = Self.caseFolded(v)
                if !out.contains(where: { Self.equal(Self.caseFolded($0), key) }) { out.append(v) }
            }
            return .list(out)
        case "sort":
            let reverse = arg(0, "reverse")?.truthy ?? false
            let caseSensitive = arg(1, "case_sensitive")?.truthy ?? false
            let attr = arg(2, "attribute")
            let items = try iterate(value)
            var keys = try items.map { item -> JinjaValue in
                let v = try attr.map { try getItemOrAttribute(item, $0) } ?? item
                return caseSensitive ? v : Self.caseFolded(v)
            }
            var order = Array(items.indices)
            var failure: Error?
            order.sort { a, b in
                do { return try Self.order(keys[a], keys[b], "<") < 0 } catch { failure = error; return false }
            }
            if let failure { throw failure }
            if reverse {
                // Python's sort(reverse=True) is stable with respect to equal keys
                order = Array(items.indices)
                order.sort { a, b in
                    do { return try Self.order(keys[a], keys[b], ">") > 0 } catch { failure = error; return false }
                }
                if let failure { throw failure }
            }
            keys = []
            return .list(order.map { items[$0] })
        case "indent":
            var width = "    "
            switch arg(0, "width") {
            case .int(let n)?: width = String(repeating: " ", count: n)
            case .string(let s)?: width = s
            default: break
            }
            let first = arg(1, "first")?.truthy ?? false
            let blank = arg(2, "blank")?.truthy ?? false
            var s = str(value)
            let newline = "\n"
            s += newline  // jinja2 appends a newline, then strips it
            var lines = s.components(separatedBy: newline)
            lines.removeLast()
            var out: [String] = []
            for (k, line) in lines.enumerated() {
                if k == 0 && !first { out.append(line); continue }
                if blank || !line.allSatisfy({ $0.isWhitespace }) { out.append(width + line) } else { out.append(line) }
            }
            return .string(out.joined(separator: newline))
        case "min", "max":
            let items = try iterate(value)
            guard var best = items.first else { return .undefined("\(name) of an empty sequence") }
            for v in items.dropFirst() {
                let c = try Self.order(Self.caseFolded(v), Self.caseFolded(best), "<")
                if (name == "min" && c < 0) || (name == "max" && c > 0) { best = v }
            }
            return best
        default:
            throw JinjaError.unsupported("the '\(name)' filter")
        }
    }

    /// Lowercases strings (jinja2's case-insensitive comparisons in sort/unique/min/max).
    static func caseFolded(_ v: JinjaValue) -> JinjaValue {
        if case .string(let s) = v { return .string(s.lowercased()) }
        return v
    }

    /// jinja2's `environment.getitem` for filter attributes: item first, then attribute; dotted paths and integer
    /// parts (`"a.0.b"`) walk down.
    func getItemOrAttribute(_ obj: JinjaValue, _ attr: JinjaValue) throws -> JinjaValue {
        guard case .string(let path) = attr else { return try getItem(obj, attr) }
        var v = obj
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            if v.isUndefined { return v }
            if let i = Int(part) { v = try getItem(v, .int(i)) } else { v = try getItem(v, .string(String(part))) }
        }
        return v
    }

    // MARK: Tests

    func applyTest(_ name: String, _ value: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        func other() throws -> JinjaValue {
            guard let a = args.first else { throw JinjaError.runtime("test '\(name)' needs an argument") }
            return a
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "string": if case .string = value { return true } else { return false }
        case "mapping": if case .object = value { return true } else { return false }
        case "iterable":
            switch value {
            case .string, .array, .object, .undefined: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .string, .array, .object: return true
            default: return false
            }
        case "number":
            switch value {
            case .int, .double, .bool: return true
            default: return false
            }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "callable": if case .function = value { return true } else { return false }
        case "equalto", "eq", "==": return Self.equal(value, try other())
        case "ne", "!=": return !Self.equal(value, try other())
        case "lt", "lessthan", "<": return try Self.order(value, try other(), "<") < 0
        case "le", "<=": return try Self.order(value, try other(), "<=") <= 0
        case "gt", "greaterthan", ">": return try Self.order(value, try other(), ">") > 0
        case "ge", ">=": return try Self.order(value, try other(), ">=") >= 0
        case "in": return try contains(try other(), value)
        case "sameas":
            let o = try other()
            switch (value, o) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            default: return Self.equal(value, o) && !(Self.isString(value))
            }
        case "odd", "even", "divisibleby":
            guard let i = Self.intIndex(value) else { throw JinjaError.runtime("test '\(name)' needs an integer") }
            if name == "odd" { return i % 2 != 0 }
            if name == "even" { return i % 2 == 0 }
            guard let d = Self.intIndex(try other()), d != 0 else { throw JinjaError.runtime("divisibleby needs a nonzero integer") }
            return i % d == 0
        case "lower", "upper":
            guard case .string(let s) = value else { return false }
            return name == "lower" ? s.lowercased() == s : s.uppercased() == s
        default:
            throw JinjaError.unsupported("the '\(name)' test")
        }
    }

    // MARK: JSON

    /// Python `json.dumps` (HF's `tojson` filter: `ensure_ascii=False` by default, optional indent, separators and
    /// sort_keys).
    static func writeJSON(_ v: JinjaValue, _ out: inout String, indent: String?, level: Int,
                          separators: (String, String), ensureASCII: Bool, sortKeys: Bool) throws {
        switch v {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            if d.isNaN { out += "NaN" } else if d.isInfinite { out += d > 0 ? "Infinity" : "-Infinity" } else { out += JinjaValue.pythonFloat(d) }
        case .string(let s): writeJSONString(s, &out, ensureASCII: ensureASCII)
        case .array(let a, _):
            if a.isEmpty { out += "[]"; return }
            out += "["
            for (k, item) in a.enumerated() {
                if k > 0 { out += separators.0 }
                if let indent { out += "\n" + String(repeating: indent, count: level + 1) }
                try writeJSON(item, &out, indent: indent, level: level + 1, separators: separators,
                              ensureASCII: ensureASCII, sortKeys: sortKeys)
            }
            if let indent { out += "\n" + String(repeating: indent, count: level) }
            out += "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{"
            let keys = sortKeys ? o.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) } : o.keys
            for (k, key) in keys.enumerated() {
                if k > 0 { out += separators.0 }
                if let indent { out += "\n" + String(repeating: indent, count: level + 1) }
                writeJSONString(key, &out, ensureASCII: ensureASCII)
                out += separators.1
                try writeJSON(o[key]!, &out, indent: indent, level: level + 1, separators: separators,
                              ensureASCII: ensureASCII, sortKeys: sortKeys)
            }
            if let indent { out += "\n" + String(repeating: indent, count: level) }
            out += "}"
        case .undefined: throw JinjaError.runtime("Object of type Undefined is not JSON serializable")
        case .namespace: throw JinjaError.runtime("Object of type Namespace is not JSON serializable")
        case .function: throw JinjaError.runtime("Object of type function is not JSON serializable")
        }
    }

    static func writeJSONString(_ s: String, _ out: inout String, ensureASCII: Bool) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || (ensureASCII && u.value > 0x7F) {
                    if u.value > 0xFFFF {
                        let v = u.value - 0x10000
                        out += String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF))
                    } else {
                        out += String(format: "\\u%04x", u.value)
                    }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}
