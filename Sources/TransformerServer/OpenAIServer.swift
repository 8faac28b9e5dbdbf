import Foundation
import Hummingbird
import Logging
import NIOCore
import Transformer

/// An OpenAI-compatible HTTP server over a ``BatchScheduler`` (continuous batching), on Hummingbird 2 / SwiftNIO.
///
/// Routes (OpenAI's wire format, so the official `openai` clients work unchanged):
///
///     POST /v1/chat/completions   messages → reply (JSON, or SSE `data: {chunk}` lines ending with `data: [DONE]`)
///     POST /v1/completions        prompt → continuation (same)
///     GET  /v1/models             the one model served
///     GET  /health                200 {"status":"ok"} (the server only listens once the model is loaded)
///
/// Errors come as OpenAI sends them, `{"error": {"message", "type", "param", "code"}}`: 400 for malformed JSON,
/// missing or wrong-typed or out-of-range fields and prompts longer than the context, 404 for unknown routes, 413 for
/// bodies over ``Configuration/maxBodyBytes``, 503 when the scheduler's queue is full. A streaming client that goes
/// away cancels its sequence and frees its slot. One line per request goes to the log (stderr).
///
/// ```swift
/// let server = try OpenAIServer(generator: ModelLoader.open("model.gguf").textGenerator(), configuration: .init(port: 8080))
/// try await server.run()   // until SIGINT / SIGTERM (graceful shutdown)
/// ```
public final class OpenAIServer: Sendable {
    /// Where to listen and how much to take on.
    public struct Configuration: Sendable {
        /// Interface to bind (loopback by default: nothing outside this machine can connect).
        public var host: String
        /// TCP port (0 picks a free one; ``run(onListening:)`` reports it).
        public var port: Int
        /// Sequences decoded together.
        public var parallel: Int
        /// KV-cache positions per sequence (prompt + reply).
        public var context: Int
        /// Requests that may wait for a free slot before the server answers 503.
        public var maxQueued: Int
        /// Largest request body accepted (413 above).
        public var maxBodyBytes: Int
        /// The model name `/v1/models` reports (requests may name any model).
        public var modelName: String
        /// Whether to write one line per request to stderr.
        public var logRequests: Bool

        public init(host: String = "127.0.0.1", port: Int = 8080, parallel: Int = 4, context: Int = 2048, maxQueued: Int = 64,
                    maxBodyBytes: Int = 4 << 20, modelName: String = "model", logRequests: Bool = true) {
            (self.host, self.port, self.parallel, self.context, self.maxQueued) = (host, port, parallel, context, maxQueued)
            (self.maxBodyBytes, self.modelName, self.logRequests) = (maxBodyBytes, modelName, logRequests)
        }
    }

    public let generator: TextGenerator
    public let configuration: Configuration
    public let scheduler: BatchScheduler
    let created = Int(Date().timeIntervalSince1970)

    /// Sets up the scheduler (allocating its KV caches); nothing listens until ``run(onListening:)``.
    public init(generator: TextGenerator, configuration: Configuration) throws {
        self.generator = generator
        self.configuration = configuration
        scheduler = try BatchScheduler(generator: generator, configuration: .init(
            parallel: configuration.parallel, contextLength: configuration.context, maxQueued: configuration.maxQueued))
    }

