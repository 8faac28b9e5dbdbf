/// Stop strings for streamed text: generation ends where one of them appears, and it is never emitted, even when it
/// arrives split across several tokens.
///
/// Text is fed piece by piece (as a ``StreamingDecoder`` produces it). Every piece is released at once except a
/// tail that could still grow into a stop string (the longest suffix of the pending text that is a prefix of some
/// stop string); that tail is released when a later piece shows it is not one, or by ``finish()``. On a match, the
/// text before the stop string is released and the matcher reports that it stopped; anything after is dropped.
///
///     var m = StopStringMatcher(["\n\n", "User:"])
///     m.append("Hello Us")   // → "Hello "   ("Us" is held back)
///     m.append("er: hi")     // → ""         (stopped; "User:" and the rest are never emitted)
public struct StopStringMatcher: Sendable {
    /// The stop strings (empty strings are ignored).
    public let stops: [String]
    /// Whether a stop string has been seen; everything after it is dropped.
    public private(set) var stopped = false
    /// Which stop string matched.
    public private(set) var matched: String?
    private var pending = ""

    public init(_ stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }
    }

    /// Adds `piece`; returns the text that is now safe to emit.
    public mutating func append(_ piece: String) -> String {
        guard !stopped else { return "" }
        guard !stops.isEmpty else { return piece }
        pending += piece
        // The earliest occurrence of any stop string wins.
        var first: (range: Range<String.Index>, stop: String)?
        for s in stops {
            if let r = pending.range(of: s), first.map({ r.lowerBound < $0.range.lowerBound }) ?? true { first = (r, s) }
        }
        if let first {
            stopped = true
            matched = first.stop
            let out = String(pending[..<first.range.lowerBound])
            pending = ""
            return out
        }
        // Hold back the longest suffix that is a proper prefix of a stop string.
        var hold = 0
        for s in stops {
            let maxLength = min(s.count - 1, pending.count)
            var k = maxLength
            while k > hold {
                if pending.hasSuffix(s.prefix(k)) { hold = k; break }
                k -= 1
            }
        }
        let cut = pending.index(pending.endIndex, offsetBy: -hold)
        let out = String(pending[..<cut])
        pending = String(pending[cut...])
        return out
    }

    /// Releases the held-back tail at the end of generation (nothing once stopped).
    public mutating func finish() -> String {
        defer { pending = "" }
        return stopped ? "" : pending
    }
}
