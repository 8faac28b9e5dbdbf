/// A recursive-descent parser from ``JinjaToken``s to the syntax tree, following jinja2's grammar and operator
/// precedence (loosest first):
///
/// `x if c else y` → `or` → `and` → `not` → comparisons (`== != < > <= >= in, not in`) → `+ -` → `~` →
/// `* / // %` → `**` → unary `- +` → primary with postfix `.name`, `[index]`, `[a:b:c]`, `(args)`, then filters
/// `| f(args)` and tests `is [not] t(args)`.
///
/// Statements: `if/elif/else`, `for ... in ... [if ...]` with `else`, `set` (plain, `ns.attr`, tuple, block form),
/// `macro`, `break`, `continue`, `generation`. Any other tag throws ``JinjaError/unsupported(_:)`` naming it.
struct JinjaParser {
    let tokens: [JinjaToken]
    var i = 0
    /// Current nesting of expressions and blocks; bounded so that hostile input cannot exhaust the stack.
    var depth = 0
    static let maxDepth = 200

    mutating func enter() throws {
        depth += 1
        if depth > Self.maxDepth { throw JinjaError.syntax("template nested more than \(Self.maxDepth) levels deep") }
    }

    init(_ tokens: [JinjaToken]) { self.tokens = tokens }

    static func parse(_ source: String) throws -> [JinjaNode] {
        var p = JinjaParser(try JinjaLexer.tokenize(source))
        let (body, end) = try p.parseBody(until: [])
        if let end { throw JinjaError.syntax("unexpected '{% \(end) %}'") }
        return body
    }

    var current: JinjaToken { tokens[i] }
    mutating func advance() { if i < tokens.count - 1 { i += 1 } }

