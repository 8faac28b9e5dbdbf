import Foundation

/// A parsed Jinja template, rendered the way Hugging Face renders chat templates: jinja2's
/// `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])` with the globals
/// `raise_exception`, `strftime_now`, `namespace`, `dict` and HF's `tojson` filter.
///
/// The supported subset is what chat templates use: `if/elif/else`, `for` (with `else`, a filter condition,
/// `loop.*`, `break`/`continue`), `set` (incl. `ns.attr` and block set), `macro`, `generation`; Python expressions
/// with jinja2's precedence; the filters, tests and string/dict methods in `JinjaBuiltins.swift`. A construct
/// outside it throws ``JinjaError/unsupported(_:)`` naming it, at parse time for tags and at render time for
/// filters, tests and methods; it never renders something different.
///
/// ```swift
/// let t = try JinjaTemplate("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}")
/// let s = try t.render(["messages": [["role": "user", "content": "hi"]]])
/// ```
public struct JinjaTemplate: Sendable {
    /// The template text.
    public let source: String
    let body: [JinjaNode]

    /// Parses `source`; throws ``JinjaError/syntax(_:)`` or ``JinjaError/unsupported(_:)``.
    public init(_ source: String) throws {
        self.source = source
        self.body = try JinjaParser.parse(source)
    }

    /// Renders with the given variables. `now` is the time `strftime_now` formats (local time zone).
    /// A template that calls `raise_exception(msg)` throws ``JinjaError/raised(_:)`` with `msg`.
    public func render(_ variables: [String: JinjaValue], now: Date = Date()) throws -> String {
        let root = JinjaScope(parent: nil)
        root.vars = variables
        var evaluator = JinjaEvaluator(now: now)
        _ = try evaluator.execute(body, root)
        return evaluator.output
    }
}
