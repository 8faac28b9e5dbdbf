import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Transformer
import TransformerServer
import XCTest

/// The OpenAI-compatible server, started in-process on an ephemeral port and driven over HTTP (AsyncHTTPClient).
///
/// The model is the tiny random chat model of `scripts/fixtures/serve.py` (in TransformerTests' fixtures); the
/// expected texts are Hugging Face's greedy replies from its `cases.json` (identical text, greedy margins ≥ 1e-3).
final class ServerTests: XCTestCase {
    static let chatDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TransformerTests/Fixtures/chat_model")

    struct Case: Decodable {
        let messages: [ChatMessage]
        let prompt_ids: [Int]
        let greedy_ids: [Int]
        let text: String
        let finish_reason: String
    }
    struct Cases: Decodable {
        struct Completion: Decodable { let prompt: String; let prompt_ids: [Int]; let greedy_ids: [Int]; let text: String }
        let chat: [Case]
        let completion: Completion
    }
    static let cases = try! JSONDecoder().decode(Cases.self, from: Data(contentsOf: chatDir.appendingPathComponent("cases.json")))
    static let generator = try! ModelLoader.open(chatDir.path).textGenerator()
    /// The same weights with a 32768-position context and no stop tokens: a stream that cannot end on its own within
    /// a test (it is cancelled), for the scenarios that need a sequence still running while other requests arrive.
    static let endlessGenerator: TextGenerator = {
        let opened = try! ModelLoader.open(chatDir.path)
        var config = opened.config
        config.maxPositionEmbeddings = 1 << 15
        guard case .causalLM(let model) = try! ModelLoader.build(config: config, weights: Weights(try! SafeTensorsCheckpoint(directory: chatDir)))
        else { fatalError("chat model is not a causal LM") }
        return TextGenerator(model: model, tokenizer: generator.tokenizer, chatTemplate: generator.chatTemplate, stopTokens: [])
    }()

    /// A running server and a client for it.
    final class Running: @unchecked Sendable {
        let server: OpenAIServer
        let task: Task<Void, Error>
        let port: Int
        let client = HTTPClient(eventLoopGroupProvider: .singleton)

        init(_ configuration: OpenAIServer.Configuration, generator: TextGenerator = ServerTests.generator) async throws {
            var c = configuration
            (c.host, c.port, c.logRequests) = ("127.0.0.1", 0, false)
            let server = try OpenAIServer(generator: generator, configuration: c)
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            task = Task { try await server.run(onListening: { continuation.yield($0) }, handleSignals: false) }
            var it = ports.makeAsyncIterator()
            guard let p = await it.next(), p > 0 else { throw URLError(.cannotConnectToHost) }
            (self.server, self.port) = (server, p)
        }

        func stop() async throws {
            try await client.shutdown()
            task.cancel()
            _ = await task.result
        }

        func request(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws -> (status: Int, body: String) {
            var r = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
            r.method = method
            if let body {
                r.headers.add(name: "Content-Type", value: "application/json")
                r.body = .bytes(ByteBuffer(string: body))
            }
            let response = try await client.execute(r, timeout: .seconds(60))
            let bytes = try await response.body.collect(upTo: 1 << 24)
            return (Int(response.status.code), String(buffer: bytes))
        }

        func json(_ method: HTTPMethod, _ path: String, _ body: Any? = nil) async throws -> (status: Int, json: [String: Any]) {
            let text = try body.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
            let (status, out) = try await request(method, path, body: text)
            let object = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
            return (status, object ?? [:])
        }
    }

    static func messagesJSON(_ m: [ChatMessage]) -> [[String: String]] { m.map { ["role": $0.role, "content": $0.content] } }

    func withServer(_ configuration: OpenAIServer.Configuration = .init(parallel: 2, context: 256),
                    generator: TextGenerator = ServerTests.generator,
                    _ body: (Running) async throws -> Void) async throws {
        let running = try await Running(configuration, generator: generator)
        do {
            try await body(running)
        } catch {
            try? await running.stop()
            throw error
        }
        try await running.stop()
    }

    // MARK: - Routes

    func testHealthModelsAndUnknownRoute() async throws {
        try await withServer(.init(modelName: "tiny")) { s in
            let health = try await s.json(.GET, "/health")
            XCTAssertEqual(health.status, 200)
            XCTAssertEqual(health.json["status"] as? String, "ok")
            let models = try await s.json(.GET, "/v1/models")
            XCTAssertEqual(models.status, 200)
            XCTAssertEqual(((models.json["data"] as? [[String: Any]])?.first?["id"]) as? String, "tiny")
            let missing = try await s.json(.POST, "/v1/nothing", ["x": 1])
            XCTAssertEqual(missing.status, 404)
            XCTAssertEqual((missing.json["error"] as? [String: Any])?["code"] as? String, "unknown_url")
        }
    }

