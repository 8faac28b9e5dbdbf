import Foundation

/// Errors from parsing or rendering a Jinja template.
public enum JinjaError: Error, CustomStringConvertible, Equatable {
    /// The template is not valid Jinja (what jinja2 reports as a `TemplateSyntaxError`).
    case syntax(String)
    /// Valid Jinja that this interpreter does not implement (a tag, filter, test or method outside the chat-template
    /// subset). Never silently rendered differently.
    case unsupported(String)
    /// The template called `raise_exception(message)`; the payload is the message.
    case raised(String)
    /// Rendering failed as it would in Python (undefined variable used in arithmetic, type error, bad index).
    case runtime(String)
    /// Bad input data (e.g. a messages JSON file that does not parse).
    case invalidInput(String)

    public var description: String {
        switch self {
        case .syntax(let s): return "template syntax error: \(s)"
        case .unsupported(let s): return "unsupported in chat templates: \(s)"
        case .raised(let s): return s
        case .runtime(let s): return "template error: \(s)"
        case .invalidInput(let s): return "invalid input: \(s)"
        }
    }
}

/// One lexical token of a template.
enum JinjaToken: Equatable {
    /// Literal text between tags (whitespace control already applied).
    case text(String)
    /// `{{`
    case variableBegin
    /// `}}`
    case variableEnd
    /// `{%`
    case blockBegin
    /// `%}`
    case blockEnd
    /// An identifier or keyword.
    case name(String)
    /// A string literal, escapes resolved.
    case string(String)
    /// An integer literal.
    case integer(Int)
    /// A float literal.
    case float(Double)
    /// An operator or punctuation: `+ - * / // % ** ~ == != < > <= >= = ( ) [ ] { } , . : |`.
    case op(String)
    case eof
}

/// Splits a template into tokens the way jinja2's lexer does with Hugging Face's settings
/// (`trim_blocks=True`, `lstrip_blocks=True`, `keep_trailing_newline=False`):
///
/// - Newlines (`\r\n`, `\r`, `\n`) become `\n`, and one newline at the very end of the template is dropped.
/// - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` strip all whitespace after it.
/// - trim_blocks: the first newline right after a block or comment tag (`%}`, `#}`) is removed, unless the tag ends
///   with `+%}`.
/// - lstrip_blocks: spaces and tabs between the start of a line and a block or comment tag are removed, unless the
///   tag starts with `{%+`. Variable tags `{{` are never lstripped.
/// - Inside tags, strings are scanned so that `"}}"` inside a literal does not end the tag, and `}}` does not end
///   a tag while a `{` of a dict literal is open.
struct JinjaLexer {
    let s: [Unicode.Scalar]
    var pos = 0
    var tokens: [JinjaToken] = []

    init(_ source: String) {
        var scalars = [Unicode.Scalar]()
        scalars.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pendingCR = false
        while let u = it.next() {
            if pendingCR {
                pendingCR = false
                scalars.append("\n")
                if u == "\n" { continue }
            }
            if u == "\r" { pendingCR = true } else { scalars.append(u) }
        }
        if pendingCR { scalars.append("\n") }
        if scalars.last == "\n" { scalars.removeLast() }
        s = scalars
    }

    static func tokenize(_ source: String) throws -> [JinjaToken] {
        var lexer = JinjaLexer(source)
        try lexer.run()
        return lexer.tokens
    }

    func lineNumber(_ p: Int) -> Int { 1 + s[0..<min(p, s.count)].filter { $0 == "\n" }.count }

    func at(_ p: Int, _ str: String) -> Bool {
        var k = p
        for u in str.unicodeScalars {
            guard k < s.count, s[k] == u else { return false }
            k += 1
        }
        return true
    }

    static func isSpace(_ u: Unicode.Scalar) -> Bool { u.properties.isWhitespace }