    /// Serves until SIGINT or SIGTERM (then finishes the requests in flight and returns), or until the calling task
    /// is cancelled. `onListening` receives the bound port.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }, handleSignals: Bool = true) async throws {
        scheduler.start()
        defer { scheduler.shutdown() }
        var logger = Logger(label: "transformer-server")
        logger.logLevel = configuration.logRequests ? .warning : .critical
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "transformer-server"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        if handleSignals {
            try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        } else {
            try await app.run()
        }
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: OpenAIMiddleware(log: configuration.logRequests))
        router.get("/health") { _, _ in jsonResponse(["status": "ok"]) }
        router.get("/v1/models") { [self] _, _ in
            jsonResponse(["object": "list", "data": [["id": configuration.modelName, "object": "model", "created": created,
                                                      "owned_by": "swift-transformer-engine"] as [String: Any]]])
        }
        router.post("/v1/chat/completions") { [self] request, _ in try await complete(request, chat: true) }
        router.post("/v1/completions") { [self] request, _ in try await complete(request, chat: false) }
        return router
    }

    // MARK: - Completions

    private func complete(_ request: Request, chat: Bool) async throws -> Response {
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: configuration.maxBodyBytes)
        } catch is NIOTooManyBytesError {
            throw OpenAIError(status: .contentTooLarge, message: "The request body is larger than \(configuration.maxBodyBytes) bytes.",
                              code: "request_too_large")
        }
        let r = try GenerationRequest.parse(Data(buffer: body), chat: chat)
        let prompt = try promptTokens(r)
        guard prompt.count < scheduler.configuration.contextLength else {
            throw OpenAIError.invalid("This model's maximum context length is \(scheduler.configuration.contextLength) tokens. "
                                      + "However, your \(chat ? "messages" : "prompt") resulted in \(prompt.count) tokens.",
                                      param: chat ? "messages" : "prompt", code: "context_length_exceeded")
        }
        let options = TextGenerationOptions(maxNewTokens: r.maxTokens ?? scheduler.configuration.contextLength, sampler: r.sampler,
                                            stopStrings: r.stop)
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let (events, continuation) = AsyncStream<BatchScheduler.Event>.makeStream()
        let ticket: BatchScheduler.Ticket
        do {
            ticket = try scheduler.submit(prompt: prompt, options: options) { continuation.yield($0) }
        } catch let e as BatchScheduler.SchedulerError {
            switch e {
            case .queueFull: throw OpenAIError(status: .serviceUnavailable, message: e.description, type: "server_error", code: "server_overloaded")
            case .notRunning: throw OpenAIError(status: .serviceUnavailable, message: e.description, type: "server_error", code: "shutting_down")
            default: throw OpenAIError.invalid(e.description, param: chat ? "messages" : "prompt")
            }
        }
        continuation.onTermination = { _ in ticket.cancel() }
        let reply = Reply(id: id, chat: chat, model: r.model ?? configuration.modelName, created: Int(Date().timeIntervalSince1970))
        if r.stream {
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                            body: ResponseBody { writer in
                                do {
                                    try await reply.stream(events, includeUsage: r.includeUsage, to: &writer)
                                } catch {
                                    ticket.cancel()  // the client went away
                                    throw error
                                }
                            })
        }
        return try await withTaskCancellationHandler {
            var text = ""
            for await event in events {
                switch event {
                case .text(let piece): text += piece
                case .finished(let c): return jsonResponse(reply.whole(text: text, completion: c))
                case .failed(let message): throw OpenAIError(status: .internalServerError, message: message, type: "server_error")
                }
            }
            throw CancellationError()
        } onCancel: {
            ticket.cancel()
        }
    }

    private func promptTokens(_ r: GenerationRequest) throws -> [Int] {
        switch r.input {
        case .messages(let messages):
            guard let template = generator.chatTemplate else {
                throw OpenAIError.invalid("This model has no chat template; use /v1/completions.", param: "messages")
            }
            return generator.tokenizer.encode(try template.render(messages, addGenerationPrompt: true), addSpecialTokens: false)
        case .text(let s):
            let ids = generator.tokenizer.encode(s)
            guard !ids.isEmpty else { throw OpenAIError.invalid("Invalid 'prompt': it is empty.", param: "prompt") }
            return ids
        case .tokens(let ids):
            let vocabulary = generator.model.vocabularySize
            if let bad = ids.first(where: { $0 < 0 || $0 >= vocabulary }) {
                throw OpenAIError.invalid("Invalid 'prompt': token id \(bad) is outside the vocabulary (0..<\(vocabulary)).", param: "prompt")
            }
            return ids
        }
    }
}

/// Builds the JSON objects of one completion (whole or as stream chunks).
struct Reply: Sendable {
    let id: String
    let chat: Bool
    let model: String
    let created: Int

    func usage(_ c: BatchScheduler.Completion) -> [String: Any] {
        ["prompt_tokens": c.promptTokens, "completion_tokens": c.tokens.count, "total_tokens": c.promptTokens + c.tokens.count,
         "prompt_tokens_details": ["cached_tokens": c.cachedPromptTokens]]
    }

