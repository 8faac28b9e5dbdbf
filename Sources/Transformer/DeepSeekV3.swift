/// DeepSeek-V3 (placeholder until MLA lands).
public enum DeepSeekV3 {
    public static func build(config c: ModelConfig, weights w: Weights) throws -> DecoderModel {
        throw ModelError.unsupportedModelType("deepseek_v3")
    }
}
