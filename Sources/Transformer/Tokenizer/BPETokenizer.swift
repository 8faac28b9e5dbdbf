import Foundation

/// A GPT-2 style byte-level BPE tokenizer (GPT-2, SmolLM/SmolLM2, Llama-3, Qwen2, StarCoder, ...).
///
/// Encoding follows HF `tokenizers` exactly:
/// 1. Special tokens (GGUF token types 3 *control* and 4 *user-defined*; tokenizer.json `added_tokens`) are found
///    in the raw text first, leftmost-longest, and always become their own id; they are never split or merged.
/// 2. The text between them is cut into pieces by the ``PreTokenizer``.
/// 3. Each piece's UTF-8 bytes are mapped to GPT-2's byte-level alphabet (`Ġ` for space, ...) and merged with
///    the BPE merge list: repeatedly the adjacent pair with the lowest merge rank (leftmost on ties) is merged.
///    A byte whose symbol is not in the vocabulary is dropped (HF's behaviour with `unk_token: null`).
///
/// Decoding maps each token back to bytes (a token with a character outside the byte alphabet, such as an added
/// token with a space, decodes to its own UTF-8) and decodes them as UTF-8, replacing invalid sequences with
/// U+FFFD as Rust's `String::from_utf8_lossy` does. For generation, use ``StreamingDecoder``.
///
/// The tokenizer is immutable apart from an internal, lock-protected cache of piece → ids, and is safe to share.
public final class BPETokenizer: TextTokenizer {
    /// The pre-tokenizer applied between special tokens.
    public let preTokenizer: PreTokenizer
    /// Number of token ids (`0..<vocabularySize`).
    public let vocabularySize: Int
    /// Beginning-of-sequence id, if any.
    public let bosTokenId: Int?
    /// End-of-sequence id, if any.
    public let eosTokenId: Int?
    /// Whether ``encode(_:addSpecialTokens:)`` prepends ``bosTokenId`` when `addSpecialTokens` is true.
    public let addBOS: Bool
    /// Whether a piece that is itself a vocabulary token is emitted whole without running the merges
    /// (HF `ignore_merges`, llama.cpp's behaviour for Llama-3).
    public let ignoreMerges: Bool
    /// Ids of the special (control) tokens: skipped by `decode(_, skipSpecialTokens: true)`.
    public let specialTokenIds: Set<Int>
    /// Ids of every token matched whole in the input text: control and user-defined (added) tokens.
    public let addedTokenIds: Set<Int>

    let tokens: [String]
    let tokenToId: [String: Int]
    let tokenBytes: [[UInt8]]
    let isSpecial: [Bool]
    /// Vocabulary id of each byte's byte-level symbol, -1 if the vocabulary lacks it.
    let byteToId: [Int32]
    /// (left id << 32 | right id) -> (rank << 32 | merged id).
    let merges: [UInt64: UInt64]
    /// Added tokens, longest first, bucketed by first UTF-8 byte.
    let addedByFirstByte: [[(bytes: [UInt8], id: Int)]]
    /// For `ignoreMerges`: UTF-8 bytes of each normal token -> id.
    let bytesToId: [[UInt8]: Int]
    let cache = PieceCache()

