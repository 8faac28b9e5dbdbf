/// The syntax tree of a parsed template: statements (``JinjaNode``) holding expressions (``JinjaExpr``).

/// A statement.
indirect enum JinjaNode: Sendable {
    /// Literal text.
    case text(String)
    /// `{{ expr }}`
    case output(JinjaExpr)
    /// `{% if %}` with its `elif` branches folded in: (condition, body) pairs, then the `else` body.
    case ifBlock([(JinjaExpr, [JinjaNode])], [JinjaNode])
    /// `{% for target in iterable [if filter] %}body{% else %}empty{% endfor %}`
    case forLoop(target: JinjaTarget, iterable: JinjaExpr, filter: JinjaExpr?, body: [JinjaNode], empty: [JinjaNode])
    /// `{% set target = value %}`
    case set(JinjaTarget, JinjaExpr)
    /// `{% set name %}body{% endset %}` (block set), with optional filters applied to the rendered body.
    case setBlock(String, [JinjaNode], [(String, [JinjaExpr], [(String, JinjaExpr)])])
    /// `{% macro name(params) %}body{% endmacro %}`; params have optional defaults.
    case macro(String, [(String, JinjaExpr?)], [JinjaNode])
    /// `{% break %}`
    case breakLoop
    /// `{% continue %}`
    case continueLoop
    /// `{% generation %}body{% endgeneration %}` (HF's AssistantTracker extension): renders its body.
    case generation([JinjaNode])
}

/// What a `for` or `set` assigns to.
enum JinjaTarget: Sendable {
    /// A variable.
    case name(String)
    /// Several variables unpacked from a sequence: `for k, v in ...`.
    case tuple([String])
    /// `ns.attr` (only namespaces can be assigned to).
    case attribute(String, String)
}

/// An expression.
indirect enum JinjaExpr: Sendable {
    case literal(JinjaLiteral)
    case name(String)
    case list([JinjaExpr])
    case tuple([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    /// `a.name`
    case attribute(JinjaExpr, String)
    /// `a[index]`
    case item(JinjaExpr, JinjaExpr)
    /// `a[start:stop:step]`
    case slice(JinjaExpr, JinjaExpr?, JinjaExpr?, JinjaExpr?)
    /// `f(args, name=value)`
    case call(JinjaExpr, [JinjaExpr], [(String, JinjaExpr)])
    /// `value | name(args)`
    case filter(JinjaExpr, String, [JinjaExpr], [(String, JinjaExpr)])
    /// `value is [not] name(args)`
    case test(JinjaExpr, String, [JinjaExpr], negated: Bool)
    case unary(String, JinjaExpr)
    case binary(String, JinjaExpr, JinjaExpr)
    /// `a and b`, `a or b` (short-circuit, returning an operand as Python does)
    case logical(String, JinjaExpr, JinjaExpr)
    /// Chained comparison `a < b < c`.
    case compare(JinjaExpr, [(String, JinjaExpr)])
    /// `then if cond else otherwise` (no `else`: undefined).
    case conditional(JinjaExpr, JinjaExpr, JinjaExpr?)
}

/// A constant in the template source.
enum JinjaLiteral: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)

    var value: JinjaValue {
        switch self {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        }
    }
}
