/// Unigram language-model segmentation (SentencePiece `unigram`, HF `Unigram`): the segmentation of a word into
/// vocabulary pieces that maximises the sum of piece scores (log probabilities), found by Viterbi over byte
/// positions.
///
/// Exactly HF `tokenizers`' `Unigram::encode_optimized`: walking the word character by character, every piece
/// that starts there (a prefix search, shortest first) proposes `score(piece) + best(start)` for the position it
/// ends at and replaces the best only if strictly larger; if no single-character piece exists, the character
/// alone proposes `unk` with score `min(scores) - 10`. Back-tracking from the end yields the pieces; with
/// `fuse_unk` consecutive unknown characters become one `unk`, which byte fallback (`byte_fallback`) turns into
/// `<0xNN>` tokens when all of them exist.
extension SentencePieceTokenizer {
    static let unknownPenalty: Float = 10

    func encodeUnigram(_ word: String, into out: inout [Int]) {
        let s = Array(word.utf8)
        let n = s.count
        guard n > 0 else { return }
        let unkScore = minScore - Self.unknownPenalty
        var bestScore = [Float](repeating: 0, count: n + 1)
        var bestStart = [Int](repeating: -1, count: n + 1)
        var bestId = [Int](repeating: -1, count: n + 1)
        var start = 0
        while start < n {
            let charLen = Self.utf8Length(s[start])
            let base = bestScore[start]
            var hasSingle = false
            let maxLen = min(maxPieceBytes, n - start)
            if maxLen > 0 {
                for len in 1...maxLen {
                    guard let id = unigramPieces[Array(s[start..<(start + len)])] else { continue }
                    let end = start + len
                    let candidate = scores[id] + base
                    if bestStart[end] < 0 || candidate > bestScore[end] {
                        bestScore[end] = candidate
                        bestStart[end] = start
                        bestId[end] = id
                    }
                    if len == charLen { hasSingle = true }
                }
            }
            if !hasSingle {
                let end = min(start + charLen, n)
                let candidate = unkScore + base
                if bestStart[end] < 0 || candidate > bestScore[end] {
                    bestScore[end] = candidate
                    bestStart[end] = start
                    bestId[end] = -2  // unknown
                }
            }
            start += charLen
        }
        // Back-track; fuse runs of unknown characters.
        var pieces: [(id: Int, range: Range<Int>)] = []
        var end = n
        var unkEnd = -1
        while end > 0 {
            let st = bestStart[end]
            guard st >= 0 else { break }
            if bestId[end] == -2 && fuseUnk {
                if unkEnd < 0 { unkEnd = end }
            } else {
                if unkEnd >= 0 { pieces.append((-2, end..<unkEnd)); unkEnd = -1 }
                pieces.append((bestId[end], st..<end))
            }
            end = st
        }
        if unkEnd >= 0 { pieces.append((-2, 0..<unkEnd)) }
        for (id, range) in pieces.reversed() {
            if id >= 0 {
                out.append(id)
                continue
            }
            if byteFallback {
                let ids = s[range].map { byteTokenId[Int($0)] }
                if ids.allSatisfy({ $0 >= 0 }) {
                    out.append(contentsOf: ids)
                    continue
                }
            }
            if let u = unkTokenId { out.append(u) }
        }
    }

    /// Length of the UTF-8 sequence a lead byte starts (1 for a stray continuation byte).
    static func utf8Length(_ b: UInt8) -> Int {
        switch b {
        case 0xF0...0xF7: return 4
        case 0xE0...0xEF: return 3
        case 0xC0...0xDF: return 2
        default: return 1
        }
    }
}