    /// Builds a tokenizer from plain data, as stored in GGUF metadata.
    ///
    /// - Parameters:
    ///   - tokens: token strings by id, in GPT-2's byte-level alphabet (`tokenizer.ggml.tokens`).
    ///   - merges: merge rules by rank, `"left right"` (`tokenizer.ggml.merges`). Rules naming a token that is not
    ///     in `tokens`, or whose concatenation is not, are ignored; a repeated pair keeps its first rank.
    ///   - tokenTypes: GGUF token types by id (`tokenizer.ggml.token_type`): 1 normal, 2 unknown, 3 control,
    ///     4 user-defined, 5 unused, 6 byte. Control and user-defined tokens are matched whole in the text; control
    ///     tokens are the ``specialTokenIds``. If `nil`, only the BOS and EOS tokens are treated as control tokens.
    ///   - preTokenizer: the pre-tokenizer, e.g. `PreTokenizer(ggmlName: tokenizer.ggml.pre)`.
    ///   - bosTokenId: `tokenizer.ggml.bos_token_id`.
    ///   - eosTokenId: `tokenizer.ggml.eos_token_id`.
    ///   - addBOS: `tokenizer.ggml.add_bos_token`: prepend BOS when encoding with special tokens.
    ///   - ignoreMerges: emit a piece that is a whole vocabulary token directly; `nil` means
    ///     `preTokenizer == .llama3` (as llama.cpp does).
    public convenience init(tokens: [String], merges: [String], tokenTypes: [Int]?, preTokenizer: PreTokenizer,
                            bosTokenId: Int?, eosTokenId: Int?, addBOS: Bool, ignoreMerges: Bool? = nil) {
        let pairs: [(String, String)] = merges.compactMap { m in
            // llama.cpp: split at the first space after the first character
            let u = m.utf8
            guard let first = u.first else { return nil }
            var idx = u.index(after: u.startIndex)
            if first >= 0xC0 {  // skip the rest of a multi-byte first character
                while idx < u.endIndex && u[idx] & 0xC0 == 0x80 { idx = u.index(after: idx) }
            }
            guard let space = u[idx...].firstIndex(of: 0x20) else { return nil }
            return (String(m[..<space]), String(m[m.index(after: space)...]))
        }
        let types = tokenTypes ?? tokens.indices.map { $0 == bosTokenId || $0 == eosTokenId ? 3 : 1 }
        self.init(tokens: tokens, mergePairs: pairs, tokenTypes: types, preTokenizer: preTokenizer,
                  bosTokenId: bosTokenId, eosTokenId: eosTokenId, addBOS: addBOS,
                  ignoreMerges: ignoreMerges ?? (preTokenizer == .llama3))
    }

    init(tokens: [String], mergePairs: [(String, String)], tokenTypes: [Int], preTokenizer: PreTokenizer,
         bosTokenId: Int?, eosTokenId: Int?, addBOS: Bool, ignoreMerges: Bool) {
        self.preTokenizer = preTokenizer
        self.vocabularySize = tokens.count
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
        self.addBOS = addBOS
        self.ignoreMerges = ignoreMerges
        self.tokens = tokens

        var tokenToId = [String: Int](minimumCapacity: tokens.count)
        for (i, t) in tokens.enumerated() where tokenToId[t] == nil { tokenToId[t] = i }
        self.tokenToId = tokenToId

        func type(_ id: Int) -> Int { id < tokenTypes.count ? tokenTypes[id] : 1 }
        let special = tokens.indices.map { type($0) == 3 }
        self.isSpecial = special
        self.specialTokenIds = Set(tokens.indices.filter { special[$0] })
        let added = tokens.indices.filter { (type($0) == 3 || type($0) == 4) && !tokens[$0].isEmpty }
        self.addedTokenIds = Set(added)
        var buckets = [[(bytes: [UInt8], id: Int)]](repeating: [], count: 256)
        for id in added {
            let b = Array(tokens[id].utf8)
            buckets[Int(b[0])].append((b, id))
        }
        for i in 0..<256 { buckets[i].sort { $0.bytes.count > $1.bytes.count } }
        self.addedByFirstByte = buckets

        let unicodeToByte = ByteLevel.unicodeToByte
        var tokenBytes = [[UInt8]]()
        tokenBytes.reserveCapacity(tokens.count)
        var bytesToId = [[UInt8]: Int]()
        for (id, t) in tokens.enumerated() {
            var bytes = [UInt8]()
            bytes.reserveCapacity(t.utf8.count)
            var ok = true
            for u in t.unicodeScalars {
                guard let b = unicodeToByte[u] else { ok = false; break }
                bytes.append(b)
            }
            let decoded = ok ? bytes : Array(t.utf8)
            tokenBytes.append(decoded)
            if ignoreMerges && ok && type(id) == 1 && bytesToId[decoded] == nil { bytesToId[decoded] = id }
        }
        self.tokenBytes = tokenBytes
        self.bytesToId = bytesToId

        self.byteToId = (0..<256).map { b in tokenToId[ByteLevel.byteToString[b]].map(Int32.init) ?? -1 }

        var merges = [UInt64: UInt64](minimumCapacity: mergePairs.count)
        for (rank, (a, b)) in mergePairs.enumerated() {
            guard let l = tokenToId[a], let r = tokenToId[b], let m = tokenToId[a + b] else { continue }
            let key = UInt64(l) << 32 | UInt64(r)
            if merges[key] == nil { merges[key] = UInt64(rank) << 32 | UInt64(m) }
        }
        self.merges = merges
    }

