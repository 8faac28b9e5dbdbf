import Foundation

/// Variables visible at one point of a render. A `for` loop gives every iteration a fresh child scope (so a
/// `{% set %}` inside a loop body is gone after the iteration, as in jinja2 — the reason templates use
/// `namespace()`); macros run in a child of the scope they were defined in; `if` opens no scope.
final class JinjaScope {
    var vars: [String: JinjaValue] = [:]
    let parent: JinjaScope?
    init(parent: JinjaScope?) { self.parent = parent }

    func lookup(_ name: String) -> JinjaValue? {
        var s: JinjaScope? = self
        while let c = s {
            if let v = c.vars[name] { return v }
            s = c.parent
        }
        return nil
    }
}

/// State shared by every evaluator of one render (macros render with evaluators of their own).
final class JinjaRenderState {
    /// Macro calls in progress; bounded as Python's recursion limit bounds jinja2.
    var callDepth = 0
    static let maxCallDepth = 100
    /// Characters produced by string and list repetition, bounded so a template cannot exhaust memory.
    static let maxRepeatedLength = 10_000_000
}

/// Walks the syntax tree with Python semantics and appends the output to a string.
struct JinjaEvaluator {
    /// The time `strftime_now` formats.
    let now: Date
    let state: JinjaRenderState
    var output = ""

    enum Flow { case normal, breakLoop, continueLoop }

    init(now: Date, state: JinjaRenderState = JinjaRenderState()) {
        self.now = now
        self.state = state
    }

    // MARK: Statements

    mutating func execute(_ nodes: [JinjaNode], _ scope: JinjaScope) throws -> Flow {
        for node in nodes {
            let flow = try execute(node, scope)
            if flow != .normal { return flow }
        }
        return .normal
    }

    mutating func execute(_ node: JinjaNode, _ scope: JinjaScope) throws -> Flow {
        switch node {
        case .text(let t):
            output += t
        case .output(let e):
            output += try evaluate(e, scope).pythonString
        case .ifBlock(let branches, let elseBody):
            for (cond, body) in branches where try evaluate(cond, scope).truthy {
                return try execute(body, scope)
            }
            return try execute(elseBody, scope)
        case .forLoop(let target, let iterableExpr, let filter, let body, let empty):
            let iterable = try evaluate(iterableExpr, scope)
            var items = try iterate(iterable)
            if let filter {
                items = try items.filter { item in
                    let s = JinjaScope(parent: scope)
                    try bind(target, item, s)
                    return try evaluate(filter, s).truthy
                }
            }
            if items.isEmpty { return try execute(empty, scope) }
            let n = items.count
            for (k, item) in items.enumerated() {
                let s = JinjaScope(parent: scope)
                try bind(target, item, s)
                var loop = JinjaDictionary()
                loop["index"] = .int(k + 1)
                loop["index0"] = .int(k)
                loop["revindex"] = .int(n - k)
                loop["revindex0"] = .int(n - k - 1)
                loop["first"] = .bool(k == 0)
                loop["last"] = .bool(k == n - 1)
                loop["length"] = .int(n)
                loop["depth"] = .int(1)
                loop["depth0"] = .int(0)
                loop["previtem"] = k > 0 ? items[k - 1] : .undefined("'loop.previtem' is undefined (first iteration)")
                loop["nextitem"] = k < n - 1 ? items[k + 1] : .undefined("'loop.nextitem' is undefined (last iteration)")
                loop["cycle"] = .function(JinjaFunction("loop.cycle") { args, _ in
                    guard !args.isEmpty else { throw JinjaError.runtime("no items for cycling given") }
                    return args[k % args.count]
                })
                s.vars["loop"] = .object(loop)
                if try execute(body, s) == .breakLoop { break }
            }
        case .set(let target, let valueExpr):
            let value = try evaluate(valueExpr, scope)
            try bind(target, value, scope)
        case .setBlock(let name, let body, let filters):
            var inner = JinjaEvaluator(now: now, state: state)
            _ = try inner.execute(body, scope)
            var value = JinjaValue.string(inner.output)
            for (f, argExprs, kwExprs) in filters {
                let args = try argExprs.map { try evaluate($0, scope) }
                let kwargs = try kwExprs.map { ($0.0, try evaluate($0.1, scope)) }
                value = try applyFilter(f, value, args, kwargs)
            }
            scope.vars[name] = value
        case .macro(let name, let params, let body):
            let now = self.now
            let state = self.state
            let defining = scope
            let macro = JinjaFunction(name) { args, kwargs in
                state.callDepth += 1
                defer { state.callDepth -= 1 }
                guard state.callDepth <= JinjaRenderState.maxCallDepth else {
                    throw JinjaError.runtime("maximum recursion depth exceeded in macro '\(name)'")
                }
                guard args.count <= params.count else {
                    throw JinjaError.runtime("macro '\(name)' takes not more than \(params.count) argument(s)")
                }
                let s = JinjaScope(parent: defining)
                var ev = JinjaEvaluator(now: now, state: state)
                for (k, (p, def)) in params.enumerated() {
                    if k < args.count {
                        s.vars[p] = args[k]
                    } else if let kw = kwargs.first(where: { $0.0 == p }) {
                        s.vars[p] = kw.1
                    } else if let def {
                        s.vars[p] = try ev.evaluate(def, s)
                    } else {
                        s.vars[p] = .undefined("'\(p)' is undefined (missing argument to macro '\(name)')")
                    }
                }
                for (k, _) in kwargs where !params.contains(where: { $0.0 == k }) {
                    throw JinjaError.runtime("macro '\(name)' has no argument '\(k)'")
                }
                _ = try ev.execute(body, s)
                return .string(ev.output)
            }
            scope.vars[name] = .function(macro)
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        case .generation(let body):
            return try execute(body, scope)
        }
        return .normal
    }

