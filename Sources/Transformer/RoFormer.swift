/// RoFormer (placeholder).
public final class RoFormerForSequenceClassification: @unchecked Sendable {
    public static func build(config c: ModelConfig, weights w: Weights) throws -> RoFormerForSequenceClassification {
        throw ModelError.unsupportedModelType("roformer")
    }
}
