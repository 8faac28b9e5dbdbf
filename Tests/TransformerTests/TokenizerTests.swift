import Foundation
import Transformer
import XCTest

/// Byte-level BPE tokenizer and ChatML template against HF transformers (fixtures from
/// `scripts/fixtures/tokenizer.py`: SmolLM2-135M-Instruct's tokenizer as HF loads it from the GGUF, with the
/// `smollm` pre-tokenizer, and HF's ids, decodes, pre-token splits and chat renderings).
final class TokenizerTests: XCTestCase {
    // MARK: Fixtures

    final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return items }
    }

    struct Cases: Decodable {
        struct GGUF: Decodable {
            let model: String
            let pre: String
            let bos_token_id: Int
            let eos_token_id: Int
            let padding_token_id: Int
            let add_bos_token: Bool
            let chat_template: String
            let token_count: Int
            let merge_count: Int
            let non_normal_token_types: [String: Int]
        }
        struct Encode: Decodable {
            let text: String
            let ids: [Int]
            let decoded: String
        }
        struct Decode: Decodable {
            let ids: [Int]
            let skip_special_tokens: Bool
            let text: String
        }
        struct Chat: Decodable {
            let messages: [ChatMessage]
            let add_generation_prompt: Bool
            let text: String
            let ids: [Int]
        }
        let gguf: GGUF
        let adds_bos: Bool
        let encode: [Encode]
        let decode: [Decode]
        let pretokenize: [String: [[String]]]
        let chat: [Chat]
    }

    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("tokenizer")

    static let cases: Cases = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("cases.json"))
        return try! JSONDecoder().decode(Cases.self, from: data)
    }()

    /// Built from tokenizer.json (+ tokenizer_config.json next to it).
    static let tokenizer: BPETokenizer = try! BPETokenizer(
        tokenizerJSON: directory.appendingPathComponent("tokenizer.json"))

    /// Built like the GGUF path will: plain token / merge / type arrays and the GGUF metadata.
    static let ggufStyleTokenizer: BPETokenizer = {
        let data = try! Data(contentsOf: directory.appendingPathComponent("tokenizer.json"))
        let root = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        let model = root["model"] as! [String: Any]
        let vocab = model["vocab"] as! [String: Any]
        var tokens = [String](repeating: "", count: vocab.count)
        for (t, id) in vocab { tokens[(id as! NSNumber).intValue] = t }
        let merges = (model["merges"] as! [[String]]).map { $0.joined(separator: " ") }
        let g = cases.gguf
        var types = [Int](repeating: 1, count: tokens.count)
        for (id, t) in g.non_normal_token_types { types[Int(id)!] = t }
        return BPETokenizer(tokens: tokens, merges: merges, tokenTypes: types,
                            preTokenizer: PreTokenizer(ggmlName: g.pre)!, bosTokenId: g.bos_token_id,
                            eosTokenId: g.eos_token_id, addBOS: g.add_bos_token)
    }()

    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Escaped form for failure messages.
    private func show(_ s: String) -> String {
        s.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 ? String($0) : "\\u{\(String($0.value, radix: 16))}" }
            .joined()
    }

    // MARK: Encoding

    func testEncodeMatchesHF() {
        let tok = Self.tokenizer
        XCTAssertGreaterThanOrEqual(Self.cases.encode.count, 40)
        for c in Self.cases.encode {
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: false), c.ids, "encode \(show(c.text))")
        }
    }

    func testGGUFStyleDataInitializerGivesIdenticalIds() {
        let a = Self.tokenizer, b = Self.ggufStyleTokenizer
        XCTAssertEqual(b.vocabularySize, Self.cases.gguf.token_count)
        XCTAssertEqual(b.preTokenizer, .smollm)
        XCTAssertEqual(b.specialTokenIds, a.specialTokenIds)
        XCTAssertEqual(b.bosTokenId, a.bosTokenId)
        XCTAssertEqual(b.eosTokenId, a.eosTokenId)
        XCTAssertEqual(b.addBOS, a.addBOS)
        for c in Self.cases.encode {
            XCTAssertEqual(b.encode(c.text, addSpecialTokens: false), c.ids, "gguf-style encode \(show(c.text))")
            XCTAssertEqual(b.encode(c.text), a.encode(c.text))
        }
        for c in Self.cases.chat {
            XCTAssertEqual(b.encode(c.text, addSpecialTokens: false), c.ids)
        }
    }

    func testMetadata() {
        let tok = Self.tokenizer
        let g = Self.cases.gguf
        XCTAssertEqual(g.model, "gpt2")
        XCTAssertEqual(g.pre, "smollm")
        XCTAssertEqual(PreTokenizer(ggmlName: g.pre), .smollm)
        XCTAssertEqual(tok.preTokenizer, .smollm)
        XCTAssertEqual(tok.vocabularySize, 49152)
        XCTAssertEqual(tok.bosTokenId, g.bos_token_id)
        XCTAssertEqual(tok.eosTokenId, g.eos_token_id)
        XCTAssertEqual(tok.addBOS, Self.cases.adds_bos)
        XCTAssertFalse(tok.addBOS)
        XCTAssertEqual(tok.specialTokenIds, Set(0...16))
        XCTAssertEqual(tok.id(for: "<|im_start|>"), 1)
        XCTAssertEqual(tok.id(for: "<|im_end|>"), 2)
        XCTAssertEqual(tok.id(for: "<|endoftext|>"), 0)
        XCTAssertEqual(tok.token(for: 1), "<|im_start|>")
        XCTAssertEqual(tok.id(for: "Ġthe").flatMap { tok.token(for: $0) }, "Ġthe")
        XCTAssertNil(tok.token(for: -1))
        XCTAssertNil(tok.token(for: 49152))
        XCTAssertNil(tok.id(for: "definitely not a token"))
        // No BOS for SmolLM2: addSpecialTokens changes nothing.
        XCTAssertEqual(tok.encode("Hello"), tok.encode("Hello", addSpecialTokens: false))
    }

    func testSpecialTokensKeptWhole() {
        let tok = Self.tokenizer
        let ids = tok.encode("<|im_start|>user\nhi<|im_end|>")
        XCTAssertEqual(ids.first, 1)
        XCTAssertEqual(ids.last, 2)
        XCTAssertEqual(Array(ids.dropFirst().dropLast()), tok.encode("user\nhi"))
        // Special tokens split the text: each side is pre-tokenized on its own.
        for (a, s, b) in [("hello ", "<|im_end|>", " world"), ("x", "<|endoftext|>", "y"), ("  ", "<jupyter_code>", "1")] {
            XCTAssertEqual(tok.encode(a + s + b), tok.encode(a) + [tok.id(for: s)!] + tok.encode(b))
        }
        XCTAssertEqual(tok.encode("<|im_start|><|im_start|>"), [1, 1])
        // Near misses are ordinary text.
        for s in ["<|im_start", "<|im_start |>", "<im_start>", "|im_start|>"] {
            XCTAssertFalse(tok.encode(s).contains { tok.specialTokenIds.contains($0) }, s)
        }
        XCTAssertEqual(tok.decode(tok.encode("a<|im_end|>b")), "a<|im_end|>b")
        XCTAssertEqual(tok.decode(tok.encode("a<|im_end|>b"), skipSpecialTokens: true), "ab")
    }

    func testAddBOSAndUserDefinedTokens() {
        // A toy vocabulary: bytes of "ab ", merges, a control BOS, and a user-defined token containing a space.
        let b = { (s: String) in s.unicodeScalars.map { $0 == " " ? "Ġ" : String($0) }.joined() }
        let tokens = ["<s>", "</s>", "a", "b", b(" "), "ab", b(" ab"), b(" a"), "my token"]
        let tok = BPETokenizer(tokens: tokens, merges: ["a b", "Ġ a", "Ġ ab"], tokenTypes: [3, 3, 1, 1, 1, 1, 1, 1, 4],
                               preTokenizer: .gpt2, bosTokenId: 0, eosTokenId: 1, addBOS: true)
        XCTAssertEqual(tok.encode("ab ab"), [0, 5, 6])
        XCTAssertEqual(tok.encode("ab ab", addSpecialTokens: false), [5, 6])
        XCTAssertEqual(tok.encode("ab my token a", addSpecialTokens: false), [5, 4, 8, 7])
        XCTAssertEqual(tok.specialTokenIds, [0, 1])
        XCTAssertEqual(tok.addedTokenIds, [0, 1, 8])
        XCTAssertEqual(tok.decode([0, 5, 8, 1]), "<s>abmy token</s>")
        XCTAssertEqual(tok.decode([0, 5, 8, 1], skipSpecialTokens: true), "abmy token")
        XCTAssertEqual(tok.decode([5, 99, -3]), "ab")  // out-of-range ids are ignored
        // Characters whose bytes have no vocabulary symbol are dropped (HF BPE with unk_token null).
        XCTAssertEqual(tok.encode("a c b", addSpecialTokens: false), [2, 4, 4, 3])
    }

    func testMergePriorityIsByRank() {
        // "abc": merges ranked b+c before a+b give a|bc; reversed ranks give ab|c.
        let tokens = ["a", "b", "c", "ab", "bc", "abc"]
        let t1 = BPETokenizer(tokens: tokens, merges: ["b c", "a b"], tokenTypes: nil, preTokenizer: .gpt2,
                              bosTokenId: nil, eosTokenId: nil, addBOS: false)
        XCTAssertEqual(t1.encode("abc"), [0, 4])
        let t2 = BPETokenizer(tokens: tokens, merges: ["a b", "b c", "ab c"], tokenTypes: nil, preTokenizer: .gpt2,
                              bosTokenId: nil, eosTokenId: nil, addBOS: false)
        XCTAssertEqual(t2.encode("abc"), [5])
        XCTAssertEqual(t2.encode("abcabc"), [5, 5])
        // Repeated pair: leftmost first ("aaa" -> aa|a).
        let t3 = BPETokenizer(tokens: ["a", "aa", "aaaa"], merges: ["a a", "aa aa"], tokenTypes: nil,
                              preTokenizer: .gpt2, bosTokenId: nil, eosTokenId: nil, addBOS: false)
        XCTAssertEqual(t3.encode("aaa"), [1, 0])
        XCTAssertEqual(t3.encode("aaaaa"), [2, 0])
        XCTAssertEqual(t3.encode("aaaaaaa"), [2, 1, 0])
    }

    func testConcurrentEncodingIsConsistent() {
        let tok = try! BPETokenizer(tokenizerJSON: Self.directory.appendingPathComponent("tokenizer.json"))
        let cases = Self.cases.encode
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let c = cases[(i * 7) % cases.count]
            if tok.encode(c.text, addSpecialTokens: false) != c.ids { failures.add(c.text) }
        }
        XCTAssertEqual(failures.all, [])
    }

    // MARK: Decoding

    func testDecodeRoundTrip() {
        let tok = Self.tokenizer
        for c in Self.cases.encode {
            let decoded = tok.decode(c.ids)
            XCTAssertEqual(bytes(decoded), bytes(c.decoded), "decode \(show(c.text))")
            if c.decoded == c.text {
                XCTAssertEqual(bytes(tok.decode(tok.encode(c.text))), bytes(c.text), "round trip \(show(c.text))")
            }
        }
        // The one HF lossy case: U+0004 has no byte symbol in SmolLM2's vocabulary and is dropped.
        XCTAssertEqual(Self.cases.encode.filter { $0.decoded != $0.text }.map(\.text), ["ctrl\u{04}chars\u{1c}\u{7f} end"])
    }

    func testDecodeMatchesHF() {
        let tok = Self.tokenizer
        for c in Self.cases.decode {
            XCTAssertEqual(bytes(tok.decode(c.ids, skipSpecialTokens: c.skip_special_tokens)), bytes(c.text),
                           "decode \(c.ids) skip=\(c.skip_special_tokens)")
        }
    }

    func testRandomTextRoundTrips() {
        let tok = Self.tokenizer
        // Scalars from many scripts (avoiding U+0004/06/13/14/16/1D and planes 4-11, whose bytes SmolLM2 lacks).
        let ranges: [ClosedRange<UInt32>] = [0x20...0x7E, 0x20...0x20, 0x30...0x39, 0x0A...0x0A, 0x09...0x09,
                                             0xA0...0x17F, 0x370...0x3FF, 0x400...0x4FF, 0x600...0x6FF,
                                             0x900...0x97F, 0x300...0x36F, 0x3040...0x30FF, 0x4E00...0x9FFF,
                                             0xAC00...0xD7A3, 0x1F300...0x1F6FF, 0x2000...0x206F, 0xFE00...0xFE0F,
                                             0x1F1E6...0x1F1FF, 0x20000...0x2A6DF, 0xE0000...0xE007F]
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        for _ in 0..<300 {
            var s = String.UnicodeScalarView()
            for _ in 0..<Int(next() % 60) {
                let r = ranges[Int(next() % UInt64(ranges.count))]
                let v = r.lowerBound + UInt32(next() % UInt64(r.count))
                if let u = Unicode.Scalar(v) { s.append(u) }
            }
            let text = String(s)
            let ids = tok.encode(text)
            XCTAssertEqual(bytes(tok.decode(ids)), bytes(text), show(text))
            var d = tok.streamingDecoder()
            var streamed = ""
            for id in ids {
                let piece = d.append(id)
                XCTAssertFalse(piece.unicodeScalars.contains("\u{FFFD}"), "streamed U+FFFD for \(show(text))")
                streamed += piece
            }
            XCTAssertFalse(d.hasPendingBytes)
            streamed += d.finish()
            XCTAssertEqual(bytes(streamed), bytes(text))
        }
    }

    func testStreamingDecoderMatchesDecode() {
        let tok = Self.tokenizer
        var all: [(ids: [Int], skip: Bool)] = Self.cases.encode.map { ($0.ids, false) }
        all += Self.cases.decode.map { ($0.ids, $0.skip_special_tokens) }
        all += Self.cases.chat.map { ($0.ids, true) }
        for (ids, skip) in all {
            var d = StreamingDecoder(tokenizer: tok, skipSpecialTokens: skip)
            var pieces = ids.map { d.append($0) }
            pieces.append(d.finish())
            XCTAssertEqual(bytes(pieces.joined()), bytes(tok.decode(ids, skipSpecialTokens: skip)), "\(ids)")
        }
        // Holds back an incomplete emoji, then emits it whole.
        let emoji = tok.encode("😀")
        XCTAssertGreaterThan(emoji.count, 1)
        var d = tok.streamingDecoder()
        for id in emoji.dropLast() { XCTAssertEqual(d.append(id), "") }
        XCTAssertTrue(d.hasPendingBytes)
        XCTAssertEqual(d.append(emoji.last!), "😀")
        XCTAssertFalse(d.hasPendingBytes)
        // An incomplete sequence at the end decodes lossily and never crashes.
        XCTAssertEqual(tok.decode(Array(emoji.dropLast())), "\u{FFFD}")
        _ = d.append(emoji[0])
        XCTAssertEqual(d.finish(), "\u{FFFD}")
        XCTAssertEqual(d.finish(), "")
    }

    // MARK: Pre-tokenizers

    func testPreTokenizerSplitsMatchHF() {
        let texts = Self.cases.encode.map(\.text)
        XCTAssertEqual(Set(Self.cases.pretokenize.keys), Set(PreTokenizer.allCases.map(\.rawValue)))
        for p in PreTokenizer.allCases {
            let want = Self.cases.pretokenize[p.rawValue]!
            for (text, pieces) in zip(texts, want) {
                XCTAssertEqual(p.split(text).map(bytes), pieces.map(bytes), "\(p) \(show(text))")
            }
        }
    }

    func testPreTokenizerExamples() {
        XCTAssertEqual(PreTokenizer.gpt2.split("a  1 I'm"), ["a", " ", " 1", " I", "'m"])
        XCTAssertEqual(PreTokenizer.smollm.split("a  12 I'm"), ["a", "  ", "1", "2", " I", "'m"])
        XCTAssertEqual(PreTokenizer.llama3.split("12345 DON'T\n\n x"), ["123", "45", " DON", "'T", "\n\n", " x"])
        XCTAssertEqual(PreTokenizer.qwen2.split("123"), ["1", "2", "3"])
        XCTAssertEqual(PreTokenizer.gpt2.split(""), [])
        XCTAssertEqual(PreTokenizer(ggmlName: "llama-bpe"), .llama3)
        XCTAssertEqual(PreTokenizer(ggmlName: "gpt-2"), .gpt2)
        XCTAssertEqual(PreTokenizer(ggmlName: "qwen2"), .qwen2)
        XCTAssertNil(PreTokenizer(ggmlName: "no-such-pre"))
    }

    func testTokenizerJSONVariants() throws {
        func json(pre: String, merges: String, extra: String = "") -> Data {
            let vocab = #"{"a":0,"b":1,"ab":2,"Ġ":3,"Ġab":4}"#
            return Data(("{" + #""added_tokens":[{"id":5,"content":"<|eot|>","special":true},"#
                         + #"{"id":6,"content":"<x>","special":false}],"normalizer":null,"pre_tokenizer":"# + pre
                         + #","model":{"type":"BPE","vocab":"# + vocab + #","merges":"# + merges + "}" + extra + "}")
                .utf8)
        }
        let byteLevel = #"{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}"#
        for merges in [#"["a b","Ġ ab"]"#, #"[["a","b"],["Ġ","ab"]]"#] {
            let tok = try BPETokenizer(tokenizerJSONData: json(pre: byteLevel, merges: merges))
            XCTAssertEqual(tok.preTokenizer, .gpt2)
            XCTAssertEqual(tok.vocabularySize, 7)
            XCTAssertEqual(tok.encode("ab ab<|eot|><x>"), [2, 4, 5, 6])
            XCTAssertEqual(tok.specialTokenIds, [5])
            XCTAssertEqual(tok.addedTokenIds, [5, 6])
            XCTAssertNil(tok.bosTokenId)
            XCTAssertFalse(tok.addBOS)
        }
        // Llama-3 style: Split(Regex) + ByteLevel(use_regex false), BOS from the TemplateProcessing post-processor.
        let split = #"{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"#
            + String(data: try JSONSerialization.data(withJSONObject: [PreTokenizer.llama3.regexPattern],
                                                      options: [.withoutEscapingSlashes]), encoding: .utf8)!.dropFirst().dropLast()
            + #"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}"#
        let post = #","post_processor":{"type":"Sequence","processors":[{"type":"ByteLevel"},{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|eot|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<|eot|>":{"id":"<|eot|>","ids":[5],"tokens":["<|eot|>"]}}}]}"#
        let llama = try BPETokenizer(tokenizerJSONData: json(pre: split, merges: #"["a b","Ġ ab"]"#, extra: post))
        XCTAssertEqual(llama.preTokenizer, .llama3)
        XCTAssertEqual(llama.bosTokenId, 5)
        XCTAssertTrue(llama.addBOS)
        XCTAssertEqual(llama.encode("ab ab"), [5, 2, 4])
        // tokenizer_config.json overrides.
        let config = Data(#"{"bos_token":"<|eot|>","eos_token":{"content":"<|eot|>"},"add_bos_token":false}"#.utf8)
        let configured = try BPETokenizer(tokenizerJSONData: json(pre: split, merges: "[]", extra: post),
                                          tokenizerConfigData: config)
        XCTAssertFalse(configured.addBOS)
        XCTAssertEqual(configured.eosTokenId, 5)
        // SmolLM's Digits + ByteLevel.
        let digits = #"{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},"# + byteLevel + "]}"
        XCTAssertEqual(try BPETokenizer(tokenizerJSONData: json(pre: digits, merges: "[]")).preTokenizer, .smollm)
        // Unsupported shapes throw.
        let bad = [#"{"type":"Whitespace"}"#, "null",
                   #"{"type":"ByteLevel","add_prefix_space":true,"use_regex":true}"#,
                   #"{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}]}"#]
        for pre in bad {
            XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: json(pre: pre, merges: "[]")), pre)
        }
        XCTAssertThrowsError(try BPETokenizer(tokenizerJSONData: Data("[]".utf8)))
    }

    // MARK: Chat template

    func testChatTemplateMatchesHF() throws {
        let template = ChatTemplate.from(jinja: Self.cases.gguf.chat_template)
        XCTAssertNotNil(template)
        XCTAssertEqual(template?.defaultSystemPrompt, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        guard let template else { return }
        XCTAssertEqual(Self.cases.chat.count, 6)
        for c in Self.cases.chat {
            let text = try template.render(c.messages, addGenerationPrompt: c.add_generation_prompt)
            XCTAssertEqual(bytes(text), bytes(c.text), show(c.text))
            XCTAssertEqual(Self.tokenizer.encode(text), c.ids)
        }
        XCTAssertEqual(try template.render([], addGenerationPrompt: true), "<|im_start|>assistant\n")
    }

    func testChatTemplateRecognition() throws {
        // Any template is rendered by the Jinja interpreter (not only ChatML).
        let inst = ChatTemplate.from(jinja: "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}",
                                     specialTokens: ["bos_token": "<s>"])
        XCTAssertEqual(try inst?.render([.user("U")], addGenerationPrompt: false), "<s>[INST] U [/INST]")
        XCTAssertNil(ChatTemplate.from(jinja: "{% include 'x' %}"))
        // ChatML without a default system prompt (the system branch concatenates the message's content).
        let plain = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
        let conversation: [ChatMessage] = [.system("S"), .user("U"), .assistant("A")]
        XCTAssertEqual(try ChatTemplate.from(jinja: plain)?.render(conversation, addGenerationPrompt: true),
                       try ChatTemplate.chatML.render(conversation, addGenerationPrompt: true))
        let qwenLike = "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You\\'re helpful.<|im_end|>\\n' }}{%- endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
        XCTAssertEqual(ChatTemplate.from(jinja: qwenLike)?.defaultSystemPrompt,
                       "You are Qwen, created by Alibaba Cloud. You're helpful.")
        let rendered = try ChatTemplate.chatML.render([.system("S"), .user("U"), .assistant("A")], addGenerationPrompt: false)
        XCTAssertEqual(rendered, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n")
    }

    // MARK: Performance

    func testEncodeSpeed100KB() throws {
        var seed: UInt64 = 42
        func next() -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int(truncatingIfNeeded: seed >> 33)
        }
        // Mixed corpus text, unique pseudo-random words (Latin, Cyrillic, CJK), one 100 KB word, 100 KB of spaces.
        var corpus = ""
        var i = 0
        while corpus.utf8.count < 100_000 {
            corpus += Self.cases.encode[i % Self.cases.encode.count].text + " \(i * 7919) "
            i += 1
        }
        let alphabets: [[Character]] = [Array("abcdefghijklmnopqrstuvwxyz"), Array("абвгдежзиклмнопрстуфхцчшщ"),
                                        Array("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年")]
        var words = ""
        while words.utf8.count < 100_000 {
            let a = alphabets[next() % 3]
            words += String((0..<(2 + next() % 9)).map { _ in a[next() % a.count] }) + (next() % 10 == 0 ? ".\n" : " ")
        }
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        let oneWord = String((0..<100_000).map { _ in letters[next() % 26] })
        let spaces = String(repeating: " ", count: 100_000)

        for (name, text) in [("corpus mix", corpus), ("unique words", words), ("one word", oneWord),
                             ("spaces", spaces)] {
            let fresh = try BPETokenizer(tokenizerJSON: Self.directory.appendingPathComponent("tokenizer.json"))
            var start = Date()
            let ids = fresh.encode(text)
            let cold = Date().timeIntervalSince(start)
            start = Date()
            let again = fresh.encode(text)
            let warm = Date().timeIntervalSince(start)
            XCTAssertEqual(ids, again)
            XCTAssertEqual(bytes(fresh.decode(ids)), bytes(text.replacingOccurrences(of: "\u{04}", with: "")))
            print(String(format: "[tokenizer] %@: encode %d bytes -> %d tokens: %.1f ms (empty cache), %.1f ms (warm)",
                         name, text.utf8.count, ids.count, cold * 1000, warm * 1000))
            XCTAssertLessThan(cold, 10)  // generous: debug builds; see the printed times
        }
    }
}
