import Foundation
import Hummingbird

/// An error as the OpenAI API sends it: an HTTP status and `{"error": {"message", "type", "param", "code"}}`.
public struct OpenAIError: Error, CustomStringConvertible, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: HTTPResponse.Status, message: String, type: String = "invalid_request_error",
                param: String? = nil, code: String? = nil) {
        (self.status, self.message, self.type, self.param, self.code) = (status, message, type, param, code)
    }

    public var description: String { "\(status.code) \(message)" }

    /// A 400 `invalid_request_error` about `param`.
    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> OpenAIError {
        OpenAIError(status: .badRequest, message: message, param: param, code: code)
    }

    /// The JSON body.
    var json: [String: Any] {
        ["error": ["message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull()] as [String: Any]]
    }

    /// The HTTP response.
    var response: Response { jsonResponse(json, status: status) }
}

/// `object` serialised as a JSON response.
func jsonResponse(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"],
             body: ResponseBody(byteBuffer: ByteBuffer(bytes: jsonData(object))))
}

/// `object` as compact JSON bytes (slashes not escaped).
func jsonData(_ object: [String: Any]) -> Data {
    (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
}