    // MARK: Vocabulary

    /// The id of a token string (in the byte-level alphabet, e.g. `"Ġthe"`, or a special token's text).
    public func id(for token: String) -> Int? { tokenToId[token] }

    /// The token string of an id (byte-level alphabet), or `nil` if out of range.
    public func token(for id: Int) -> String? { id >= 0 && id < tokens.count ? tokens[id] : nil }

    /// The bytes an id decodes to, or `nil` if out of range.
    public func bytes(for id: Int) -> [UInt8]? { id >= 0 && id < tokenBytes.count ? tokenBytes[id] : nil }

    /// Whether `id` is a special (control) token.
    public func isSpecialToken(_ id: Int) -> Bool { id >= 0 && id < isSpecial.count && isSpecial[id] }

    // MARK: Encoding

    /// Encodes `text` to token ids.
    ///
    /// Special and added tokens appearing in the text (`<|im_start|>`, ...) are always recognised and kept
    /// whole. `addSpecialTokens` only controls the BOS prefix (when ``addBOS`` is set), like HF's
    /// `add_special_tokens`.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(text.utf8.count / 3 + 2)
        if addSpecialTokens, addBOS, let bos = bosTokenId { out.append(bos) }
        var text = text
        text.withUTF8 { buf in
            var segmentStart = 0
            var i = 0
            let n = buf.count
            while i < n {
                let candidates = addedByFirstByte[Int(buf[i])]
                if !candidates.isEmpty, let (id, len) = matchAdded(buf, at: i, candidates) {
                    encodeOrdinary(buf, segmentStart..<i, into: &out)
                    out.append(id)
                    i += len
                    segmentStart = i
                } else {
                    i += 1
                }
            }
            encodeOrdinary(buf, segmentStart..<n, into: &out)
        }
        return out
    }

    @inline(__always)
    private func matchAdded(_ buf: UnsafeBufferPointer<UInt8>, at i: Int,
                            _ candidates: [(bytes: [UInt8], id: Int)]) -> (Int, Int)? {
        for c in candidates where c.bytes.count <= buf.count - i {
            var k = 1
            let len = c.bytes.count
            while k < len && buf[i + k] == c.bytes[k] { k += 1 }
            if k == len { return (c.id, len) }
        }
        return nil
    }

    /// Pre-tokenizes and BPE-encodes text without special tokens.
    private func encodeOrdinary(_ buf: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, into out: inout [Int]) {
        guard !range.isEmpty else { return }
        let scalars = ScalarBuffer(utf8: buf, range: range)
        preTokenizer.forEachPiece(scalars) { lo, hi in
            bpe(UnsafeBufferPointer(rebasing: buf[lo..<hi]), into: &out)
        }
    }

    /// BPE of one piece (raw UTF-8 bytes).
    private func bpe(_ piece: UnsafeBufferPointer<UInt8>, into out: inout [Int]) {
        if piece.count == 1 {
            let id = byteToId[Int(piece[0])]
            if id >= 0 { out.append(Int(id)) }
            return
        }
        let key = Array(piece)
        if ignoreMerges, let id = bytesToId[key] {
            out.append(id)
            return
        }
        if let hit = cache.get(key) {
            out.append(contentsOf: hit)
            return
        }
        let ids = mergeBytes(piece)
        cache.set(key, ids)
        out.append(contentsOf: ids)
    }

    /// HF `Word::merge_all`: a priority queue of (rank, position), lowest first; stale entries are skipped.
    private func mergeBytes(_ piece: UnsafeBufferPointer<UInt8>) -> [Int] {
        var ids = [Int32]()
        ids.reserveCapacity(piece.count)
        for b in piece {
            let id = byteToId[Int(b)]
            if id >= 0 { ids.append(id) }
        }
        return Self.applyMerges(ids, merges)
    }

    /// Applies BPE merges to a symbol sequence: repeatedly the adjacent pair with the lowest rank (leftmost on
    /// ties) is merged. `merges` maps (left id << 32 | right id) to (rank << 32 | merged id).
    static func applyMerges(_ symbols: [Int32], _ merges: [UInt64: UInt64]) -> [Int] {
        var ids = symbols
        let n = ids.count
        if n < 2 { return ids.map(Int.init) }
        var next = [Int32](unsafeUninitializedCapacity: n) { p, c in
            for i in 0..<n { p[i] = Int32(i + 1) }
            c = n
        }
        next[n - 1] = -1
        var prev = [Int32](unsafeUninitializedCapacity: n) { p, c in
            for i in 0..<n { p[i] = Int32(i - 1) }
            c = n
        }
        var alive = [Bool](repeating: true, count: n)

        @inline(__always) func lookup(_ l: Int32, _ r: Int32) -> UInt64? {
            merges[UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))]
        }
        var heap = MinHeap()
        for i in 0..<(n - 1) {
            if let m = lookup(ids[i], ids[i + 1]) { heap.push((m & 0xFFFF_FFFF_0000_0000) | UInt64(i)) }
        }
        while let top = heap.pop() {
            let rank = top >> 32
            let pos = Int(top & 0xFFFF_FFFF)
            guard alive[pos] else { continue }
            let nx = Int(next[pos])
            guard nx >= 0, let m = lookup(ids[pos], ids[nx]), m >> 32 == rank else { continue }
            ids[pos] = Int32(truncatingIfNeeded: m)
            alive[nx] = false
            let nn = next[nx]
            next[pos] = nn
            if nn >= 0 { prev[Int(nn)] = Int32(pos) }
            let pv = prev[pos]
            if pv >= 0, let m2 = lookup(ids[Int(pv)], ids[pos]) {
                heap.push((m2 & 0xFFFF_FFFF_0000_0000) | UInt64(pv))
            }
            if nn >= 0, let m2 = lookup(ids[pos], ids[Int(nn)]) {
                heap.push((m2 & 0xFFFF_FFFF_0000_0000) | UInt64(pos))
            }
        }
        var result = [Int]()
        var i = 0
        while i >= 0 {
            result.append(Int(ids[i]))
            i = Int(next[i])
        }
        return result
    }

    // MARK: Decoding

    /// Decodes ids to text. Ids out of range are ignored; bytes that are not valid UTF-8 (e.g. a multi-byte
    /// character cut off at the end) become U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes = [UInt8]()
        bytes.reserveCapacity(ids.count * 4)
        for id in ids where id >= 0 && id < tokenBytes.count {
            if skipSpecialTokens && isSpecial[id] { continue }
            bytes.append(contentsOf: tokenBytes[id])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Incremental decoding for generation: emits text as soon as whole UTF-8 characters are available.
///
/// Tokens often end in the middle of a multi-byte character (an emoji is typically two or three tokens; a
/// SentencePiece byte-fallback token `<0xF0>` is one byte). The decoder holds back an incomplete UTF-8 sequence at
/// the end until the bytes completing it arrive; anything that cannot become valid is emitted as U+FFFD right away.
/// It drops the leading spaces the tokenizer's decoder strips (``TextTokenizer/leadingSpacesStripped``) from the
/// start of the text. The concatenation of everything ``append(_:)`` returned plus ``finish()`` equals the
/// tokenizer's `decode(_:skipSpecialTokens:)` of all ids.
public struct StreamingDecoder: Sendable {
    /// The tokenizer whose tokens are decoded.
    public let tokenizer: any TextTokenizer
    /// Whether special (control) tokens are dropped.
    public let skipSpecialTokens: Bool
    private var pending: [UInt8] = []
    private var spacesToStrip: Int

    /// Creates a decoder with nothing pending.
    public init(tokenizer: any TextTokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        self.spacesToStrip = tokenizer.leadingSpacesStripped
    }

    /// Whether bytes of an incomplete character are held back.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    /// Adds one token; returns the text that became complete (possibly empty).
    public mutating func append(_ id: Int) -> String {
        guard var bytes = tokenizer.bytes(for: id) else { return "" }
        if skipSpecialTokens && tokenizer.isSpecialToken(id) { return "" }
        if spacesToStrip > 0 {
            var k = 0
            while k < bytes.count && k < spacesToStrip && bytes[k] == 0x20 { k += 1 }
            bytes.removeFirst(k)
            spacesToStrip = 0
        }
        pending.append(contentsOf: bytes)
        let cut = Self.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Adds several tokens; returns the text that became complete.
    public mutating func append(contentsOf ids: [Int]) -> String {
        var s = ""
        for id in ids { s += append(id) }
        return s
    }

    /// Emits whatever is held back (an incomplete character becomes U+FFFD) and resets.
    public mutating func finish() -> String {
        defer {
            pending.removeAll()
            spacesToStrip = tokenizer.leadingSpacesStripped
        }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the prefix of `b` that can be emitted now: everything, unless `b` ends in a proper prefix of a
    /// valid UTF-8 sequence, which is held back.
    static func completePrefixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        var k = n - 1
        var steps = 0
        while k >= 0 && b[k] & 0xC0 == 0x80 && steps < 3 {
            k -= 1
            steps += 1
        }
        guard k >= 0 else { return n }
        let lead = b[k]
        let need: Int
        switch lead {
        case 0xC2...0xDF: need = 2
        case 0xE0...0xEF: need = 3
        case 0xF0...0xF4: need = 4
        default: return n  // ASCII, stray continuation or invalid lead byte: nothing to wait for
        }
        let have = n - k
        if have >= need { return n }
        if have >= 2 {
            let b1 = b[k + 1]
            let ok: Bool
            switch lead {
            case 0xE0: ok = (0xA0...0xBF).contains(b1)
            case 0xED: ok = (0x80...0x9F).contains(b1)
            case 0xF0: ok = (0x90...0xBF).contains(b1)
            case 0xF4: ok = (0x80...0x8F).contains(b1)
            default: ok = true
            }
            if !ok { return n }
        }
        return k
    }
}

/// GPT-2's reversible map between bytes and printable Unicode characters.
enum ByteLevel {
    /// byte -> character: printable Latin-1 bytes map to themselves, the others to U+0100 + n in byte order.
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                table[b] = Unicode.Scalar(UInt32(b))!
            } else {
                table[b] = Unicode.Scalar(256 + extra)!
                extra += 1
            }
        }
        return table
    }()

    static let byteToString: [String] = byteToScalar.map { String($0) }

    static let unicodeToByte: [Unicode.Scalar: UInt8] = {
        var d = [Unicode.Scalar: UInt8]()
        for (b, u) in byteToScalar.enumerated() { d[u] = UInt8(b) }
        return d
    }()

    /// The byte-level string of raw bytes (e.g. `" the"` -> `"Ġthe"`).
    static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }
}

