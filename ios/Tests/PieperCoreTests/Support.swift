import Foundation
@testable import PieperCore

/// The real pieper-server process on a free loopback port (PIEPER_SERVER_BIN,
/// or ../target/debug/pieper-server).
final class TestServer {
    static let password = "correct horse battery staple"
    let dataDir: URL
    let url: String
    private let process = Process()
    private let bin: String

    init() throws {
        bin = ProcessInfo.processInfo.environment["PIEPER_SERVER_BIN"] ?? "../target/debug/pieper-server"
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        _ = try admin(["create-practice", "--id", "linde", "--name", "Praktijk De Linde"])
        let out = Pipe()
        process.executableURL = URL(fileURLWithPath: bin)
        // As the Rust and Kotlin tests' server: a user may sign in on a second
        // device within one TOTP step (never set on a real server).
        process.arguments = ["--data-dir", dataDir.path, "--listen", "127.0.0.1:0", "--insecure-test-totp-reuse"]
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        var line = Data()
        while let byte = try out.fileHandleForReading.read(upToCount: 1), !byte.isEmpty, byte != Data("\n".utf8) {
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        url = "http://" + text.replacingOccurrences(of: "listening on ", with: "")
    }

    func admin(_ args: [String]) throws -> String {
        let p = Process()
        let out = Pipe()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["--data-dir", dataDir.path, "admin"] + args
        p.environment = ["PIEPER_NEW_PASSWORD": Self.password]
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Creates a user; returns its base32 TOTP secret.
    func createPractice(_ id: String, name: String) throws {
        _ = try admin(["create-practice", "--id", id, "--name", name])
    }

    func createUser(_ username: String, role: String, practice: String = "linde") throws -> String {
        let json = try admin([
            "create-user", "--practice", practice, "--username", username,
            "--display-name", username, "--role", role, "--json",
        ])
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        guard let secret = object?["totp_secret"] as? String else { throw TestError.noSecret }
        return secret
    }

    func stop() {
        process.terminate()
        try? FileManager.default.removeItem(at: dataDir)
    }

    enum TestError: Error { case noSecret }
}

/// A keystore for the tests: it keeps keys in memory and hands out random
/// references, as a Keychain item reference would be.
final class MemoryKeyStore: KeyStore, @unchecked Sendable {
    private var items: [Data: Data] = [:]
    private let lock = NSLock()

    func wrapKey(key: Data) throws -> Data {
        let reference = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
        lock.lock(); defer { lock.unlock() }
        items[reference] = key
        return reference
    }

    func unwrapKey(wrapped: Data) throws -> Data {
        lock.lock(); defer { lock.unlock() }
        guard let key = items[wrapped] else { throw KeyStoreError.CannotUnwrap }
        return key
    }
}

/// RFC 6238 TOTP (HMAC-SHA-1, 6 digits, 30 s), portable (no CryptoKit on Linux).
enum Totp {
    static func now(_ secret: String) -> String { at(secret, step: UInt64(Date().timeIntervalSince1970) / 30) }

    static func at(_ secret: String, step: UInt64) -> String {
        let counter = (0..<8).reversed().map { UInt8((step >> (UInt64($0) * 8)) & 0xff) }
        let hash = hmacSHA1(key: base32(secret), message: counter)
        let offset = Int(hash[19] & 0x0f)
        let binary = (UInt32(hash[offset] & 0x7f) << 24) | (UInt32(hash[offset + 1]) << 16)
            | (UInt32(hash[offset + 2]) << 8) | UInt32(hash[offset + 3])
        return String(format: "%06d", binary % 1_000_000)
    }

    private static func base32(_ text: String) -> [UInt8] {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var buffer = 0, bits = 0
        var out: [UInt8] = []
        for c in text where c != "=" {
            guard let v = alphabet.firstIndex(of: c) else { continue }
            buffer = (buffer << 5) | v
            bits += 5
            if bits >= 8 {
                out.append(UInt8((buffer >> (bits - 8)) & 0xff))
                bits -= 8
            }
        }
        return out
    }

    private static func hmacSHA1(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var k = key.count > 64 ? sha1(key) : key
        k += [UInt8](repeating: 0, count: 64 - k.count)
        let inner = sha1(k.map { $0 ^ 0x36 } + message)
        return sha1(k.map { $0 ^ 0x5c } + inner)
    }

    private static func sha1(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
        var data = message + [0x80]
        while data.count % 64 != 56 { data.append(0) }
        let bitLength = UInt64(message.count) * 8
        data += (0..<8).reversed().map { UInt8((bitLength >> (UInt64($0) * 8)) & 0xff) }
        for chunk in stride(from: 0, to: data.count, by: 64) {
            var w = (0..<16).map { i -> UInt32 in
                let j = chunk + i * 4
                return (UInt32(data[j]) << 24) | (UInt32(data[j + 1]) << 16) | (UInt32(data[j + 2]) << 8) | UInt32(data[j + 3])
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w.append((x << 1) | (x >> 31))
            }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let (f, k): (UInt32, UInt32) =
                    i < 20 ? ((b & c) | (~b & d), 0x5A827999)
                    : i < 40 ? (b ^ c ^ d, 0x6ED9EBA1)
                    : i < 60 ? ((b & c) | (b & d) | (c & d), 0x8F1BBCDC)
                    : (b ^ c ^ d, 0xCA62C1D6)
                let t = ((a << 5) | (a >> 27)) &+ f &+ e &+ k &+ w[i]
                (e, d, c, b, a) = (d, c, (b << 30) | (b >> 2), a, t)
            }
            h = [h[0] &+ a, h[1] &+ b, h[2] &+ c, h[3] &+ d, h[4] &+ e]
        }
        return h.flatMap { v in (0..<4).reversed().map { UInt8((v >> (UInt32($0) * 8)) & 0xff) } }
    }
}
