import Foundation

/// Continuous batching: many generation requests share one model, decoding together.
///
/// The scheduler owns `parallel` slots, each with its own KV cache of `contextLength` positions. A worker thread
/// loops:
///
///     1. admit queued requests into free slots (between steps, so new requests join a running batch);
///        a request whose prompt starts with a slot's cached tokens (a chat follow-up) takes that slot and
///        prefills only the rest (prompt-prefix reuse)
///     2. one decode step over every active sequence: ``DecoderModel/decodeStep(_:caches:)``, one forward pass,
///        weights read once for all of them
///     3. sample each sequence's next token, stream its text, finish those that hit a stop token, a stop string,
///        their token limit or a full cache, or were cancelled; their slots are free for the next step
///
/// Everything a request produces arrives through its `onEvent` callback, called on the worker thread (keep it short:
/// hand the text to another task). ``Ticket/cancel()`` (a client that disconnected) ends a request at the next step
/// and frees its slot. It needs no HTTP: ``TransformerServer`` puts an OpenAI-compatible API in front of it.
public final class BatchScheduler: @unchecked Sendable {
    /// Sizes of the scheduler.
    public struct Configuration: Sendable {
        /// Sequences decoded together (slots).
        public var parallel: Int
        /// KV-cache positions per slot (prompt + reply).
        public var contextLength: Int
        /// Requests that may wait for a slot; more are refused with ``SchedulerError/queueFull(limit:)``.
        public var maxQueued: Int

        public init(parallel: Int = 4, contextLength: Int = 2048, maxQueued: Int = 64) {
            (self.parallel, self.contextLength, self.maxQueued) = (parallel, contextLength, maxQueued)
        }
    }

    /// What a request produces, in order: text pieces, then one ``Event/finished(_:)``.
    public enum Event: Sendable {
        /// Emitted text (never part of a stop string).
        case text(String)
        /// The request ended (after its last text).
        case finished(Completion)
        /// The request failed (the model threw); nothing follows.
        case failed(String)
    }

    /// The outcome of one request.
    public struct Completion: Sendable {
        public var text: String
        /// Every sampled token (a final stop token included).
        public var tokens: [Int]
        public var finishReason: FinishReason
        public var promptTokens: Int
        /// Prompt tokens found in the slot's cache (not recomputed).
        public var cachedPromptTokens: Int
        /// Seconds from submission to the first token (nil if none was produced).
        public var timeToFirstToken: Double?
        /// Seconds from submission to the end.
        public var totalSeconds: Double
    }

    /// Why a request was refused.
    public enum SchedulerError: Error, CustomStringConvertible, Equatable {
        case queueFull(limit: Int)
        case promptTooLong(tokens: Int, context: Int)
        case emptyPrompt
        case notRunning

        public var description: String {
            switch self {
            case .queueFull(let limit): return "the server is busy: \(limit) requests are already waiting"
            case .promptTooLong(let tokens, let context):
                return "the prompt has \(tokens) tokens; the context holds \(context) (prompt and reply together)"
            case .emptyPrompt: return "the prompt is empty"
            case .notRunning: return "the scheduler is shut down"
            }
        }
    }

    /// A submitted request; ``cancel()`` ends it (if it is still running) and frees its slot.
    public final class Ticket: @unchecked Sendable {
        fileprivate weak var scheduler: BatchScheduler?
        fileprivate let id: Int
        fileprivate init(scheduler: BatchScheduler, id: Int) { (self.scheduler, self.id) = (scheduler, id) }
        /// Stops the request: a queued one is dropped at once, a running one before the next step. It ends with
        /// ``FinishReason/cancelled``.
        public func cancel() { scheduler?.cancel(id) }
    }

    public let generator: TextGenerator
    public let configuration: Configuration

    private final class Request {
        let id: Int
        let prompt: [Int]
        let options: TextGenerationOptions
        let onEvent: @Sendable (Event) -> Void
        let submitted = DispatchTime.now().uptimeNanoseconds
        var cancelled = false
        init(id: Int, prompt: [Int], options: TextGenerationOptions, onEvent: @escaping @Sendable (Event) -> Void) {
            (self.id, self.prompt, self.options, self.onEvent) = (id, prompt, options, onEvent)
        }
    }

    private final class Slot {
        let cache: KVCache
        /// Tokens whose keys/values are in `cache`.
        var tokens: [Int] = []
        var lastUsed = 0
        var sequence: Sequence?
        init(cache: KVCache) { self.cache = cache }
    }

    private struct Sequence {
        let request: Request
        var stream: TextStream
        var sampler: Sampler
        var generated: [Int] = []
        /// Sampled, not yet run through the model.
        var pending = 0
        var cachedPromptTokens = 0
        var firstToken: UInt64?
    }

    private let lock = NSCondition()
    private var queue: [Request] = []
    private var slots: [Slot]
    private var running = false
    private var stopping = false
    private var nextId = 0
    private var clock = 0
    private var worker: Thread?
    /// Decode steps run so far and the sequences they advanced (for benchmarks).
    public private(set) var steps = 0, stepTokens = 0