    mutating func run() throws {
        var lineStarting = true
        while pos < s.count {
            // Find the next tag opener.
            var k = pos
            var kind: Character = " "
            while k + 1 < s.count {
                if s[k] == "{" {
                    let n = s[k + 1]
                    if n == "{" || n == "%" || n == "#" { kind = Character(n); break }
                }
                k += 1
            }
            if kind == " " {
                tokens.append(.text(String(String.UnicodeScalarView(s[pos...]))))
                pos = s.count
                break
            }
            var text = Array(s[pos..<k])
            var sign: Unicode.Scalar? = nil
            var inner = k + 2
            if inner < s.count, s[inner] == "-" || s[inner] == "+" {
                sign = s[inner]
                inner += 1
            }
            if sign == "-" {
                while let last = text.last, Self.isSpace(last) { text.removeLast() }
            } else if sign != "+" && kind != "{" {
                // lstrip_blocks
                let lineStart = (text.lastIndex(of: "\n").map { $0 + 1 }) ?? 0
                if lineStart > 0 || lineStarting {
                    if text[lineStart...].allSatisfy({ $0 == " " || $0 == "\t" }) {
                        text.removeSubrange(lineStart...)
                    }
                }
            }
            if !text.isEmpty { tokens.append(.text(String(String.UnicodeScalarView(text)))) }
            pos = inner
            switch kind {
            case "#":
                // comment: up to the first "#}" (with an optional sign before it)
                var e = pos
                while e + 1 < s.count && !(s[e] == "#" && s[e + 1] == "}") { e += 1 }
                guard e + 1 < s.count else { throw JinjaError.syntax("unterminated comment (line \(lineNumber(k)))") }
                let endSign: Unicode.Scalar? = e > pos && (s[e - 1] == "-" || s[e - 1] == "+") ? s[e - 1] : nil
                pos = e + 2
                lineStarting = afterTagEnd(endSign, trim: true)
            case "%":
                tokens.append(.blockBegin)
                if try scanRawTag() { lineStarting = false; continue }
                let endSign = try lexInside(block: true, openedAt: k)
                tokens.append(.blockEnd)
                lineStarting = afterTagEnd(endSign, trim: true)
            default:
                tokens.append(.variableBegin)
                let endSign = try lexInside(block: false, openedAt: k)
                tokens.append(.variableEnd)
                lineStarting = afterTagEnd(endSign, trim: false)
            }
        }
        tokens.append(.eof)
    }

    /// `{% raw %}` is outside the supported subset.
    mutating func scanRawTag() throws -> Bool {
        var p = pos
        while p < s.count, Self.isSpace(s[p]) { p += 1 }
        if at(p, "raw") && !(p + 3 < s.count && (s[p + 3].properties.isAlphabetic || s[p + 3] == "_")) {
            throw JinjaError.unsupported("{% raw %} blocks (line \(lineNumber(p)))")
        }
        return false
    }

    /// Applies the whitespace control after a tag end; returns whether the consumed text ended with a newline.
    mutating func afterTagEnd(_ sign: Unicode.Scalar?, trim: Bool) -> Bool {
        if sign == "-" {
            var ended = false
            while pos < s.count, Self.isSpace(s[pos]) { ended = s[pos] == "\n"; pos += 1 }
            return ended
        }
        if sign != "+" && trim && pos < s.count && s[pos] == "\n" {
            pos += 1
            return true
        }
        return false
    }