    func testChatCompletionMatchesHFGreedy() async throws {
        try await withServer { s in
            for c in Self.cases.chat {
                let (status, json) = try await s.json(.POST, "/v1/chat/completions", [
                    "model": "tiny", "messages": Self.messagesJSON(c.messages), "temperature": 0, "max_tokens": c.greedy_ids.count])
                XCTAssertEqual(status, 200)
                XCTAssertEqual(json["object"] as? String, "chat.completion")
                let choice = (json["choices"] as? [[String: Any]])?.first
                XCTAssertEqual((choice?["message"] as? [String: Any])?["content"] as? String, c.text)
                XCTAssertEqual(choice?["finish_reason"] as? String, c.finish_reason)
                let usage = json["usage"] as? [String: Any]
                XCTAssertEqual(usage?["prompt_tokens"] as? Int, c.prompt_ids.count)
                XCTAssertEqual(usage?["completion_tokens"] as? Int, c.greedy_ids.count)
            }
            let c = Self.cases.completion
            let (status, json) = try await s.json(.POST, "/v1/completions", ["prompt": c.prompt, "temperature": 0,
                                                                            "max_tokens": c.greedy_ids.count])
            XCTAssertEqual(status, 200)
            XCTAssertEqual((json["choices"] as? [[String: Any]])?.first?["text"] as? String, c.text)
            XCTAssertEqual((json["usage"] as? [String: Any])?["prompt_tokens"] as? Int, c.prompt_ids.count)
        }
    }

    func testStreamingSSEFraming() async throws {
        try await withServer { s in
            let c = Self.cases.chat[1]
            let body = ["messages": Self.messagesJSON(c.messages), "temperature": 0, "max_tokens": c.greedy_ids.count,
                        "stream": true, "stream_options": ["include_usage": true]] as [String: Any]
            let (status, text) = try await s.request(.POST, "/v1/chat/completions",
                                                     body: String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self))
            XCTAssertEqual(status, 200)
            XCTAssertTrue(text.hasSuffix("data: [DONE]\n\n"))
            let events = text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            XCTAssertTrue(events.allSatisfy { $0.hasPrefix("data: ") }, "every event is one data: line")
            let chunks = try events.dropLast().map {
                try JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8)) as! [String: Any]
            }
            var content = "", finish: String?, usage: [String: Any]?
            for chunk in chunks {
                XCTAssertEqual(chunk["object"] as? String, "chat.completion.chunk")
                if let u = chunk["usage"] as? [String: Any] { usage = u }
                for choice in chunk["choices"] as? [[String: Any]] ?? [] {
                    content += (choice["delta"] as? [String: Any])?["content"] as? String ?? ""
                    if let f = choice["finish_reason"] as? String { finish = f }
                }
            }
            XCTAssertEqual(((chunks.first?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["role"] as? String, "assistant")
            XCTAssertEqual(content, c.text)
            XCTAssertEqual(finish, c.finish_reason)
            XCTAssertEqual(usage?["completion_tokens"] as? Int, c.greedy_ids.count)
            XCTAssertEqual((chunks.last?["choices"] as? [Any])?.count, 0, "the usage chunk has no choices")
        }
    }