    func bind(_ target: JinjaTarget, _ value: JinjaValue, _ scope: JinjaScope) throws {
        switch target {
        case .name(let n):
            scope.vars[n] = value
        case .tuple(let names):
            let items = try iterate(value)
            guard items.count == names.count else {
                throw JinjaError.runtime(items.count > names.count
                    ? "too many values to unpack (expected \(names.count))"
                    : "not enough values to unpack (expected \(names.count), got \(items.count))")
            }
            for (n, v) in zip(names, items) { scope.vars[n] = v }
        case .attribute(let obj, let attr):
            guard case .namespace(let ns) = scope.lookup(obj) ?? .undefined(obj) else {
                throw JinjaError.runtime("cannot assign attribute on non-namespace object '\(obj)'")
            }
            ns.values[attr] = value
        }
    }

    /// The items a `for` loop visits: list elements, dictionary keys, string characters; nothing for undefined.
    func iterate(_ v: JinjaValue) throws -> [JinjaValue] {
        switch v {
        case .array(let a, _): return a
        case .object(let o): return o.keys.map { .string($0) }
        case .string(let s): return s.map { .string(String($0)) }
        case .undefined: return []
        default: throw JinjaError.runtime("'\(v.typeName)' object is not iterable")
        }
    }

    // MARK: Expressions