    /// Allocates `parallel` caches of `contextLength` positions (capped at the model's `maxPositions`).
    public init(generator: TextGenerator, configuration: Configuration) throws {
        guard configuration.parallel >= 1 else { throw ModelError.invalidConfig("parallel must be ≥ 1, got \(configuration.parallel)") }
        guard configuration.contextLength >= 2 else { throw ModelError.invalidConfig("context must be ≥ 2, got \(configuration.contextLength)") }
        guard configuration.maxQueued >= 0 else { throw ModelError.invalidConfig("queue size must be ≥ 0") }
        self.generator = generator
        var c = configuration
        c.contextLength = min(c.contextLength, generator.model.maxPositions)
        self.configuration = c
        slots = (0..<c.parallel).map { _ in Slot(cache: generator.model.makeCache(capacity: c.contextLength)) }
    }

    deinit { shutdown() }

    /// Starts the worker thread (idempotent).
    public func start() {
        lock.lock()
        defer { lock.unlock() }
        guard !running else { return }
        running = true
        stopping = false
        let t = Thread { [unowned self] in self.loop() }
        t.name = "BatchScheduler"
        t.stackSize = 8 << 20
        worker = t
        t.start()
    }

    /// Cancels everything queued or running and stops the worker thread (returns once it has stopped).
    public func shutdown() {
        lock.lock()
        guard running else { lock.unlock(); return }
        stopping = true
        let waiting = queue
        queue.removeAll()
        lock.broadcast()
        while running { lock.wait() }
        lock.unlock()
        for r in waiting { r.onEvent(.finished(Self.cancelledCompletion(r))) }
    }

    /// Requests waiting for a slot and sequences decoding now.
    public var load: (queued: Int, active: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (queue.count, slots.filter { $0.sequence != nil }.count)
    }

    /// Queues a generation after `prompt`; `onEvent` receives its text and its end (on the worker thread).
    ///
    /// `options.maxNewTokens` is capped by the room left in the context.
    /// - Throws: ``SchedulerError``: an empty prompt, one that leaves no room in the context, a full queue, a
    ///   scheduler not started.
    @discardableResult
    public func submit(prompt: [Int], options: TextGenerationOptions,
                       onEvent: @escaping @Sendable (Event) -> Void) throws -> Ticket {
        guard !prompt.isEmpty else { throw SchedulerError.emptyPrompt }
        guard prompt.count < configuration.contextLength else {
            throw SchedulerError.promptTooLong(tokens: prompt.count, context: configuration.contextLength)
        }
        lock.lock()
        defer { lock.unlock() }
        guard running, !stopping else { throw SchedulerError.notRunning }
        let free = slots.filter { $0.sequence == nil }.count
        guard queue.count < configuration.maxQueued + free else { throw SchedulerError.queueFull(limit: configuration.maxQueued) }
        nextId += 1
        queue.append(Request(id: nextId, prompt: prompt, options: options, onEvent: onEvent))
        lock.broadcast()
        return Ticket(scheduler: self, id: nextId)
    }

    private func cancel(_ id: Int) {
        lock.lock()
        if let i = queue.firstIndex(where: { $0.id == id }) {
            let r = queue.remove(at: i)
            lock.unlock()
            r.onEvent(.finished(Self.cancelledCompletion(r)))
            return
        }
        for s in slots where s.sequence?.request.id == id { s.sequence?.request.cancelled = true }
        lock.unlock()
    }

    private static func cancelledCompletion(_ r: Request) -> Completion {
        Completion(text: "", tokens: [], finishReason: .cancelled, promptTokens: r.prompt.count, cachedPromptTokens: 0,
                   timeToFirstToken: nil, totalSeconds: seconds(since: r.submitted))
    }