/// Thread-safe piece -> ids cache (cleared when it grows past `limit`).
final class PieceCache: @unchecked Sendable {
    private var storage: [[UInt8]: [Int]] = [:]
    private let lock = NSLock()
    private let limit = 100_000

    func get(_ key: [UInt8]) -> [Int]? {
        lock.lock()
        defer { lock.unlock() }
        return storage[key]
    }

    func set(_ key: [UInt8], _ value: [Int]) {
        lock.lock()
        defer { lock.unlock() }
        if storage.count >= limit { storage.removeAll(keepingCapacity: true) }
        storage[key] = value
    }
}

/// A binary min-heap of UInt64 keys.
struct MinHeap {
    private var a: [UInt64] = []

    mutating func push(_ x: UInt64) {
        a.append(x)
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if a[p] <= x { break }
            a[i] = a[p]
            i = p
        }
        a[i] = x
    }

    mutating func pop() -> UInt64? {
        guard let last = a.popLast() else { return nil }
        guard !a.isEmpty else { return last }
        let top = a[0]
        let n = a.count
        var i = 0
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            var c = l
            if l + 1 < n && a[l + 1] < a[l] { c = l + 1 }
            if a[c] >= last { break }
            a[i] = a[c]
            i = c
        }
        a[i] = last
        return top
    }
}