    mutating func evaluate(_ e: JinjaExpr, _ scope: JinjaScope) throws -> JinjaValue {
        switch e {
        case .literal(let l):
            return l.value
        case .name(let n):
            if let v = scope.lookup(n) { return v }
            if let g = globalFunction(n) { return g }
            return .undefined("'\(n)' is undefined")
        case .list(let items):
            return .list(try items.map { try evaluate($0, scope) })
        case .tuple(let items):
            return .array(try items.map { try evaluate($0, scope) }, isTuple: true)
        case .dict(let pairs):
            var o = JinjaDictionary()
            for (k, v) in pairs {
                guard case .string(let key) = try evaluate(k, scope) else {
                    throw JinjaError.unsupported("dictionary keys that are not strings")
                }
                o[key] = try evaluate(v, scope)
            }
            return .object(o)
        case .attribute(let objExpr, let name):
            return try getAttribute(try evaluate(objExpr, scope), name)
        case .item(let objExpr, let indexExpr):
            return try getItem(try evaluate(objExpr, scope), try evaluate(indexExpr, scope))
        case .slice(let objExpr, let a, let b, let c):
            let obj = try evaluate(objExpr, scope)
            func opt(_ x: JinjaExpr?) throws -> Int? {
                guard let x else { return nil }
                switch try evaluate(x, scope) {
                case .none: return nil
                case .int(let i): return i
                case .bool(let b): return b ? 1 : 0
                case let v: throw JinjaError.runtime("slice indices must be integers or None, not \(v.typeName)")
                }
            }
            return try slice(obj, try opt(a), try opt(b), try opt(c))
        case .call(let fnExpr, let argExprs, let kwExprs):
            let fn = try evaluate(fnExpr, scope)
            let args = try argExprs.map { try evaluate($0, scope) }
            let kwargs = try kwExprs.map { ($0.0, try evaluate($0.1, scope)) }
            guard case .function(let f) = fn else {
                if case .undefined(let why) = fn { throw JinjaError.runtime(why) }
                throw JinjaError.runtime("'\(fn.typeName)' object is not callable")
            }
            return try f.body(args, kwargs)
        case .filter(let valueExpr, let name, let argExprs, let kwExprs):
            let value = try evaluate(valueExpr, scope)
            let args = try argExprs.map { try evaluate($0, scope) }
            let kwargs = try kwExprs.map { ($0.0, try evaluate($0.1, scope)) }
            return try applyFilter(name, value, args, kwargs)
        case .test(let valueExpr, let name, let argExprs, let negated):
            let value = try evaluate(valueExpr, scope)
            let args = try argExprs.map { try evaluate($0, scope) }
            return .bool(try applyTest(name, value, args) != negated)
        case .unary(let op, let xExpr):
            let x = try evaluate(xExpr, scope)
            switch op {
            case "not": return .bool(!x.truthy)
            case "-":
                switch x {
                case .int(let i): return .int(-i)
                case .bool(let b): return .int(b ? -1 : 0)
                case .double(let d): return .double(-d)
                case .undefined(let why): throw JinjaError.runtime(why)
                default: throw JinjaError.runtime("bad operand type for unary -: '\(x.typeName)'")
                }
            default:
                switch x {
                case .int, .double: return x
                case .bool(let b): return .int(b ? 1 : 0)
                case .undefined(let why): throw JinjaError.runtime(why)
                default: throw JinjaError.runtime("bad operand type for unary +: '\(x.typeName)'")
                }
            }
        case .logical(let op, let aExpr, let bExpr):
            let a = try evaluate(aExpr, scope)
            if op == "and" { return a.truthy ? try evaluate(bExpr, scope) : a }
            return a.truthy ? a : try evaluate(bExpr, scope)
        case .binary(let op, let aExpr, let bExpr):
            return try binary(op, try evaluate(aExpr, scope), try evaluate(bExpr, scope))
        case .compare(let firstExpr, let ops):
            var left = try evaluate(firstExpr, scope)
            for (op, rightExpr) in ops {
                let right = try evaluate(rightExpr, scope)
                if !(try compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .conditional(let thenExpr, let condExpr, let elseExpr):
            if try evaluate(condExpr, scope).truthy { return try evaluate(thenExpr, scope) }
            if let elseExpr { return try evaluate(elseExpr, scope) }
            return .undefined("the inline if-expression evaluated to false and no else section was defined")
        }
    }

    // MARK: Attribute and item access

    /// `obj.name`: jinja2 tries the Python attribute (a method such as `items`), then the item.
    func getAttribute(_ obj: JinjaValue, _ name: String) throws -> JinjaValue {
        switch obj {
        case .undefined(let why):
            throw JinjaError.runtime(why)
        case .object(let o):
            if let m = try method(obj, name) { return m }
            return o[name] ?? .undefined("'dict object' has no attribute '\(name)'")
        case .namespace(let ns):
            return ns.values[name] ?? .undefined("'Namespace object' has no attribute '\(name)'")
        case .string, .array:
            if let m = try method(obj, name) { return m }
            return .undefined("'\(obj.typeName) object' has no attribute '\(name)'")
        default:
            return .undefined("'\(obj.typeName) object' has no attribute '\(name)'")
        }
    }

    /// `obj[key]`: jinja2 tries the item, then (for a string key) the attribute.
    func getItem(_ obj: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        switch (obj, key) {
        case (.undefined(let why), _):
            throw JinjaError.runtime(why)
        case (.object(let o), .string(let k)):
            if let v = o[k] { return v }
            return try getAttribute(obj, k)
        case (.namespace, .string(let k)):
            return try getAttribute(obj, k)
        case (.array(let a, _), _):
            guard let i = Self.intIndex(key) else {
                if case .string(let k) = key { return try getAttribute(obj, k) }
                return .undefined("list index must be an integer")
            }
            let j = i < 0 ? i + a.count : i
            return j >= 0 && j < a.count ? a[j] : .undefined("list index \(i) out of range")
        case (.string(let s), _):
            guard let i = Self.intIndex(key) else {
                if case .string(let k) = key { return try getAttribute(obj, k) }
                return .undefined("string index must be an integer")
            }
            let chars = Array(s)
            let j = i < 0 ? i + chars.count : i
            return j >= 0 && j < chars.count ? .string(String(chars[j])) : .undefined("string index \(i) out of range")
        default:
            return .undefined("'\(obj.typeName) object' has no item \(key.pythonRepr)")
        }
    }

    static func intIndex(_ v: JinjaValue) -> Int? {
        switch v {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// Python slice semantics for lists and strings.
    func slice(_ obj: JinjaValue, _ start: Int?, _ stop: Int?, _ step: Int?) throws -> JinjaValue {
        let step = step ?? 1
        guard step != 0 else { throw JinjaError.runtime("slice step cannot be zero") }
        func indices(_ n: Int) -> [Int] {
            func clamp(_ v: Int?, _ def: Int, lo: Int, hi: Int) -> Int {
                guard var v else { return def }
                if v < 0 { v += n }
                return min(max(v, lo), hi)
            }
            var out: [Int] = []
            if step > 0 {
                var i = clamp(start, 0, lo: 0, hi: n)
                let e = clamp(stop, n, lo: 0, hi: n)
                while i < e { out.append(i); i += step }
            } else {
                var i = clamp(start, n - 1, lo: -1, hi: n - 1)
                let e = clamp(stop, -1, lo: -1, hi: n - 1)
                while i > e { out.append(i); i += step }
            }
            return out
        }
        switch obj {
        case .array(let a, let t): return .array(indices(a.count).map { a[$0] }, isTuple: t)
        case .string(let s):
            let chars = Array(s)
            return .string(String(indices(chars.count).map { chars[$0] }))
        case .undefined(let why): throw JinjaError.runtime(why)
        default: throw JinjaError.runtime("'\(obj.typeName)' object is not subscriptable")
        }
    }

    // MARK: Operators

    enum Number { case int(Int), double(Double) }

    static func number(_ v: JinjaValue) -> Number? {
        switch v {
        case .int(let i): return .int(i)
        case .bool(let b): return .int(b ? 1 : 0)
        case .double(let d): return .double(d)
        default: return nil
        }
    }

    static func asDouble(_ n: Number) -> Double {
        switch n {
        case .int(let i): return Double(i)
        case .double(let d): return d
        }
    }

    func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        if op == "~" { return .string(a.pythonString + b.pythonString) }
        if case .undefined(let why) = a { throw JinjaError.runtime(why) }
        if case .undefined(let why) = b { throw JinjaError.runtime(why) }
        let typeError = JinjaError.runtime("unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'")
        if let x = Self.number(a), let y = Self.number(b) {
            switch (x, y) {
            case (.int(let i), .int(let j)):
                let overflow = JinjaError.unsupported("integers beyond 64 bits (Python's arbitrary precision)")
                switch op {
                case "+":
                    let (r, o) = i.addingReportingOverflow(j)
                    if o { throw overflow }
                    return .int(r)
                case "-":
                    let (r, o) = i.subtractingReportingOverflow(j)
                    if o { throw overflow }
                    return .int(r)
                case "*":
                    let (r, o) = i.multipliedReportingOverflow(by: j)
                    if o { throw overflow }
                    return .int(r)
                case "/":
                    guard j != 0 else { throw JinjaError.runtime("division by zero") }
                    return .double(Double(i) / Double(j))
                case "//":
                    guard j != 0 else { throw JinjaError.runtime("integer division or modulo by zero") }
                    let q = i / j
                    return .int((i % j != 0) && ((i < 0) != (j < 0)) ? q - 1 : q)
                case "%":
                    guard j != 0 else { throw JinjaError.runtime("integer division or modulo by zero") }
                    let r = i % j
                    return .int(r != 0 && ((r < 0) != (j < 0)) ? r + j : r)
                case "**":
                    if j < 0 { return .double(pow(Double(i), Double(j))) }
                    if i == 1 || j == 0 { return .int(1) }
                    if i == 0 { return .int(0) }
                    if i == -1 { return .int(j % 2 == 0 ? 1 : -1) }
                    var r = 1
                    for _ in 0..<j {  // |i| >= 2: overflows within 64 steps
                        let (m, o) = r.multipliedReportingOverflow(by: i)
                        if o { throw overflow }
                        r = m
                    }
                    return .int(r)
                default: throw typeError
                }
            default:
                let p = Self.asDouble(x), q = Self.asDouble(y)
                switch op {
                case "+": return .double(p + q)
                case "-": return .double(p - q)
                case "*": return .double(p * q)
                case "/":
                    guard q != 0 else { throw JinjaError.runtime("float division by zero") }
                    return .double(p / q)
                case "//":
                    guard q != 0 else { throw JinjaError.runtime("float floor division by zero") }
                    return .double((p / q).rounded(.down))
                case "%":
                    guard q != 0 else { throw JinjaError.runtime("float modulo") }
                    let r = fmod(p, q)
                    return .double(r != 0 && ((r < 0) != (q < 0)) ? r + q : r)
                case "**": return .double(pow(p, q))
                default: throw typeError
                }
            }
        }
        switch (op, a, b) {
        case ("+", .string(let x), .string(let y)):
            return .string(x + y)
        case ("+", .string, _):
            throw JinjaError.runtime("can only concatenate str (not \"\(b.typeName)\") to str")
        case ("+", .array(let x, let t), .array(let y, let u)) where t == u:
            return .array(x + y, isTuple: t)
        case ("+", .array, _):
            throw JinjaError.runtime("can only concatenate \(a.typeName) (not \"\(b.typeName)\") to \(a.typeName)")
        case ("*", .string(let s), _), ("*", _, .string(let s)):
            guard let n = Self.intIndex(Self.isString(a) ? b : a) else { throw typeError }
            guard n <= 0 || s.utf8.count <= JinjaRenderState.maxRepeatedLength / n else {
                throw JinjaError.runtime("string repetition too large")
            }
            return .string(n > 0 ? String(repeating: s, count: n) : "")
        case ("*", .array(let x, let t), _):
            guard let n = Self.intIndex(b) else { throw typeError }
            guard n <= 0 || x.count <= JinjaRenderState.maxRepeatedLength / n else {
                throw JinjaError.runtime("list repetition too large")
            }
            return .array(n > 0 ? Array([[JinjaValue]](repeating: x, count: n).joined()) : [], isTuple: t)
        case ("%", .string, _):
            throw JinjaError.unsupported("printf-style string formatting ('...' % value)")
        default:
            throw typeError
        }
    }

    static func isString(_ v: JinjaValue) -> Bool { if case .string = v { return true } else { return false } }

    func compare(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> Bool {
        switch op {
        case "==": return Self.equal(a, b)
        case "!=": return !Self.equal(a, b)
        case "in": return try contains(b, a)
        case "not in": return !(try contains(b, a))
        default:
            let c = try Self.order(a, b, op)
            switch op {
            case "<": return c < 0
            case ">": return c > 0
            case "<=": return c <= 0
            default: return c >= 0
            }
        }
    }

    /// Python `==`.
    static func equal(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        if let x = number(a), let y = number(b) {
            if case .int(let i) = x, case .int(let j) = y { return i == j }
            return asDouble(x) == asDouble(y)
        }
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.array(let x, let t), .array(let y, let u)):
            return t == u && x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.keys.allSatisfy { k in y[k].map { equal(x[k]!, $0) } ?? false }
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.function(let x), .function(let y)): return x === y
        default: return false
        }
    }

    /// Python ordering (`<` and friends): numbers, strings (by code point), lists; anything else is a TypeError.
    static func order(_ a: JinjaValue, _ b: JinjaValue, _ op: String) throws -> Int {
        if case .undefined(let why) = a { throw JinjaError.runtime(why) }
        if case .undefined(let why) = b { throw JinjaError.runtime(why) }
        if let x = number(a), let y = number(b) {
            if case .int(let i) = x, case .int(let j) = y { return i < j ? -1 : i > j ? 1 : 0 }
            let p = asDouble(x), q = asDouble(y)
            return p < q ? -1 : p > q ? 1 : 0
        }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            let xs = Array(x.unicodeScalars.map(\.value)), ys = Array(y.unicodeScalars.map(\.value))
            return xs.lexicographicallyPrecedes(ys) ? -1 : xs == ys ? 0 : 1
        case (.array(let x, _), .array(let y, _)):
            for (p, q) in zip(x, y) where !equal(p, q) { return try order(p, q, op) }
            return x.count < y.count ? -1 : x.count > y.count ? 1 : 0
        default:
            throw JinjaError.runtime("'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    /// Python `item in container`.
    func contains(_ container: JinjaValue, _ item: JinjaValue) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let sub) = item else {
                throw JinjaError.runtime("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return sub.isEmpty || s.range(of: sub, options: .literal) != nil
        case .array(let a, _): return a.contains { Self.equal($0, item) }
        case .object(let o):
            if case .string(let k) = item { return o[k] != nil }
            return false
        case .undefined: return false
        default: throw JinjaError.runtime("argument of type '\(container.typeName)' is not iterable")
        }
    }
}