    private static func seconds(since t: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t) * 1e-9 }

    // MARK: - The worker

    private func loop() {
        while true {
            lock.lock()
            while !stopping && queue.isEmpty && !slots.contains(where: { $0.sequence != nil }) { lock.wait() }
            if stopping {
                let active = slots.compactMap { $0.sequence }
                for s in slots { s.sequence = nil }
                running = false
                lock.broadcast()
                lock.unlock()
                for var s in active { finish(&s, .cancelled, slot: nil) }
                return
            }
            // Admit queued requests into free slots; the slot with the longest cached prefix of the prompt wins.
            var admitted: [Slot] = []
            while !queue.isEmpty, slots.contains(where: { $0.sequence == nil }) {
                let r = queue.removeFirst()
                let free = slots.filter { $0.sequence == nil }
                let best = free.max { a, b in
                    let (pa, pb) = (Self.commonPrefix(a.tokens, r.prompt), Self.commonPrefix(b.tokens, r.prompt))
                    return pa != pb ? pa < pb : a.lastUsed > b.lastUsed
                }!
                clock += 1
                best.lastUsed = clock
                var options = r.options
                options.maxNewTokens = max(1, min(options.maxNewTokens, configuration.contextLength - r.prompt.count + 1))
                best.sequence = Sequence(request: r, stream: TextStream(tokenizer: generator.tokenizer,
                                                                         stopTokens: generator.stopTokens, options: options),
                                         sampler: options.sampler)
                admitted.append(best)
            }
            lock.unlock()

            for slot in admitted { prefill(slot) }
            step()
        }
    }

    private func isCancelled(_ r: Request) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return r.cancelled
    }

    private static func commonPrefix(_ a: [Int], _ b: [Int]) -> Int {
        var n = 0
        let limit = min(a.count, b.count)
        while n < limit && a[n] == b[n] { n += 1 }
        return n
    }

    /// Runs a newly admitted request's prompt (the part its slot has not cached) and samples its first token.
    private func prefill(_ slot: Slot) {
        guard var s = slot.sequence else { return }
        let prompt = s.request.prompt
        let shared = min(Self.commonPrefix(slot.tokens, prompt), prompt.count - 1)
        slot.cache.truncate(to: min(shared, slot.cache.length))
        slot.tokens = Array(slot.tokens.prefix(slot.cache.length))
        s.cachedPromptTokens = slot.cache.length
        do {
            let rest = Array(prompt[slot.cache.length...])
            let logits = try generator.model.lastLogits(rest, cache: slot.cache)
            slot.tokens += rest
            sample(&s, logits, row: 0)
        } catch {
            slot.cache.reset()
            slot.tokens = []
            lock.lock(); slot.sequence = nil; lock.unlock()
            s.request.onEvent(.failed(String(describing: error)))
            return
        }
        settle(&s, slot: slot)
    }

    /// One decode step over every active sequence.
    private func step() {
        lock.lock()
        var active = slots.filter { $0.sequence != nil }
        let cancelled = active.filter { $0.sequence!.request.cancelled }  // read under the lock cancel() writes under
        lock.unlock()
        for slot in cancelled {
            var s = slot.sequence!
            finish(&s, .cancelled, slot: slot)
        }
        active.removeAll { $0.sequence == nil }
        guard !active.isEmpty else { return }
        let tokens = active.map { $0.sequence!.pending }
        do {
            let logits: Tensor
            if let decoder = generator.model as? DecoderModel {
                logits = try decoder.decodeStep(tokens, caches: active.map(\.cache))
            } else {
                logits = Tensor.concatenate(try zip(tokens, active).map { t, slot in
                    try generator.model.lastLogits([t], cache: slot.cache).reshaped([1, -1])
                }, axis: 0)
            }
            steps += 1
            stepTokens += active.count
            for (i, slot) in active.enumerated() {
                var s = slot.sequence!
                slot.tokens.append(s.pending)
                sample(&s, logits, row: i)
                settle(&s, slot: slot)
            }
        } catch {
            for slot in active {
                let s = slot.sequence!
                slot.cache.reset()
                slot.tokens = []
                lock.lock(); slot.sequence = nil; lock.unlock()
                s.request.onEvent(.failed(String(describing: error)))
            }
        }
    }

    /// Samples the next token of `s` from row `row` of `logits` and streams its text.
    private func sample(_ s: inout Sequence, _ logits: Tensor, row: Int) {
        let vocab = logits.shape[logits.rank - 1]
        let token = logits.withUnsafeBufferPointer { all -> Int in
            let r = UnsafeBufferPointer(rebasing: all[(row * vocab)..<((row + 1) * vocab)])
            guard s.sampler.hasPenalties else { return s.sampler.next(r) }
            let recent = Array((s.request.prompt + s.generated).suffix(s.request.options.penaltyWindow))
            return s.sampler.next(r, recent: recent, generated: s.generated)
        }
        if s.firstToken == nil { s.firstToken = DispatchTime.now().uptimeNanoseconds }
        s.generated.append(token)
        s.pending = token
        let (text, _) = s.stream.accept(token)
        if !text.isEmpty { s.request.onEvent(.text(text)) }
    }

    /// Stores `s` back in its slot, or finishes it if its stream ended, it was cancelled or its cache is full.
    private func settle(_ s: inout Sequence, slot: Slot) {
        if let reason = s.stream.finishReason {
            finish(&s, reason, slot: slot)
        } else if isCancelled(s.request) {
            finish(&s, .cancelled, slot: slot)
        } else if slot.cache.remaining == 0 {
            finish(&s, .length, slot: slot)
        } else {
            lock.lock(); slot.sequence = s; lock.unlock()
        }
    }

    private func finish(_ s: inout Sequence, _ reason: FinishReason, slot: Slot?) {
        let tail = s.stream.finish(reason)
        if !tail.isEmpty { s.request.onEvent(.text(tail)) }
        if let slot { lock.lock(); slot.sequence = nil; lock.unlock() }
        let r = s.request
        s.request.onEvent(.finished(Completion(
            text: s.stream.text, tokens: s.generated, finishReason: s.stream.finishReason ?? reason,
            promptTokens: r.prompt.count, cachedPromptTokens: s.cachedPromptTokens,
            timeToFirstToken: s.firstToken.map { Double($0 - r.submitted) * 1e-9 }, totalSeconds: Self.seconds(since: r.submitted))))
    }
}