    func testStopSequences() async throws {
        try await withServer { s in
            let c = Self.cases.chat[3]
            let stop = String(Array(c.text)[6..<9])
            let expected = String(c.text[..<c.text.range(of: stop)!.lowerBound])
            for stream in [false, true] {
                let body = ["messages": Self.messagesJSON(c.messages), "temperature": 0, "max_tokens": c.greedy_ids.count,
                            "stop": ["never appears", stop], "stream": stream] as [String: Any]
                let (status, text) = try await s.request(.POST, "/v1/chat/completions",
                                                         body: String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self))
                XCTAssertEqual(status, 200)
                if stream {
                    let content = text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: {") }.compactMap {
                        ((try? JSONSerialization.jsonObject(with: Data($0.dropFirst(6).utf8))) as? [String: Any])
                    }.flatMap { $0["choices"] as? [[String: Any]] ?? [] }.compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }
                    XCTAssertEqual(content.joined(), expected)
                    XCTAssertTrue(text.contains("\"finish_reason\":\"stop\""))
                } else {
                    let json = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
                    let choice = (json["choices"] as? [[String: Any]])?.first
                    XCTAssertEqual((choice?["message"] as? [String: Any])?["content"] as? String, expected)
                    XCTAssertEqual(choice?["finish_reason"] as? String, "stop")
                }
            }
        }
    }

    // MARK: - Errors

    func assertError(_ r: (status: Int, json: [String: Any]), _ status: Int, param: String?, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, "\(r.json)", file: file, line: line)
        let e = r.json["error"] as? [String: Any]
        XCTAssertNotNil(e?["message"] as? String, file: file, line: line)
        XCTAssertNotNil(e?["type"] as? String, file: file, line: line)
        XCTAssertTrue(e?.keys.contains("code") ?? false, file: file, line: line)
        XCTAssertEqual(e?["param"] as? String, param, file: file, line: line)
    }

    func testErrorsAsOpenAISendsThem() async throws {
        try await withServer(.init(parallel: 1, context: 128, maxBodyBytes: 4096)) { s in
            let user = [["role": "user", "content": "Hello there!"]]
            let malformed = try await s.request(.POST, "/v1/chat/completions", body: "{\"messages\": [")
            XCTAssertEqual(malformed.status, 400)
            XCTAssertTrue(malformed.body.contains("\"error\""))
            assertError(try await s.json(.POST, "/v1/chat/completions", ["model": "x"]), 400, param: "messages")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": []]), 400, param: "messages")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": "hi"]), 400, param: "messages")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": [["role": "user"]]]), 400, param: "messages[0].content")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": [["role": "robot", "content": "x"]]]), 400,
                        param: "messages[0].role")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "temperature": "hot"]), 400, param: "temperature")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "temperature": 2.5]), 400, param: "temperature")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "top_p": -0.1]), 400, param: "top_p")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "max_tokens": 0]), 400, param: "max_tokens")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "max_tokens": 1.5]), 400, param: "max_tokens")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "stream": "yes"]), 400, param: "stream")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "stop": [1, 2]]), 400, param: "stop")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "n": 2]), 400, param: "n")
            assertError(try await s.json(.POST, "/v1/chat/completions", ["messages": user, "frequency_penalty": 3]), 400,
                        param: "frequency_penalty")
            assertError(try await s.json(.POST, "/v1/completions", ["prompt": 5]), 400, param: "prompt")
            let long = try await s.json(.POST, "/v1/chat/completions", ["messages": [["role": "user", "content": String(repeating: "the lazy dog ", count: 40)]]])
            assertError(long, 400, param: "messages")
            XCTAssertEqual((long.json["error"] as? [String: Any])?["code"] as? String, "context_length_exceeded")
            let big = try await s.request(.POST, "/v1/chat/completions", body: "{\"messages\": \"" + String(repeating: "x", count: 5000) + "\"}")
            XCTAssertEqual(big.status, 413)
            XCTAssertTrue(big.body.contains("\"error\""))
            // The server still answers after all that.
            let ok = try await s.json(.POST, "/v1/chat/completions", ["messages": user, "max_tokens": 2])
            XCTAssertEqual(ok.status, 200, "\(ok.json)")
        }
    }

    // MARK: - Cancellation and load

    /// Set once a stream's body has ended by itself (not by cancellation).
    final class Ended: @unchecked Sendable {
        private let lock = NSLock()
        private var ended = false
        var value: Bool { lock.lock(); defer { lock.unlock() }; return ended }
        func set() { lock.lock(); ended = true; lock.unlock() }
    }

    /// Starts a long streamed request and returns once its first chunk has arrived; cancelling the returned task
    /// closes the connection. `ended` turns true if the stream finishes on its own.
    func startLongStream(_ s: Running, maxTokens: Int) async throws -> (task: Task<Void, Error>, ended: Ended) {
        let (first, continuation) = AsyncStream<Void>.makeStream()
        let ended = Ended()
        let task = Task {
            var r = HTTPClientRequest(url: "http://127.0.0.1:\(s.port)/v1/chat/completions")
            r.method = .POST
            r.body = .bytes(ByteBuffer(string: "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello there!\"}],\"temperature\":0,"
                                       + "\"max_tokens\":\(maxTokens),\"stream\":true}"))
            let response = try await s.client.execute(r, timeout: .seconds(120))
            for try await _ in response.body {
                continuation.yield()
            }
            ended.set()
            continuation.finish()
        }
        var it = first.makeAsyncIterator()
        _ = await it.next()
        return (task, ended)
    }

    func testDisconnectCancelsTheSequenceAndAFullQueueAnswers503() async throws {
        // The long stream cannot end on its own (no stop tokens, 30000 tokens of a 32768-position context): it is
        // still running when the other two requests arrive, however fast the machine.
        try await withServer(.init(parallel: 1, context: 1 << 15, maxQueued: 1), generator: Self.endlessGenerator) { s in
            let hi: [String: Any] = ["messages": [["role": "user", "content": "Hi"]], "max_tokens": 1]
            let tokensBefore = s.server.scheduler.stepTokens
            let (a, ended) = try await startLongStream(s, maxTokens: 30000)
            // One slot busy, one request may wait: the second waits, the third is refused.
            let waiting = Task { try await s.json(.POST, "/v1/chat/completions", hi) }
            var queued = false
            for _ in 0..<500 where !queued {
                queued = s.server.scheduler.load.queued == 1
                if !queued { try await Task.sleep(nanoseconds: 10_000_000) }
            }
            XCTAssertTrue(queued, "the second request never queued behind the long stream")
            let refused = try await s.json(.POST, "/v1/chat/completions", hi)
            XCTAssertFalse(ended.value, "the long stream ended on its own")
            assertError(refused, 503, param: nil)
            // The client of the long stream goes away: its sequence is cancelled, the slot freed, the waiting one served.
            a.cancel()
            let served = try await waiting.value
            XCTAssertEqual(served.status, 200)
            var idle = false
            for _ in 0..<500 where !idle {
                idle = s.server.scheduler.load == (0, 0)
                if !idle { try await Task.sleep(nanoseconds: 10_000_000) }
            }
            XCTAssertTrue(idle)
            XCTAssertLessThan(s.server.scheduler.stepTokens - tokensBefore, 30000, "the long stream must have stopped early")
        }
    }
}
