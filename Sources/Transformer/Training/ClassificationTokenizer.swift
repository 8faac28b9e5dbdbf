import Foundation

/// What classification needs from a tokenizer: `[CLS] pieces [SEP]` for one text, at most `maxLength` ids, truncated
/// as HF truncates a single sequence (the first `maxLength − 2` pieces are kept).
///
/// The trainer's word-level vocabulary (``WordLevelTokenizer``, what `transformer-cli train` writes) and BERT's
/// WordPiece (``WordPieceTokenizer``, what HF BERT classifiers ship) both provide it.
public protocol ClassificationTokenizer: Sendable {
    func encode(_ text: String, maxLength: Int) -> [Int]
}

extension WordLevelTokenizer: ClassificationTokenizer {}

extension WordPieceTokenizer: ClassificationTokenizer {
    public func encode(_ text: String, maxLength: Int) -> [Int] {
        let pieces = encode(text, addSpecialTokens: false)
        return addingSpecialTokens(Array(pieces.prefix(max(0, maxLength - prefixIds.count - suffixIds.count))))
    }
}

/// Reads a classifier folder's tokenizer.
public enum ClassificationTokenizers {
    /// The `tokenizer.json` in `directory` — a `WordLevel` model (``WordLevelTokenizer/load(directory:)``) or a
    /// `WordPiece` one — with `model_max_length` from `tokenizer_config.json` (nil when absent or one of HF's
    /// "no limit" sentinels).
    public static func load(directory: URL) throws -> (tokenizer: any ClassificationTokenizer, maxLength: Int?) {
        let url = directory.appendingPathComponent("tokenizer.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TrainingError.invalidCheckpoint("cannot read \(url.path) as a JSON object")
        }
        switch (json["model"] as? [String: Any])?["type"] as? String {
        case "WordLevel":
            let (tokenizer, maxLength) = try WordLevelTokenizer.load(directory: directory)
            return (tokenizer, maxLength)
        case "WordPiece":
            let tokenizer: WordPieceTokenizer
            do { tokenizer = try WordPieceTokenizer(tokenizerJSONData: data) } catch {
                throw TrainingError.invalidCheckpoint("\(url.path): \(error)")
            }
            var maxLength: Int?
            if let c = FileManager.default.contents(atPath: directory.appendingPathComponent("tokenizer_config.json").path),
               let config = (try? JSONSerialization.jsonObject(with: c)) as? [String: Any],
               let m = (config["model_max_length"] as? NSNumber)?.doubleValue, m >= 3, m < 1e9 {
                maxLength = Int(m)
            }
            return (tokenizer, maxLength)
        case let other:
            throw TrainingError.invalidCheckpoint("\(url.path): tokenizer model \(other ?? "missing") is not supported "
                                                  + "for classification (WordLevel, WordPiece)")
        }
    }
}
