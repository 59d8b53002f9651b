// swift-tools-version:5.9
// Pieper's core for Swift. `scripts/test-swift` (or `ios/build-xcframework.sh`
// on macOS) generates Sources/PieperCore/PieperCore.swift (the bindings),
// Sources/PieperCore/PieperCoreModel.swift (the core's records and enums) and
// the C modules in Sources/PieperCoreFFI from the built library; they are
// build output.
import PackageDescription

let package = Package(
    name: "PieperCore",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "PieperCore", targets: ["PieperCore"]),
    ],
    targets: [
        // The C header and module map uniffi generates.
        .target(name: "PieperCoreFFI", path: "Sources/PieperCoreFFI"),
        .target(
            name: "PieperCore",
            dependencies: ["PieperCoreFFI"],
            path: "Sources/PieperCore",
            linkerSettings: [
                // For `swift test` on a development machine: the library built
                // by cargo. Apps link the XCFramework instead.
                .unsafeFlags(["-L../target/debug"]),
                .linkedLibrary("pieper_ffi"),
                // SQLCipher's crypto on Apple platforms is CommonCrypto.
                .linkedFramework("Security"),
                .linkedFramework("CoreFoundation"),
            ]
        ),
        .testTarget(name: "PieperCoreTests", dependencies: ["PieperCore"], path: "Tests/PieperCoreTests"),
    ]
)
