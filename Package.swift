// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "swift-transformer-engine",
    products: [
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Transformer", targets: ["Transformer"]),
        .executable(name: "transformer-cli", targets: ["transformer-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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
        .executableTarget(
            name: "transformer-cli",
            dependencies: [
                "Transformer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "TensorTests", dependencies: ["Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TransformerTests", dependencies: ["Transformer"], resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
