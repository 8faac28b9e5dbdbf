import Foundation
import XCTest
@testable import Transformer

/// The Jinja interpreter against Python's jinja2 as Hugging Face's `apply_chat_template` runs it (fixtures from
/// `scripts/fixtures/templates.py`: real chat templates of Llama-3/3.2, Mistral v0.1/v0.3/Nemo, Gemma, Qwen2.5/3,
/// Phi-3, SmolLM2, DeepSeek V2/R1/coder, Zephyr, Granite-3, Command-R+, YandexGPT-5 (macros), Qwen2-VL ... and two synthetic templates covering the filters, tests,
/// methods and statements). Tolerance: none — every rendered prompt must be byte-identical, and every template
/// that raised in Python must throw the same message.
final class ChatTemplateTests: XCTestCase {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("templates")

    struct Case {
        let template: String
        let messages: [JinjaValue]
        let addGenerationPrompt: Bool
        let bos: String
        let eos: String
        let text: String?
        let error: String?
    }

    static func load() throws -> (cases: [Case], now: Date) {
        let data = try Data(contentsOf: root.appendingPathComponent("cases.json"))
        guard case .object(let doc) = try JinjaValue(json: String(decoding: data, as: UTF8.self)),
              case .array(let list, _)? = doc["cases"], case .string(let nowText)? = doc["now"] else {
            throw JinjaError.invalidInput("cases.json has an unexpected shape")
        }
        // "2024-07-26T15:04:05", local time as Python's datetime.now() is
        let parts = nowText.split(whereSeparator: { "-T:".contains($0) }).compactMap { Int($0) }
        var comps = DateComponents()
        (comps.year, comps.month, comps.day, comps.hour, comps.minute, comps.second) =
            (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone.current
        let now = cal.date(from: comps)!
        let cases = list.map { v -> Case in
            guard case .object(let o) = v, case .string(let t)? = o["template"], case .array(let m, _)? = o["messages"],
                  case .bool(let g)? = o["add_generation_prompt"], case .string(let b)? = o["bos_token"],
                  case .string(let e)? = o["eos_token"] else { fatalError("bad fixture case") }
            var text: String?, error: String?
            if case .string(let s)? = o["text"] { text = s }
            if case .string(let s)? = o["error"] { error = s }
            return Case(template: t, messages: m, addGenerationPrompt: g, bos: b, eos: e, text: text, error: error)
        }
        return (cases, now)
    }

    func source(_ name: String) throws -> String {
        String(decoding: try Data(contentsOf: Self.root.appendingPathComponent(name + ".jinja")), as: UTF8.self)
    }

    func testRealTemplatesRenderLikeJinja2() throws {
        let (cases, now) = try Self.load()
        XCTAssertGreaterThanOrEqual(cases.count, 200)
        var rendered = 0, raised = 0
        var templates: Set<String> = []
        for c in cases {
            templates.insert(c.template)
            let t = try ChatTemplate(jinja: try source(c.template),
                                     specialTokens: ["bos_token": c.bos, "eos_token": c.eos])
            let label = "\(c.template) \(c.messages.count) messages gen=\(c.addGenerationPrompt)"
            do {
                let out = try t.render(messages: c.messages, addGenerationPrompt: c.addGenerationPrompt, now: now)
                guard let expected = c.text else {
                    XCTFail("\(label): expected the error \(c.error ?? "?"), rendered \(out.debugDescription)")
                    continue
                }
                XCTAssertEqual(Array(out.utf8), Array(expected.utf8), "\(label)\nours:   \(out.debugDescription)\njinja2: \(expected.debugDescription)")
                rendered += 1
            } catch JinjaError.raised(let message) {
                XCTAssertEqual(message, c.error, label)
                raised += 1
            } catch {
                XCTFail("\(label): \(error)")
            }
        }
        XCTAssertGreaterThanOrEqual(templates.count, 24)
        XCTAssertGreaterThan(raised, 5)
        XCTAssertGreaterThan(rendered, 190)
    }

    /// The `ChatMessage` API (what `TextGenerator` uses) renders the same as JSON messages.
    func testChatMessageAPI() throws {
        let t = try ChatTemplate(jinja: try source("llama3"), specialTokens: ["bos_token": "<|begin_of_text|>"])
        let s = try t.render([.system(" Be brief. "), .user("Hi")], addGenerationPrompt: true)
        XCTAssertEqual(s, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                          + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        let mistral = try ChatTemplate(jinja: try source("mistral_v0_1"), specialTokens: ["bos_token": "<s>", "eos_token": "</s>"])
        XCTAssertThrowsError(try mistral.render([.assistant("first")], addGenerationPrompt: false)) { error in
            XCTAssertEqual(error as? JinjaError, .raised("Conversation roles must alternate user/assistant/user/assistant/..."))
        }
    }

    func testUnsupportedSyntaxThrowsNamingTheConstruct() {
        let cases: [(String, String)] = [
            ("{% include 'other.jinja' %}", "include"),
            ("{% extends 'base.jinja' %}", "extends"),
            ("{% raw %}{{ x }}{% endraw %}", "raw"),
            ("{% filter upper %}x{% endfilter %}", "filter"),
            ("{{ 'a b' | wordcount }}", "wordcount"),
            ("{{ 'x' is sameas_unknown }}", "sameas_unknown"),
            ("{{ '{}'.format(1) }}", "format"),
            ("{{ '%s' % 'x' }}", "formatting"),
        ]
        for (src, name) in cases {
            XCTAssertThrowsError(try JinjaTemplate(src).render([:]), src) { error in
                guard case JinjaError.unsupported(let what) = error else { return XCTFail("\(src): \(error)") }
                XCTAssertTrue(what.contains(name), "\(src): \(what)")
            }
        }
        // Syntax errors are reported as such.
        for src in ["{% if x %}never closed", "{{ 1 + }}", "{% for in x %}{% endfor %}", "{{ 'unterminated }}", "{% endif %}"] {
            XCTAssertThrowsError(try JinjaTemplate(src), src) { error in
                guard case JinjaError.syntax = error else { return XCTFail("\(src): \(error)") }
            }
        }
    }

    func testHostileTemplatesFailCleanly() {
        let deep = String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000)
        XCTAssertThrowsError(try JinjaTemplate("{{ \(deep) }}")) { error in
            guard case JinjaError.syntax = error else { return XCTFail("\(error)") }
        }
        let recursive = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"
        XCTAssertThrowsError(try JinjaTemplate(recursive).render([:])) { error in
            guard case JinjaError.runtime = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try JinjaTemplate("{{ 'x' * 1000000000000 }}").render([:]))
        XCTAssertThrowsError(try JinjaTemplate("{{ range(100000000) | length }}").render([:]))
        XCTAssertThrowsError(try JinjaTemplate("{{ 2 ** 64 }}").render([:])) { error in
            guard case JinjaError.unsupported = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try JinjaTemplate("{{ (-1) ** 3 }} {{ 2 ** 62 }} {{ 9223372036854775807 - 1 }}").render([:]),
                       "-1 4611686018427387904 9223372036854775806")
    }

    func testPythonRuntimeErrorsThrow() {
        for src in ["{{ undefined_name.attr }}", "{{ undefined_name + 1 }}", "{{ 'a' + 1 }}", "{{ 'a' < 1 }}",
                    "{% for x in 5 %}{% endfor %}", "{{ 1 // 0 }}", "{{ undefined_name | tojson }}"] {
            XCTAssertThrowsError(try JinjaTemplate(src).render([:]), src) { error in
                guard case JinjaError.runtime = error else { return XCTFail("\(src): \(error)") }
            }
        }
    }

    func testOrderedJSONAndBadInput() throws {
        let v = try JinjaValue(json: #"{"z": 1, "a": [true, null, 2.5, "\u00e9\ud83d\ude00"]}"#)
        XCTAssertEqual(try JinjaTemplate("{{ v | tojson }}").render(["v": v]), #"{"z": 1, "a": [true, null, 2.5, "é😀"]}"#)
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"x"] {
            XCTAssertThrowsError(try JinjaValue(json: bad), bad)
        }
    }
}
