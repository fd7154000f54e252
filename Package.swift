// swift-tools-version:6.0
import PackageDescription

/// The decoders are single-threaded state machines; runtime exclusivity checks cost about a tenth
/// of the time on small-message captures (docs/performance.md), so release builds leave them out.
let speed: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "wstap",
    products: [
        .library(name: "WSTap", targets: ["WSTap", "WSTapParallel", "WSTapOutput", "WSTapLive"]),
        .executable(name: "wstap", targets: ["wstap"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "WSTapCore", swiftSettings: speed),
        .target(name: "WSTapCapture", dependencies: ["WSTapCore", "CPcap", "CZlib"], swiftSettings: speed),
        .target(name: "WSTapPackets", dependencies: ["WSTapCore", "WSTapCapture"], swiftSettings: speed),
        .target(name: "WSTapTCP", dependencies: ["WSTapCore", "WSTapPackets"], swiftSettings: speed),
        .target(name: "WSTapHTTP", dependencies: ["WSTapCore"], swiftSettings: speed),
        .target(
            name: "WSTapWebSocket",
            dependencies: ["WSTapCore", "WSTapHTTP", "CZlib", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: speed
        ),
        .target(
            name: "WSTapTLS",
            dependencies: [
                "WSTapCore", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: speed
        ),
        .target(name: "WSTapApplication", dependencies: ["WSTapCore"], swiftSettings: speed),
        .target(
            name: "WSTapHTTP2",
            dependencies: [
                "WSTapCore", "WSTapHTTP", .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: speed
        ),
        .target(
            name: "WSTap",
            dependencies: [
                "WSTapCore", "WSTapCapture", "WSTapPackets", "WSTapTCP", "WSTapHTTP", "WSTapWebSocket", "WSTapTLS",
                "WSTapApplication", "WSTapHTTP2",
            ],
            swiftSettings: speed
        ),
        .target(
            name: "WSTapParallel", dependencies: ["WSTap", "WSTapCore", "WSTapCapture", "WSTapPackets", "WSTapTCP"],
            swiftSettings: speed),
        .target(name: "WSTapOutput", dependencies: ["WSTap", "WSTapParallel", "WSTapHTTP2", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: speed),
        .target(name: "WSTapLive", dependencies: ["WSTap", "WSTapCapture", "WSTapCore"], swiftSettings: speed),
        .executableTarget(
            name: "wstap",
            dependencies: ["WSTap", "WSTapParallel", "WSTapOutput", "WSTapLive", "WSTapCapture", "WSTapCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: speed
        ),
        .target(name: "TestSupport", dependencies: ["WSTapCore"], path: "Tests/TestSupport"),
        .testTarget(name: "WSTapCoreTests", dependencies: ["WSTapCore", "TestSupport"]),
        .testTarget(name: "WSTapCaptureTests", dependencies: ["WSTapCapture", "WSTapCore"]),
        .testTarget(name: "WSTapPacketsTests", dependencies: ["WSTapPackets", "WSTapCore"]),
        .testTarget(name: "WSTapTCPTests", dependencies: ["WSTapTCP", "WSTapPackets", "WSTapCore"]),
        .testTarget(name: "WSTapHTTPTests", dependencies: ["WSTapHTTP", "TestSupport"]),
        .testTarget(name: "WSTapWebSocketTests", dependencies: ["WSTapWebSocket", "WSTapHTTP", "TestSupport"]),
        .testTarget(name: "WSTapTLSTests", dependencies: ["WSTapTLS", "WSTapCore"]),
        .testTarget(name: "WSTapApplicationTests", dependencies: ["WSTapApplication", "WSTapCore"]),
        .testTarget(
            name: "WSTapTests",
            dependencies: ["WSTap", "WSTapHTTP2", "TestSupport", .product(name: "NIOHPACK", package: "swift-nio-http2"), .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "WSTapOutputTests", dependencies: ["WSTapOutput"]),
        .testTarget(
            name: "GoldenTests",
            dependencies: ["WSTap", "WSTapParallel", "WSTapOutput", "WSTapTLS", .product(name: "Crypto", package: "swift-crypto")]
        ),
    ]
)

// The libFuzzer targets (fuzz/run.py builds them with WSTAP_FUZZ=1 and `-sanitize=fuzzer,address`);
// ordinary builds leave them out, since libFuzzer provides their `main`.
if Context.environment["WSTAP_FUZZ"] != nil {
    package.targets.append(.executableTarget(
        name: "wstap-fuzz",
        dependencies: ["WSTap", "WSTapParallel", "WSTapOutput", "WSTapCore", "WSTapCapture", "WSTapPackets", "WSTapTCP", "WSTapHTTP", "WSTapWebSocket", "WSTapTLS", "WSTapApplication", "WSTapHTTP2"],
        path: "fuzz/Targets"))
}
