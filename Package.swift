// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-transformer-engine",
    products: [
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Transformer", targets: ["Transformer"]),
        .library(name: "TransformerServer", targets: ["TransformerServer"]),
        .executable(name: "transformer-cli", targets: ["transformer-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.21.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        .target(name: "CKernels"),
        .target(name: "Tensor", dependencies: ["CBLAS", "CKernels"]),
        .target(name: "Transformer", dependencies: ["Tensor"]),
        // The OpenAI-compatible HTTP server: its own target, so `import Transformer` pulls in no HTTP stack.
        .target(
            name: "TransformerServer",
            dependencies: [
                "Transformer",
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .executableTarget(
            name: "transformer-cli",
            dependencies: [
                "Transformer",
                "TransformerServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer"], resources: [.copy("Fixtures")]),
        .testTarget(
            name: "TransformerServerTests",
            dependencies: [
                "Transformer",
                "TransformerServer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
    ],
    swiftLanguageModes: [.v5]
)
