import Foundation
import XCTest
@testable import Transformer

/// SentencePiece-style tokenizers against their references (fixtures from `scripts/fixtures/spm.py`: a BPE model with
/// byte fallback and a Unigram model trained with the `sentencepiece` package, converted by HF transformers):
/// - tokenizer.json (Llama Metaspace, Llama-2 legacy normalizer, Gemma layout, added tokens with lstrip/rstrip, T5 Unigram, Unigram behind
///   NFKC/Lowercase/regex normalizers, Unigram behind SentencePiece's precompiled `nmt_nfkc` character map): ids, ids without special tokens, and decodes identical to HF `tokenizers`;
/// - the GGUF (`tokenizer.ggml.model = "llama"`): ids and decodes identical to the SentencePiece library;
/// - normalizers identical to `tokenizers.normalizers`.
/// Tolerance: none (exact ids and strings).
final class SentencePieceTests: XCTestCase {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("spm")
    static let cases: [String: Any] = {
        let data = try! Data(contentsOf: root.appendingPathComponent("cases.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()
    static var corpus: [String] { cases["corpus"] as! [String] }
    static let variants = ["llama_metaspace", "llama_legacy", "gemma_style", "llama_added", "t5_unigram", "unigram_nfkc",
                           "t5_precompiled"]

    static func tokenizer(_ name: String) throws -> any TextTokenizer {
        try TokenizerLoader.load(tokenizerJSONData: try Data(contentsOf: root.appendingPathComponent(name + ".json")))
    }

    static func ints(_ v: Any?) -> [Int] { (v as? [Any] ?? []).map { ($0 as! NSNumber).intValue } }

    func testTokenizerJSONMatchesHF() throws {
        let hf = Self.cases["hf"] as! [String: [[String: Any]]]
        for name in Self.variants {
            let tok = try Self.tokenizer(name)
            XCTAssertTrue(tok is SentencePieceTokenizer, name)
            let rows = hf[name]!
            XCTAssertEqual(rows.count, Self.corpus.count)
            for (text, row) in zip(Self.corpus, rows) {
                let label = "\(name): \(text.debugDescription)"
                XCTAssertEqual(tok.encode(text, addSpecialTokens: true), Self.ints(row["ids"]), label)
                let plain = Self.ints(row["ids_plain"])
                XCTAssertEqual(tok.encode(text, addSpecialTokens: false), plain, label)
                XCTAssertEqual(tok.decode(plain, skipSpecialTokens: false), row["decoded"] as? String, label)
                XCTAssertEqual(tok.decode(Self.ints(row["ids"]), skipSpecialTokens: true), row["decoded_skip"] as? String, label)
            }
        }
    }

    func testModelsAndPipelinesAreTheExpectedOnes() throws {
        let llama = try XCTUnwrap(try Self.tokenizer("llama_metaspace") as? SentencePieceTokenizer)
        XCTAssertEqual(llama.model, .bpeMerges)
        XCTAssertEqual(llama.prefixIds, [1])
        XCTAssertEqual(llama.preTokenizer, [.metaspace(replacement: "\u{2581}", prependScheme: .first, split: false)])
        XCTAssertEqual(llama.leadingSpacesStripped, 1)
        let t5 = try XCTUnwrap(try Self.tokenizer("t5_unigram") as? SentencePieceTokenizer)
        XCTAssertEqual(t5.model, .unigram)
        XCTAssertEqual(t5.suffixIds, [1])
        XCTAssertEqual(t5.unkTokenId, 2)
        // The precompiled nmt_nfkc map is read and applied (full-width forms and ligatures fold, as NFKC does).
        let t5p = try XCTUnwrap(try Self.tokenizer("t5_precompiled") as? SentencePieceTokenizer)
        guard case .precompiled? = t5p.normalizer else { return XCTFail("expected a Precompiled normalizer") }
        XCTAssertEqual(t5p.normalizer?.apply("ＡＢＣ１２３ ﬁ"), "ABC123 fi")
        // Byte fallback is exercised: an emoji outside the 800-piece vocabulary becomes <0xNN> tokens.
        let ids = llama.encode("😀", addSpecialTokens: false)
        XCTAssertEqual(ids.compactMap { llama.token(for: $0) }.filter { $0.hasPrefix("<0x") }.count, 4)
    }

    func testGGUFMatchesSentencePiece() throws {
        let url = Self.root.appendingPathComponent("spm_bpe.gguf.bin")
        let tok = try XCTUnwrap(try TokenizerLoader.load(path: url.path) as? SentencePieceTokenizer)
        XCTAssertEqual(tok.model, .bpeScores)
        XCTAssertEqual(tok.vocabularySize, 800)
        XCTAssertEqual(tok.bosTokenId, 1)
        XCTAssertEqual(tok.eosTokenId, 2)
        let rows = Self.cases["spm"] as! [[String: Any]]
        var compared = 0
        for (text, row) in zip(Self.corpus, rows) {
            // The SentencePiece library does not parse control tokens in text (llama.cpp does, with parse_special).
            if text.contains("<s>") || text.contains("</s>") || text.contains("<unk>") { continue }
            let ids = Self.ints(row["ids"])
            XCTAssertEqual(tok.encode(text, addSpecialTokens: false), ids, text.debugDescription)
            XCTAssertEqual(tok.encode(text, addSpecialTokens: true), [1] + ids, text.debugDescription)
            XCTAssertEqual(tok.decode(ids, skipSpecialTokens: false), row["decoded"] as? String, text.debugDescription)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 20)
        // A control token in the text is one token, followed by a fresh space prefix (llama.cpp).
        XCTAssertEqual(tok.encode("<s>Hi", addSpecialTokens: false), [1] + tok.encode("Hi", addSpecialTokens: false))
    }

    func testNormalizersMatchHF() throws {
        let rows = Self.cases["normalizers"] as! [String: [String]]
        let normalizers: [String: Normalizer] = [
            "NFC": .nfc, "NFD": .nfd, "NFKC": .nfkc, "NFKD": .nfkd, "Lowercase": .lowercase,
            "NFD_StripAccents": .sequence([.nfd, .stripAccents]),
            "Replace_regex": .replaceRegex(pattern: " {2,}", content: "\u{2581}"),
            "Prepend_Replace": .sequence([.prepend("\u{2581}"), .replace(" ", "\u{2581}")]),
            "Strip": .strip(left: true, right: true),
        ]
        XCTAssertEqual(Set(rows.keys), Set(normalizers.keys))
        for (name, n) in normalizers {
            for (text, expected) in zip(Self.corpus, rows[name]!) {
                XCTAssertEqual(Array(n.apply(text).unicodeScalars), Array(expected.unicodeScalars), "\(name): \(text.debugDescription)")
            }
        }
    }

    func testStreamingDecodeMatchesDecode() throws {
        var tokenizers = try Self.variants.map { try Self.tokenizer($0) }
        tokenizers.append(try TokenizerLoader.load(path: Self.root.appendingPathComponent("spm_bpe.gguf.bin").path))
        for tok in tokenizers {
            for text in Self.corpus {
                let ids = tok.encode(text, addSpecialTokens: true)
                for skip in [false, true] {
                    var d = tok.streamingDecoder(skipSpecialTokens: skip)
                    var streamed = ""
                    for id in ids { streamed += d.append(id) }
                    streamed += d.finish()
                    XCTAssertEqual(streamed, tok.decode(ids, skipSpecialTokens: skip), text.debugDescription)
                }
            }
        }
        // Byte-fallback tokens of one emoji: nothing is emitted until the last byte arrives.
        let llama = try Self.tokenizer("llama_metaspace")
        let ids = llama.encode("😀", addSpecialTokens: false)
        var d = llama.streamingDecoder()
        var pieces = ids.map { d.append($0) }
        pieces.append(d.finish())
        XCTAssertEqual(pieces.filter { !$0.isEmpty }, ["😀"])
        XCTAssertEqual(pieces.last, "")
    }

    func testUnsupportedAndInvalidFilesThrow() {
        func json(_ normalizer: String, model: String = #"{"type":"Unigram","unk_id":0,"vocab":[["<unk>",0.0],["a",-1.0]]}"#) -> Data {
            Data(#"{"normalizer":\#(normalizer),"pre_tokenizer":null,"model":\#(model)}"#.utf8)
        }
        XCTAssertNoThrow(try TokenizerLoader.load(tokenizerJSONData: json("null")))
        XCTAssertThrowsError(try TokenizerLoader.load(tokenizerJSONData: json(#"{"type":"Nmt"}"#))) {
            XCTAssertEqual($0 as? TokenizerError, .unsupported("normalizer Nmt"))
        }
        // A truncated SentencePiece character map is reported, not read out of bounds.
        XCTAssertThrowsError(try TokenizerLoader.load(tokenizerJSONData: json(#"{"type":"Precompiled","precompiled_charsmap":"AA=="}"#)))
        XCTAssertThrowsError(try TokenizerLoader.load(tokenizerJSONData: json(#"{"type":"Precompiled","precompiled_charsmap":"CAAAAAEAAAA="}"#)))
        XCTAssertThrowsError(try TokenizerLoader.load(tokenizerJSONData: json("null", model: #"{"type":"WordLevel","vocab":{}}"#)))
        XCTAssertThrowsError(try TokenizerLoader.load(tokenizerJSONData: json("null", model: #"{"type":"Unigram","vocab":[["a"]]}"#)))
        XCTAssertThrowsError(try TokenizerLoader.load(tokenizerJSONData: Data("[]".utf8)))
        XCTAssertThrowsError(try SentencePieceTokenizer(ggufTokens: ["a", "b"], scores: [0], tokenTypes: nil,
                                                        bosTokenId: nil, eosTokenId: nil, unknownTokenId: nil))
        XCTAssertThrowsError(try SentencePieceTokenizer(ggufTokens: ["a"], scores: [0], tokenTypes: [1],
                                                        bosTokenId: 5, eosTokenId: nil, unknownTokenId: nil))
    }
}