    static func finishReason(_ c: BatchScheduler.Completion) -> String { c.finishReason == .stop ? "stop" : "length" }

    func whole(text: String, completion c: BatchScheduler.Completion) -> [String: Any] {
        let choice: [String: Any] = chat
            ? ["index": 0, "message": ["role": "assistant", "content": text, "refusal": NSNull()] as [String: Any],
               "logprobs": NSNull(), "finish_reason": Self.finishReason(c)]
            : ["index": 0, "text": text, "logprobs": NSNull(), "finish_reason": Self.finishReason(c)]
        return ["id": id, "object": chat ? "chat.completion" : "text_completion", "created": created, "model": model,
                "system_fingerprint": NSNull(), "choices": [choice], "usage": usage(c)]
    }

    func chunk(delta: [String: Any]?, text: String?, finish: String?, usage: [String: Any]?, includeUsage: Bool) -> [String: Any] {
        var choices: [[String: Any]] = []
        if chat, let delta {
            choices = [["index": 0, "delta": delta, "logprobs": NSNull(), "finish_reason": finish ?? NSNull()]]
        } else if !chat, let text {
            choices = [["index": 0, "text": text, "logprobs": NSNull(), "finish_reason": finish ?? NSNull()]]
        }
        var o: [String: Any] = ["id": id, "object": chat ? "chat.completion.chunk" : "text_completion", "created": created,
                                "model": model, "system_fingerprint": NSNull(), "choices": choices]
        if includeUsage { o["usage"] = usage ?? NSNull() }
        return o
    }

    /// Writes the server-sent events: a role chunk (chat), one chunk per text piece, a final chunk with the
    /// finish reason, a usage chunk when asked for, then `data: [DONE]`.
    func stream(_ events: AsyncStream<BatchScheduler.Event>, includeUsage: Bool, to writer: inout any ResponseBodyWriter) async throws {
        func send(_ object: [String: Any]) async throws {
            var buffer = ByteBuffer(string: "data: ")
            buffer.writeBytes(jsonData(object))
            buffer.writeString("\n\n")
            try await writer.write(buffer)
        }
        if chat {
            try await send(chunk(delta: ["role": "assistant", "content": ""], text: nil, finish: nil, usage: nil, includeUsage: includeUsage))
        }
        for await event in events {
            switch event {
            case .text(let piece):
                try await send(chunk(delta: ["content": piece], text: piece, finish: nil, usage: nil, includeUsage: includeUsage))
            case .finished(let c):
                try await send(chunk(delta: [:], text: "", finish: Self.finishReason(c), usage: nil, includeUsage: includeUsage))
                if includeUsage { try await send(chunk(delta: nil, text: nil, finish: nil, usage: usage(c), includeUsage: true)) }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
                return
            case .failed(let message):
                try await send(OpenAIError(status: .internalServerError, message: message, type: "server_error").json)
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
                return
            }
        }
        try await writer.finish(nil)
    }
}

/// Turns errors into OpenAI error bodies (404 for unknown routes included) and logs one line per request.
struct OpenAIMiddleware<Context: RequestContext>: RouterMiddleware {
    let log: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let response: Response
        do {
            response = try await next(request, context)
        } catch let e as OpenAIError {
            response = e.response
        } catch let e as HTTPResponseError where e.status == .notFound {
            response = OpenAIError(status: .notFound, message: "Unknown request URL: \(request.method) \(request.uri.path). "
                                   + "Please check the URL for typos.", code: "unknown_url").response
        } catch let e as HTTPResponseError {
            response = OpenAIError(status: e.status, message: e.status.reasonPhrase, type: e.status.code >= 500 ? "server_error" : "invalid_request_error").response
        } catch is CancellationError {
            response = OpenAIError(status: .init(code: 499, reasonPhrase: "Client Closed Request"), message: "request cancelled").response
        } catch {
            response = OpenAIError(status: .internalServerError, message: String(describing: error), type: "server_error").response
        }
        if log {
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            let line = "\(ISO8601DateFormatter().string(from: Date())) \(request.method) \(request.uri.path) "
                + "\(response.status.code) \(String(format: "%.1f", ms)) ms\n"
            FileHandle.standardError.write(Data(line.utf8))
        }
        return response
    }
}
