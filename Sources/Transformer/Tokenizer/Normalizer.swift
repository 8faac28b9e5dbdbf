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
/// | `Precompiled` | SentencePiece's compiled normalization map (e.g. `nmt_nfkc`; see ``PrecompiledCharsMap``) |
///
/// Others (`BertNormalizer`, `Nmt`, ...) throw ``TokenizerError/unsupported(_:)`` when read.
public indirect enum Normalizer: Sendable {
    /// Unicode normalization forms.
    case nfc, nfd, nfkc, nfkd
    /// Unicode lowercase.
    case lowercase
    /// Removes combining marks.
    case stripAccents
    /// Literal replacement (pattern, content).
    case replace(String, String)
    /// Regular-expression replacement (ICU syntax, which matches Oniguruma's for the patterns tokenizers use).
    case replaceRegex(pattern: String, content: String)
    /// Prepends to non-empty text.
    case prepend(String)
    /// Strips whitespace.
    case strip(left: Bool, right: Bool)
    /// Applies each in order.
    case sequence([Normalizer])
    /// SentencePiece's compiled normalization rules.
    case precompiled(PrecompiledCharsMap)

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
        case "Precompiled":
            guard let b64 = o["precompiled_charsmap"] as? String, let data = Data(base64Encoded: b64) else {
                throw TokenizerError.invalidFormat("Precompiled normalizer without a base64 precompiled_charsmap")
            }
            self = .precompiled(try PrecompiledCharsMap(Array(data)))
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
        case .precompiled(let map):
            return map.normalize(text)
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

/// SentencePiece's precompiled normalization rules (`normalizer_spec.precompiled_charsmap`, HF's `Precompiled`
/// normalizer): a darts-clone double-array trie over UTF-8 byte strings whose values index NUL-terminated
/// replacement strings.
///
/// Layout: `u32` trie size in bytes (little endian), the trie units (`u32` each), then the replacement strings.
/// Normalizing follows HF `tokenizers`: for each grapheme cluster shorter than 6 bytes, the first (shortest) trie
/// match of its bytes replaces the whole cluster; otherwise, or without a match, each character is looked up on its
/// own and kept if it has no match.
public struct PrecompiledCharsMap: Sendable {
    let units: [UInt32]
    let normalized: [UInt8]

    /// Parses the binary map; throws on a truncated or inconsistent one.
    public init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 4 else { throw TokenizerError.invalidFormat("precompiled_charsmap is too short") }
        let trieSize = Int(UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24)
        guard trieSize % 4 == 0, 4 + trieSize <= bytes.count, trieSize > 0 else {
            throw TokenizerError.invalidFormat("precompiled_charsmap trie size \(trieSize) for \(bytes.count) bytes")
        }
        var units = [UInt32]()
        units.reserveCapacity(trieSize / 4)
        for k in 0..<(trieSize / 4) {
            let i = 4 + 4 * k
            units.append(UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
        }
        self.units = units
        self.normalized = Array(bytes[(4 + trieSize)...])
    }

    @inline(__always) static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
    @inline(__always) static func value(_ u: UInt32) -> UInt32 { u & ((1 << 31) - 1) }
    @inline(__always) static func label(_ u: UInt32) -> UInt32 { u & ((1 << 31) | 0xFF) }
    @inline(__always) static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

    /// The values of all trie keys that are prefixes of `key`, shortest first.
    func commonPrefixSearch<C: Collection>(_ key: C) -> [UInt32] where C.Element == UInt8 {
        var results: [UInt32] = []
        guard !units.isEmpty else { return results }
        var pos = Self.offset(units[0])
        for c in key {
            if c == 0 { break }
            pos ^= Int(c)
            guard pos >= 0, pos < units.count else { return results }
            let unit = units[pos]
            if Self.label(unit) != UInt32(c) { return results }
            pos ^= Self.offset(unit)
            guard pos >= 0, pos < units.count else { return results }
            if Self.hasLeaf(unit) { results.append(Self.value(units[pos])) }
        }
        return results
    }

    /// The replacement for `chunk` (its first trie match), if any.
    func transform<C: Collection>(_ chunk: C) -> [UInt8]? where C.Element == UInt8 {
        guard let first = commonPrefixSearch(chunk).first else { return nil }
        let start = Int(first)
        guard start <= normalized.count else { return nil }
        var end = start
        while end < normalized.count && normalized[end] != 0 { end += 1 }
        return Array(normalized[start..<end])
    }

    /// Applies the rules to `text`.
    public func normalize(_ text: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        for grapheme in text {
            let g = Array(String(grapheme).utf8)
            if g.count < 6, let r = transform(g) {
                out.append(contentsOf: r)
                continue
            }
            for u in grapheme.unicodeScalars {
                let c = Array(String(u).utf8)
                if let r = transform(c) { out.append(contentsOf: r) } else { out.append(contentsOf: c) }
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