    /// Lexes expression tokens up to the closing `%}` / `}}`; returns the whitespace sign before it, if any.
    mutating func lexInside(block: Bool, openedAt: Int) throws -> Unicode.Scalar? {
        var braces: [Unicode.Scalar] = []
        while true {
            while pos < s.count, Self.isSpace(s[pos]) { pos += 1 }
            guard pos < s.count else {
                throw JinjaError.syntax("unexpected end of template: tag opened on line \(lineNumber(openedAt)) is never closed")
            }
            if braces.isEmpty {
                let close = block ? "%}" : "}}"
                if at(pos, "-" + close) {
                    pos += 3
                    return "-"
                }
                if block, at(pos, "+" + close) {
                    pos += 3
                    return "+"
                }
                if at(pos, close) {
                    pos += 2
                    return nil
                }
            }
            let c = s[pos]
            if c == "'" || c == "\"" {
                tokens.append(.string(try lexString()))
                continue
            }
            if c.properties.isAlphabetic || c == "_" {
                var e = pos
                while e < s.count, s[e].properties.isAlphabetic || s[e] == "_" || ("0"..."9").contains(s[e]) { e += 1 }
                tokens.append(.name(String(String.UnicodeScalarView(s[pos..<e]))))
                pos = e
                continue
            }
            if ("0"..."9").contains(c) {
                try lexNumber()
                continue
            }
            let two = pos + 1 < s.count ? String(String.UnicodeScalarView([c, s[pos + 1]])) : ""
            if ["//", "**", "==", "!=", "<=", ">="].contains(two) {
                tokens.append(.op(two))
                pos += 2
                continue
            }
            switch c {
            case "(", "[", "{":
                braces.append(c)
            case ")", "]", "}":
                let open: Unicode.Scalar = c == ")" ? "(" : c == "]" ? "[" : "{"
                guard braces.last == open else {
                    throw JinjaError.syntax("unexpected '\(c)' (line \(lineNumber(pos)))")
                }
                braces.removeLast()
            case "+", "-", "*", "/", "%", "~", "<", ">", "=", ",", ".", ":", "|":
                break
            default:
                throw JinjaError.syntax("unexpected character '\(c)' (line \(lineNumber(pos)))")
            }
            tokens.append(.op(String(c)))
            pos += 1
        }
    }

    mutating func lexNumber() throws {
        var e = pos
        var isFloat = false
        func digits() { while e < s.count, ("0"..."9").contains(s[e]) || s[e] == "_" { e += 1 } }
        digits()
        if e + 1 < s.count, s[e] == ".", ("0"..."9").contains(s[e + 1]) {
            isFloat = true
            e += 1
            digits()
        }
        if e < s.count, s[e] == "e" || s[e] == "E" {
            var f = e + 1
            if f < s.count, s[f] == "+" || s[f] == "-" { f += 1 }
            if f < s.count, ("0"..."9").contains(s[f]) {
                isFloat = true
                e = f
                digits()
            }
        }
        let text = String(String.UnicodeScalarView(s[pos..<e])).replacingOccurrences(of: "_", with: "")
        pos = e
        if isFloat {
            guard let d = Double(text) else { throw JinjaError.syntax("bad number \(text)") }
            tokens.append(.float(d))
        } else {
            guard let i = Int(text) else { throw JinjaError.syntax("integer \(text) is too large") }
            tokens.append(.integer(i))
        }
    }

    /// A string literal with Python `unicode-escape` semantics (what jinja2 applies): `\n \t \r \\ \' \" \a \b \f
    /// \v \0-7 \xHH \uHHHH \UHHHHHHHH`; an unknown escape keeps its backslash.
    mutating func lexString() throws -> String {
        let quote = s[pos]
        let start = pos
        pos += 1
        var out = String.UnicodeScalarView()
        while true {
            guard pos < s.count else { throw JinjaError.syntax("unterminated string (line \(lineNumber(start)))") }
            let c = s[pos]
            pos += 1
            if c == quote { break }
            if c != "\\" { out.append(c); continue }
            guard pos < s.count else { throw JinjaError.syntax("unterminated string (line \(lineNumber(start)))") }
            let e = s[pos]
            pos += 1
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            case "\\", "'", "\"": out.append(e)
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "v": out.append("\u{0B}")
            case "\n": break  // line continuation
            case "x", "u", "U":
                let n = e == "x" ? 2 : e == "u" ? 4 : 8
                guard pos + n <= s.count,
                      let v = UInt32(String(String.UnicodeScalarView(s[pos..<(pos + n)])), radix: 16),
                      let u = Unicode.Scalar(v) else {
                    throw JinjaError.syntax("bad \\\(e) escape in string (line \(lineNumber(start)))")
                }
                out.append(u)
                pos += n
            case "0"..."7":
                var v = e.value - 48
                var k = 0
                while k < 2, pos < s.count, ("0"..."7").contains(s[pos]) {
                    v = v * 8 + s[pos].value - 48
                    pos += 1
                    k += 1
                }
                out.append(Unicode.Scalar(v)!)
            default:
                out.append("\\")
                out.append(e)
            }
        }
        return String(out)
    }
}