    func describe(_ t: JinjaToken) -> String {
        switch t {
        case .text: return "text"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string '\(s)'"
        case .integer(let v): return "\(v)"
        case .float(let v): return "\(v)"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    mutating func expectOp(_ o: String) throws {
        guard current == .op(o) else { throw JinjaError.syntax("expected '\(o)', found \(describe(current))") }
        advance()
    }

    mutating func expectName() throws -> String {
        guard case .name(let n) = current else { throw JinjaError.syntax("expected a name, found \(describe(current))") }
        advance()
        return n
    }

    mutating func expectBlockEnd() throws {
        guard current == .blockEnd else { throw JinjaError.syntax("expected '%}', found \(describe(current))") }
        advance()
    }

    func isName(_ n: String) -> Bool { current == .name(n) }

    mutating func skipName(_ n: String) -> Bool {
        if isName(n) { advance(); return true }
        return false
    }

    mutating func skipOp(_ o: String) -> Bool {
        if current == .op(o) { advance(); return true }
        return false
    }

    // MARK: Statements

    /// Parses nodes until a block tag whose name is in `until` (returned, with the parser just after the name) or
    /// the end of the template (returns nil).
    mutating func parseBody(until: Set<String>) throws -> ([JinjaNode], String?) {
        var nodes: [JinjaNode] = []
        while true {
            switch current {
            case .eof:
                if !until.isEmpty {
                    throw JinjaError.syntax("unexpected end of template, expected " + until.sorted().map { "'{% \($0) %}'" }.joined(separator: " or "))
                }
                return (nodes, nil)
            case .text(let t):
                nodes.append(.text(t))
                advance()
            case .variableBegin:
                advance()
                let e = try parseExpression()
                guard current == .variableEnd else { throw JinjaError.syntax("expected '}}', found \(describe(current))") }
                advance()
                nodes.append(.output(e))
            case .blockBegin:
                advance()
                let name = try expectName()
                if until.contains(name) { return (nodes, name) }
                nodes.append(try parseStatement(name))
            default:
                throw JinjaError.syntax("unexpected \(describe(current))")
            }
        }
    }

    mutating func parseStatement(_ name: String) throws -> JinjaNode {
        try enter()
        defer { depth -= 1 }
        switch name {
        case "if":
            var branches: [(JinjaExpr, [JinjaNode])] = []
            var cond = try parseExpression()
            try expectBlockEnd()
            while true {
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((cond, body))
                if end == "elif" {
                    cond = try parseExpression()
                    try expectBlockEnd()
                    continue
                }
                var elseBody: [JinjaNode] = []
                if end == "else" {
                    try expectBlockEnd()
                    (elseBody, _) = try parseBody(until: ["endif"])
                }
                try expectBlockEnd()
                return .ifBlock(branches, elseBody)
            }
        case "for":
            let target = try parseAssignTarget(allowAttribute: false)
            guard skipName("in") else { throw JinjaError.syntax("expected 'in' in for loop, found \(describe(current))") }
            let iterable = try parseTupleOrExpression(withConditional: false)
            var filter: JinjaExpr?
            if skipName("if") { filter = try parseExpression() }
            if isName("recursive") { throw JinjaError.unsupported("recursive for loops") }
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["else", "endfor"])
            var empty: [JinjaNode] = []
            if end == "else" {
                try expectBlockEnd()
                (empty, _) = try parseBody(until: ["endfor"])
            }
            try expectBlockEnd()
            return .forLoop(target: target, iterable: iterable, filter: filter, body: body, empty: empty)
        case "set":
            let target = try parseAssignTarget(allowAttribute: true)
            if skipOp("=") {
                let value = try parseTupleOrExpression(withConditional: true)
                try expectBlockEnd()
                return .set(target, value)
            }
            guard case .name(let n) = target else { throw JinjaError.syntax("a block set assigns to a plain name") }
            var filters: [(String, [JinjaExpr], [(String, JinjaExpr)])] = []
            while skipOp("|") {
                let f = try expectName()
                var args: [JinjaExpr] = []
                var kwargs: [(String, JinjaExpr)] = []
                if current == .op("(") { (args, kwargs) = try parseCallArgs() }
                filters.append((f, args, kwargs))
            }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endset"])
            try expectBlockEnd()
            return .setBlock(n, body, filters)
        case "macro":
            let name = try expectName()
            try expectOp("(")
            var params: [(String, JinjaExpr?)] = []
            while !skipOp(")") {
                if !params.isEmpty { try expectOp(",") }
                if skipOp(")") { break }
                let p = try expectName()
                var def: JinjaExpr?
                if skipOp("=") { def = try parseExpression() }
                params.append((p, def))
            }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endmacro"])
            if case .name = current { advance() }  // optional name after endmacro
            try expectBlockEnd()
            return .macro(name, params, body)
        case "break":
            try expectBlockEnd()
            return .breakLoop
        case "continue":
            try expectBlockEnd()
            return .continueLoop
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            try expectBlockEnd()
            return .generation(body)
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endgeneration":
            throw JinjaError.syntax("unexpected '{% \(name) %}'")
        default:
            throw JinjaError.unsupported("the '{% \(name) %}' tag")
        }
    }

    mutating func parseAssignTarget(allowAttribute: Bool) throws -> JinjaTarget {
        let parenthesized = skipOp("(")
        let first = try expectName()
        if allowAttribute && skipOp(".") {
            let attr = try expectName()
            return .attribute(first, attr)
        }
        var names = [first]
        var sawComma = false
        while skipOp(",") {
            sawComma = true
            if case .name(let n) = current, n != "in" {
                advance()
                names.append(n)
            } else {
                break
            }
        }
        if parenthesized { try expectOp(")") }
        return names.count == 1 && !sawComma ? .name(first) : .tuple(names)
    }

    // MARK: Expressions

    /// `a, b` without brackets is a tuple (as in `{% set a = 1, 2 %}` and `for x in 1, 2`).
    mutating func parseTupleOrExpression(withConditional: Bool) throws -> JinjaExpr {
        let first = withConditional ? try parseExpression() : try parseOr()
        guard current == .op(",") else { return first }
        var items = [first]
        while skipOp(",") {
            if current == .blockEnd || current == .variableEnd || isName("if") { break }
            items.append(withConditional ? try parseExpression() : try parseOr())
        }
        return .tuple(items)
    }

    mutating func parseExpression() throws -> JinjaExpr {
        try enter()
        defer { depth -= 1 }
        let value = try parseOr()
        if skipName("if") {
            let cond = try parseOr()
            var otherwise: JinjaExpr?
            if skipName("else") { otherwise = try parseExpression() }
            return .conditional(value, cond, otherwise)
        }
        return value
    }

    mutating func parseOr() throws -> JinjaExpr {
        var left = try parseAnd()
        while skipName("or") { left = .logical("or", left, try parseAnd()) }
        return left
    }

    mutating func parseAnd() throws -> JinjaExpr {
        var left = try parseNot()
        while skipName("and") { left = .logical("and", left, try parseNot()) }
        return left
    }

    mutating func parseNot() throws -> JinjaExpr {
        if skipName("not") {
            try enter()
            defer { depth -= 1 }
            return .unary("not", try parseNot())
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> JinjaExpr {
        let left = try parseMath1()
        var ops: [(String, JinjaExpr)] = []
        while true {
            if case .op(let o) = current, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                advance()
                ops.append((o, try parseMath1()))
            } else if skipName("in") {
                ops.append(("in", try parseMath1()))
            } else if isName("not"), i + 1 < tokens.count, tokens[i + 1] == .name("in") {
                advance()
                advance()
                ops.append(("not in", try parseMath1()))
            } else {
                break
            }
        }
        return ops.isEmpty ? left : .compare(left, ops)
    }

    mutating func parseMath1() throws -> JinjaExpr {
        var left = try parseConcat()
        while case .op(let o) = current, o == "+" || o == "-" {
            advance()
            left = .binary(o, left, try parseConcat())
        }
        return left
    }

    mutating func parseConcat() throws -> JinjaExpr {
        var left = try parseMath2()
        while skipOp("~") { left = .binary("~", left, try parseMath2()) }
        return left
    }

    mutating func parseMath2() throws -> JinjaExpr {
        var left = try parsePow()
        while case .op(let o) = current, ["*", "/", "//", "%"].contains(o) {
            advance()
            left = .binary(o, left, try parsePow())
        }
        return left
    }

    mutating func parsePow() throws -> JinjaExpr {
        var left = try parseUnary(withFilter: true)
        while skipOp("**") { left = .binary("**", left, try parseUnary(withFilter: true)) }
        return left
    }

    mutating func parseUnary(withFilter: Bool) throws -> JinjaExpr {
        try enter()
        defer { depth -= 1 }
        var node: JinjaExpr
        if skipOp("-") {
            node = .unary("-", try parseUnary(withFilter: false))
        } else if skipOp("+") {
            node = .unary("+", try parseUnary(withFilter: false))
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    mutating func parsePrimary() throws -> JinjaExpr {
        let t = current
        switch t {
        case .name(let n):
            advance()
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .string(var s):
            advance()
            while case .string(let more) = current {  // adjacent literals concatenate
                s += more
                advance()
            }
            return .literal(.string(s))
        case .integer(let v):
            advance()
            return .literal(.int(v))
        case .float(let v):
            advance()
            return .literal(.double(v))
        case .op("("):
            advance()
            if skipOp(")") { return .tuple([]) }
            let first = try parseExpression()
            if skipOp(")") { return first }
            var items = [first]
            while skipOp(",") {
                if current == .op(")") { break }
                items.append(try parseExpression())
            }
            try expectOp(")")
            return .tuple(items)
        case .op("["):
            advance()
            var items: [JinjaExpr] = []
            while !skipOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if skipOp("]") { break }
                items.append(try parseExpression())
            }
            return .list(items)
        case .op("{"):
            advance()
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            while !skipOp("}") {
                if !pairs.isEmpty { try expectOp(",") }
                if skipOp("}") { break }
                let k = try parseExpression()
                try expectOp(":")
                pairs.append((k, try parseExpression()))
            }
            return .dict(pairs)
        default:
            throw JinjaError.syntax("unexpected \(describe(t)) in an expression")
        }
    }

    mutating func parsePostfix(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if skipOp(".") {
                switch current {
                case .name(let n):
                    advance()
                    node = .attribute(node, n)
                case .integer(let v):
                    advance()
                    node = .item(node, .literal(.int(v)))
                default:
                    throw JinjaError.syntax("expected an attribute name after '.', found \(describe(current))")
                }
            } else if skipOp("[") {
                node = try parseSubscript(node)
            } else if current == .op("(") {
                let (args, kwargs) = try parseCallArgs()
                node = .call(node, args, kwargs)
            } else {
                return node
            }
        }
    }

    mutating func parseSubscript(_ target: JinjaExpr) throws -> JinjaExpr {
        var parts: [JinjaExpr?] = [nil]
        var isSlice = false
        while true {
            if skipOp("]") { break }
            if skipOp(":") {
                isSlice = true
                parts.append(nil)
                guard parts.count <= 3 else { throw JinjaError.syntax("too many ':' in a slice") }
                continue
            }
            guard parts[parts.count - 1] == nil else { throw JinjaError.syntax("expected ']' or ':', found \(describe(current))") }
            parts[parts.count - 1] = try parseExpression()
        }
        if !isSlice {
            guard let index = parts[0] else { throw JinjaError.syntax("empty subscript []") }
            return .item(target, index)
        }
        while parts.count < 3 { parts.append(nil) }
        return .slice(target, parts[0], parts[1], parts[2])
    }

    mutating func parseCallArgs() throws -> ([JinjaExpr], [(String, JinjaExpr)]) {
        try expectOp("(")
        var args: [JinjaExpr] = []
        var kwargs: [(String, JinjaExpr)] = []
        while !skipOp(")") {
            if !(args.isEmpty && kwargs.isEmpty) { try expectOp(",") }
            if skipOp(")") { break }
            if current == .op("*") || current == .op("**") { throw JinjaError.unsupported("*args / **kwargs in calls") }
            if case .name(let n) = current, i + 1 < tokens.count, tokens[i + 1] == .op("=") {
                advance()
                advance()
                kwargs.append((n, try parseExpression()))
            } else {
                guard kwargs.isEmpty else { throw JinjaError.syntax("positional argument after keyword argument") }
                args.append(try parseExpression())
            }
        }
        return (args, kwargs)
    }

    mutating func parseFilterExpr(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if skipOp("|") {
                var name = try expectName()
                while skipOp(".") { name += "." + (try expectName()) }
                var args: [JinjaExpr] = []
                var kwargs: [(String, JinjaExpr)] = []
                if current == .op("(") { (args, kwargs) = try parseCallArgs() }
                node = .filter(node, name, args, kwargs)
            } else if skipName("is") {
                let negated = skipName("not")
                var name = try expectName()
                while skipOp(".") { name += "." + (try expectName()) }
                var args: [JinjaExpr] = []
                if current == .op("(") {
                    let (a, kw) = try parseCallArgs()
                    guard kw.isEmpty else { throw JinjaError.unsupported("keyword arguments to tests") }
                    args = a
                } else if startsTestArgument() {
                    if isName("is") { throw JinjaError.syntax("you cannot chain multiple tests with is") }
                    args = [try parsePostfix(try parsePrimary())]
                }
                node = .test(node, name, args, negated: negated)
            } else if current == .op("(") {
                let (args, kwargs) = try parseCallArgs()
                node = .call(node, args, kwargs)
            } else {
                return node
            }
        }
    }

    func startsTestArgument() -> Bool {
        switch current {
        case .name(let n): return !["else", "or", "and", "if", "in", "not", "is"].contains(n) || n == "is"
        case .string, .integer, .float: return true
        case .op(let o): return o == "[" || o == "{"
        default: return false
        }
    }
}
