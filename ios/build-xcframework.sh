#!/usr/bin/env bash
# On macOS with Xcode: builds the core for iOS devices and simulators and
# packs it with the generated header into PieperCoreFFI.xcframework, and
# generates PieperCore.swift and PieperCoreModel.swift (the core's records). Apps add the XCFramework and this package.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "${targets[@]}"
for t in "${targets[@]}"; do
  cargo build --locked --release -p pieper-bindings --target "$t"
done
cargo build --locked -p pieper-bindings
cargo run --locked -q -p uniffi-bindgen -- generate \
  --library target/debug/libpieper_ffi.dylib --language swift --out-dir target/uniffi-swift
headers=target/uniffi-swift/headers
rm -rf "$headers" && mkdir -p "$headers"
# The bindings' and the core's headers, one module map declaring both.
cp target/uniffi-swift/*.h "$headers/"
cat target/uniffi-swift/*.modulemap > "$headers/module.modulemap"
mkdir -p target/ios-sim
lipo -create target/aarch64-apple-ios-sim/release/libpieper_ffi.a \
  target/x86_64-apple-ios/release/libpieper_ffi.a -output target/ios-sim/libpieper_ffi.a
rm -rf ios/PieperCoreFFI.xcframework
xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libpieper_ffi.a -headers "$headers" \
  -library target/ios-sim/libpieper_ffi.a -headers "$headers" \
  -output ios/PieperCoreFFI.xcframework
cp target/uniffi-swift/*.swift ios/Sources/PieperCore/
echo "built ios/PieperCoreFFI.xcframework"
