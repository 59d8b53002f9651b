package nl.pieper.core

import nl.pieper.core.model.*

import java.io.File
import java.nio.file.Files
import java.security.SecureRandom
import javax.crypto.Cipher
import javax.crypto.Mac
import javax.crypto.spec.GCMParameterSpec
import javax.crypto.spec.SecretKeySpec

/** The real pieper-server process on a free loopback port, for the tests. */
class TestServer : AutoCloseable {
    val dataDir: File = Files.createTempDirectory("pieper-kotlin-server").toFile()
    private val bin = System.getProperty("pieper.server.bin")
        ?: error("system property pieper.server.bin is not set")
    private val process: Process
    val url: String

    init {
        admin("create-practice", "--id", "linde", "--name", "Praktijk De Linde")
        process = ProcessBuilder(
            bin, "--data-dir", dataDir.path, "--listen", "127.0.0.1:0",
            // As the Rust tests' server: a user may sign in on a second
            // device within one TOTP step (never set on a real server).
            "--insecure-test-totp-reuse",
        )
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start()
        val first = process.inputStream.bufferedReader().readLine()
            ?: error("the server printed nothing")
        url = "http://" + first.removePrefix("listening on ").trim()
    }

    fun admin(vararg args: String): String {
        val p = ProcessBuilder(listOf(bin, "--data-dir", dataDir.path, "admin") + args)
            .apply { environment()["PIEPER_NEW_PASSWORD"] = PASSWORD }
            .redirectError(ProcessBuilder.Redirect.INHERIT)
            .start()
        val out = p.inputStream.bufferedReader().readText()
        check(p.waitFor() == 0) { "admin ${args.toList()} failed" }
        return out
    }

    /** Creates a user; returns its base32 TOTP secret. */
    fun createUser(username: String, role: String, practice: String = "linde"): String {
        val json = admin(
            "create-user", "--practice", practice, "--username", username,
            "--display-name", username, "--role", role, "--json",
        )
        return Regex("\"totp_secret\":\"([A-Z2-7]+)\"").find(json)?.groupValues?.get(1)
            ?: error("no TOTP secret in $json")
    }

    fun createPractice(id: String, name: String) {
        admin("create-practice", "--id", id, "--name", name)
    }

    override fun close() {
        process.destroyForcibly().waitFor()
        dataDir.deleteRecursively()
    }

    companion object {
        const val PASSWORD = "correct horse battery staple"
    }
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s), as an authenticator app computes it. */
object Totp {
    fun now(secret: String): String = at(secret, System.currentTimeMillis() / 1000 / 30)

    fun at(secret: String, step: Long): String {
        val mac = Mac.getInstance("HmacSHA1").apply { init(SecretKeySpec(base32(secret), "HmacSHA1")) }
        val hash = mac.doFinal(java.nio.ByteBuffer.allocate(8).putLong(step).array())
        val offset = hash.last().toInt() and 0x0f
        val binary = ((hash[offset].toInt() and 0x7f) shl 24) or
            ((hash[offset + 1].toInt() and 0xff) shl 16) or
            ((hash[offset + 2].toInt() and 0xff) shl 8) or
            (hash[offset + 3].toInt() and 0xff)
        return "%06d".format(binary % 1_000_000)
    }

    private fun base32(text: String): ByteArray {
        val alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        var buffer = 0
        var bits = 0
        val out = java.io.ByteArrayOutputStream()
        for (c in text.trimEnd('=')) {
            buffer = (buffer shl 5) or alphabet.indexOf(c)
            bits += 5
            if (bits >= 8) {
                out.write((buffer shr (bits - 8)) and 0xff)
                bits -= 8
            }
        }
        return out.toByteArray()
    }
}

/**
 * A keystore for the JVM tests: AES-GCM with a key held in memory. On
 * Android the app wraps with an Android Keystore key instead (see README).
 */
class InMemoryKeyStore : KeyStore {
    private val key = SecretKeySpec(ByteArray(32).also { SecureRandom().nextBytes(it) }, "AES")

    override fun wrapKey(key: ByteArray): ByteArray {
        val iv = ByteArray(12).also { SecureRandom().nextBytes(it) }
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.ENCRYPT_MODE, this.key, GCMParameterSpec(128, iv))
        return iv + cipher.doFinal(key)
    }

    override fun unwrapKey(wrapped: ByteArray): ByteArray {
        if (wrapped.size < 12 + 16) throw KeyStoreException.CannotUnwrap()
        val cipher = Cipher.getInstance("AES/GCM/NoPadding")
        cipher.init(Cipher.DECRYPT_MODE, key, GCMParameterSpec(128, wrapped.copyOfRange(0, 12)))
        return try {
            cipher.doFinal(wrapped.copyOfRange(12, wrapped.size))
        } catch (e: javax.crypto.AEADBadTagException) {
            throw KeyStoreException.CannotUnwrap()
        }
    }
}
