import Foundation

/// A text normalizer of HF `tokenizers` (tokenizer.json `normalizer`), applied to the text between added tokens
/// before pre-tokenization.
///
/// | tokenizer.json | effect |
/// |---|---|
/// | `NFC`, `NFD`, `NFKC`, `NFKD` | Unicode normalization form |
/// | `Lowercase` | Unicode lowercase |
/// | `StripAccents` | removes combining marks (use after `NFD`/`NFKD`, as BERT-style pipelines do) |
/// | `Replace` | replaces a literal string (`{"String": s}`) or a regex (`{"Regex": r}`) with `content` |
/// | `Prepend` | prepends a string to non-empty text (Llama-2's `▁`) |
/// | `Strip` | strips whitespace on the left and/or right |
/// | `Sequence` | applies its normalizers in order |
///
/// Others (`Precompiled` — SentencePiece's compiled character map —, `BertNormalizer`, `Nmt`) throw
/// ``TokenizerError/unsupported(_:)`` when read.
public indirect enum Normalizer: Sendable {
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case stripAccents
    /// Literal replacement.
    case replace(String, String)
    /// Regular-expression replacement (ICU syntax, which matches Oniguruma's for the patterns tokenizers use).
    case replaceRegex(pattern: String, content: String)
    case prepend(String)
    case strip(left: Bool, right: Bool)
    case sequence([Normalizer])

    /// Reads a tokenizer.json `normalizer` object; `nil`/`null` means no normalizer.
    public init?(tokenizerJSON node: Any?) throws {
        guard let node, !(node is NSNull) else { return nil }
        guard let o = node as? [String: Any], let type = o["type"] as? String else {
            throw TokenizerError.invalidFormat("normalizer \(node)")
        }
        switch type {
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "StripAccents": self = .stripAccents
        case "Prepend":
            guard let p = o["prepend"] as? String else { throw TokenizerError.invalidFormat("Prepend without prepend") }
            self = .prepend(p)
        case "Strip":
            self = .strip(left: o["strip_left"] as? Bool ?? true, right: o["strip_right"] as? Bool ?? true)
        case "Replace":
            guard let content = o["content"] as? String, let pattern = o["pattern"] as? [String: Any] else {
                throw TokenizerError.invalidFormat("Replace normalizer \(o)")
            }
            if let s = pattern["String"] as? String {
                self = .replace(s, content)
            } else if let r = pattern["Regex"] as? String {
                guard (try? NSRegularExpression(pattern: r)) != nil else {
                    throw TokenizerError.unsupported("Replace normalizer regex \(r)")
                }
                self = .replaceRegex(pattern: r, content: content)
            } else {
                throw TokenizerError.invalidFormat("Replace normalizer pattern \(pattern)")
            }
        case "Sequence":
            guard let list = o["normalizers"] as? [Any] else { throw TokenizerError.invalidFormat("Sequence normalizer") }
            self = .sequence(try list.compactMap { try Normalizer(tokenizerJSON: $0) })
        default:
            throw TokenizerError.unsupported("normalizer \(type)")
        }
    }

    /// The normalized text.
    public func apply(_ text: String) -> String {
        switch self {
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase: return text.lowercased()
        case .stripAccents:
            var out = String.UnicodeScalarView()
            for u in text.unicodeScalars where !Self.isCombiningMark(u) { out.append(u) }
            return String(out)
        case .replace(let pattern, let content):
            guard !pattern.isEmpty else { return text }
            return text.replacingOccurrences(of: pattern, with: content, options: .literal)
        case .replaceRegex(let pattern, let content):
            guard let re = try? NSRegularExpression(pattern: pattern) else { return text }
            let range = NSRange(text.startIndex..., in: text)
            return re.stringByReplacingMatches(in: text, range: range,
                                               withTemplate: NSRegularExpression.escapedTemplate(for: content))
        case .prepend(let p):
            return text.isEmpty ? text : p + text
        case .strip(let left, let right):
            var u = Array(text.unicodeScalars)
            if right { while let l = u.last, l.properties.isWhitespace { u.removeLast() } }
            if left {
                var k = 0
                while k < u.count, u[k].properties.isWhitespace { k += 1 }
                u.removeFirst(k)
            }
            var v = String.UnicodeScalarView()
            v.append(contentsOf: u)
            return String(v)
        case .sequence(let list):
            return list.reduce(text) { $1.apply($0) }
        }
    }

    /// Unicode general categories Mn, Mc, Me.
    static func isCombiningMark(_ u: Unicode.Scalar) -> Bool {
        switch u.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark: return true
        default: return false
        }
    }
}
