package nl.pieper.core

import nl.pieper.core.model.*

import java.nio.file.Files
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.assertThrows

/**
 * The full scenario from the app's side, against the real server process and
 * the real core: two users sign in with 2FA, one opens a patient-linked
 * conversation, both exchange messages, the other receives them as a Flow,
 * searches, and a wrong TOTP code is a typed exception.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ScenarioTest {
    private lateinit var server: TestServer
    private lateinit var huisartsSecret: String
    private lateinit var assistentSecret: String

    @BeforeAll
    fun start() {
        server = TestServer()
        huisartsSecret = server.createUser("jansen", "huisarts")
        assistentSecret = server.createUser("bakker", "assistent")
    }

    @AfterAll
    fun stop() = server.close()

    private fun dir() = Files.createTempDirectory("pieper-device").toString()

    private suspend fun signIn(username: String, secret: String, device: String): PieperClient =
        login(
            server.url, dir(), InMemoryKeyStore(),
            LoginCredentials("linde", username, TestServer.PASSWORD, Totp.now(secret), device),
        )

    @Test
    fun `two colleagues talk about a patient`() = runBlocking {
        val huisarts = signIn("jansen", huisartsSecret, "telefoon")
        val assistent = signIn("bakker", assistentSecret, "balie-tablet")

        val bakker = huisarts.colleagues().single { it.username == "bakker" }
        assertEquals("assistent", bakker.role)
        val conversation = huisarts.createConversation(
            "Mw. Smit — INR", ConversationKind.GROUP, "his:patient/48213", listOf(bakker.id),
        )
        assertEquals("his:patient/48213", conversation.patient)

        val live = assistent.startLive()
        try {
            val urgent = async {
                withTimeout(15_000) {
                    assistent.events().filterIsInstance<PieperEvent.UrgentMessage>().first()
                }
            }
            // Let the collector subscribe before the message goes out.
            delay(300)
            val sentId = huisarts.send(conversation.id, "Bel mw. Smit vandaag terug", true, MessageKind.OVERLEG)
            val received = urgent.await().message
            assertEquals(sentId, received.id)
            assertEquals("Bel mw. Smit vandaag terug", received.body)
            assertEquals(Priority.URGENT, received.priority)
            assertEquals(huisarts.userId(), received.senderUser)
        } finally {
            live.cancel()
            live.close()
        }

        assistent.send(conversation.id, "Teruggebeld, komt morgen", false, MessageKind.OVERLEG)
        huisarts.sync()
        val seen = huisarts.messages(conversation.id, 10u)
        assertEquals(listOf("Bel mw. Smit vandaag terug", "Teruggebeld, komt morgen"), seen.map { it.body })
        assertEquals(MessageState.SENT, seen[0].state)
        assertEquals(MessageState.RECEIVED, seen[1].state)

        val found = assistent.search("smit", 10u)
        assertEquals(1, found.size)
        assertTrue(assistent.conversations().any { it.title == "Mw. Smit — INR" })

        // Erasing a patient's chat takes a huisarts or the manager: the
        // assistent's app is refused before anything changes.
        val refused = assertThrows<PieperException.Refused> {
            runBlocking { assistent.erasePatient("his:patient/48213") }
        }
        assertEquals(Refusal.ROLE, refused.reason)
        assertEquals(2, assistent.messages(conversation.id, 10u).size)
        assertTrue(huisarts.refusals().isEmpty())
    }

    @Test
    fun `consent recorded at the front desk reaches the huisarts`() = runBlocking {
        // Its own practice, so its practice group starts empty.
        server.createPractice("eik", "Praktijk De Eik")
        val balieSecret = server.createUser("visser", "assistent", "eik")
        val artsSecret = server.createUser("mulder", "huisarts", "eik")
        fun eik(username: String, secret: String, device: String) = LoginCredentials(
            "eik", username, TestServer.PASSWORD, Totp.now(secret), device,
        )
        val balie = login(server.url, dir(), InMemoryKeyStore(), eik("visser", balieSecret, "balie"))
        val arts = login(server.url, dir(), InMemoryKeyStore(), eik("mulder", artsSecret, "telefoon"))

        val roster = "reference,name,birth_date,enrolled\n" +
            "his:1,Mw. A. Smit,1950-01-01,yes\n" +
            "his:2,Dhr. B. Bos,1960-01-01,yes\n"
        val changes = balie.importRoster(roster, RosterFormat.CSV, true)
        assertEquals(listOf("his:1", "his:2"), changes.added)
        balie.recordConsent(
            "his:1", ConsentKind.LSP_SHARING, ConsentStatus.GIVEN, ConsentMethod.PAPER_FORM,
            "formulier getekend", null,
        )
        val stranger = assertThrows<PieperException.NotFound> {
            runBlocking {
                balie.recordConsent(
                    "his:99", ConsentKind.LSP_SHARING, ConsentStatus.GIVEN,
                    ConsentMethod.IN_PERSON, null, null,
                )
            }
        }
        assertEquals("patient on the roster", stranger.what)

        arts.sync()
        assertEquals(ConsentStatus.GIVEN, arts.patientConsent("his:1").lspSharing)
        val history = arts.consentHistory("his:1")
        assertEquals("visser", balie.colleagues().single { it.id == history.single().recordedBy }.username)
        assertEquals("formulier getekend", history.single().note)
        val figures = arts.consentFigures(ConsentKind.LSP_SHARING)
        assertEquals(2u, figures.enrolled)
        assertEquals(1u, figures.given)
        assertEquals(0.5, figures.rate, 1e-9)
        assertTrue(!figures.meetsTarget)
        assertEquals(listOf("his:2"), arts.consentWorklist(ConsentKind.LSP_SHARING).map { it.reference })
        assertTrue(arts.consentWorklistCsv(ConsentKind.LSP_SHARING).contains("his:2,Dhr. B. Bos,1960-01-01"))
        assertTrue(arts.exportConsentFhir().contains("\"resourceType\": \"Consent\""))

        // The phone registers its FCM token; a token without its provider's
        // details is a typed exception.
        arts.registerPushToken(PushProvider.FCM, "fcm-registration-token", null)
        val bad = assertThrows<PieperException.Invalid> {
            runBlocking { arts.registerPushToken(PushProvider.APNS, "abc", null) }
        }
        assertEquals("apns_environment", bad.field)
    }

    @Test
    fun `tasks, work notes and the dashboard`() = runBlocking {
        server.createPractice("beuk", "Praktijk De Beuk")
        val artsSecret = server.createUser("kok", "huisarts", "beuk")
        val balieSecret = server.createUser("peters", "assistent", "beuk")
        fun beuk(username: String, secret: String, device: String) = LoginCredentials(
            "beuk", username, TestServer.PASSWORD, Totp.now(secret), device,
        )
        val arts = login(server.url, dir(), InMemoryKeyStore(), beuk("kok", artsSecret, "desktop"))
        val balie = login(server.url, dir(), InMemoryKeyStore(), beuk("peters", balieSecret, "balie"))

        assertEquals("bsn:999911120", patientFromLaunchLink("pieper://patient/bsn:999911120"))
        assertThrows<PieperException.Invalid> { patientFromLaunchLink("pieper://patient/bsn:123") }

        val peters = arts.colleagues().single { it.username == "peters" }
        val conversation = arts.createConversation(
            "Mw. Jansen", ConversationKind.GROUP, "bsn:999911120", listOf(peters.id),
        )
        arts.send(conversation.id, "Graag controle over 2 weken", true, MessageKind.DOCUMENTEER)
        arts.send(conversation.id, "NOTITIE twijfel therapietrouw", false, MessageKind.WERKAANTEKENING)
        val followUp = arts.requestFollowUp(conversation.id, "Controle plannen", false, "huisarts", "2026-12-11")
        assertEquals(Assignee.Role("assistent"), followUp.assignee)

        balie.sync()
        val mine = balie.myOpenTasks()
        assertEquals(listOf("Controle plannen"), mine.map { it.what })
        assertEquals("bsn:999911120", mine.single().patient)
        // The work note stays with its author.
        assertTrue(balie.messages(conversation.id, 10u).none { it.body.startsWith("NOTITIE") })
        assertEquals(MessageKind.DOCUMENTEER, balie.messages(conversation.id, 10u).single().kind)
        // The assistant's dashboard: the urgent message, the task, the unread conversation.
        val dashboard = balie.dashboard()
        assertEquals(listOf("Graag controle over 2 weken"), dashboard.urgent.map { it.body })
        assertEquals(listOf(followUp.id), dashboard.tasks.map { it.id })
        assertEquals("bsn:999911120", dashboard.unread.single().patient)
        // The author still has to document the message.
        assertEquals(listOf("Graag controle over 2 weken"), arts.toDocument().map { it.body })

        val done = balie.completeTask(followUp.id)
        assertEquals(TaskState.COMPLETED, done.state)
        arts.sync()
        assertEquals(TaskState.COMPLETED, arts.tasks(conversation.id).single().state)
    }

    @Test
    fun `receipts, a disappearing message and my own data`() = runBlocking {
        server.createPractice("iep", "Praktijk De Iep")
        val artsSecret = server.createUser("vos", "huisarts", "iep")
        val pohSecret = server.createUser("haan", "poh", "iep")
        fun iep(username: String, secret: String, device: String) = LoginCredentials(
            "iep", username, TestServer.PASSWORD, Totp.now(secret), device,
        )
        val arts = login(server.url, dir(), InMemoryKeyStore(), iep("vos", artsSecret, "desktop"))
        val poh = login(server.url, dir(), InMemoryKeyStore(), iep("haan", pohSecret, "telefoon"))
        val haan = arts.colleagues().single { it.username == "haan" }
        val conversation = arts.createConversation("Uitslagen", ConversationKind.GROUP, null, listOf(haan.id))

        val sent = arts.send(conversation.id, "Lab binnen", false, MessageKind.OVERLEG)
        poh.sync()
        poh.markRead(conversation.id, sent)
        poh.sync()
        arts.sync()
        val receipt = arts.receipts(sent).single()
        assertEquals(haan.id, receipt.user)
        assertTrue(receipt.deliveredAt != null && receipt.readAt != null)

        assertEquals(TtlPolicy.Allowed, arts.practiceRules().ttl)
        val fleeting = arts.sendDisappearing(conversation.id, "Vluchtig", 2uL)
        val shown = arts.messages(conversation.id, 10u).single { it.id == fleeting }
        assertTrue(shown.expiresAt != null && !shown.expired)
        delay(2_500)
        arts.sync()
        val marker = arts.messages(conversation.id, 10u).single { it.id == fleeting }
        assertTrue(marker.expired)
        assertEquals("", marker.body)

        val mine = arts.exportMyAccount()
        assertTrue(mine.contains("Lab binnen") && !mine.contains("Vluchtig"))
    }

    /** The platform's user check as a test sets it. */
    private class Check(private val passes: Boolean) : UserCheck {
        override fun verify(): Boolean = passes
    }

    @Test
    fun `a new device of mine joins only after I approve it with its code`() = runBlocking<Unit> {
        server.createPractice("berk", "Praktijk De Berk")
        val secret = server.createUser("dekker", "huisarts", "berk")
        fun credentials(device: String) =
            LoginCredentials("berk", "dekker", TestServer.PASSWORD, Totp.now(secret), device)
        val phone = login(server.url, dir(), InMemoryKeyStore(), credentials("telefoon"))
        val conversation = phone.createConversation("Notities", ConversationKind.GROUP, null, emptyList())
        phone.send(conversation.id, "Eerst op de telefoon", false, MessageKind.OVERLEG)

        val tablet = login(server.url, dir(), InMemoryKeyStore(), credentials("tablet"))
        val listed = phone.devices().single { it.id == tablet.deviceId() }
        assertEquals(null, listed.approvedBy)
        // A code that is not the tablet's is refused, and nothing is added.
        assertThrows<PieperException.Invalid> {
            runBlocking { phone.approveDevice(tablet.deviceId(), "000 00") }
        }
        assertEquals(1, phone.members(conversation.id).size)
        // The code the tablet shows approves it; the phone adds it.
        assertEquals(6, tablet.approvalCode().count { it.isDigit() })
        phone.approveDevice(tablet.deviceId(), tablet.approvalCode())
        assertEquals(phone.deviceId(), phone.devices().single { it.id == tablet.deviceId() }.approvedBy)
        assertEquals(2, phone.members(conversation.id).size)
        tablet.sync()
        assertTrue(tablet.conversations().any { it.id == conversation.id })
    }

    @Test
    fun `the app lock asks the platform's check, and a backup needs its code`() = runBlocking<Unit> {
        server.createPractice("wilg", "Praktijk De Wilg")
        val secret = server.createUser("kuipers", "huisarts", "wilg")
        val client = login(
            server.url, dir(), InMemoryKeyStore(),
            LoginCredentials("wilg", "kuipers", TestServer.PASSWORD, Totp.now(secret), "telefoon"),
        )
        val conversation = client.createConversation("Notities", ConversationKind.GROUP, null, emptyList())
        client.send(conversation.id, "Alleen voor mij", false, MessageKind.OVERLEG)

        client.setLockPolicy(60_000uL, 3u)
        client.lock()
        assertTrue(client.isLocked())
        assertThrows<PieperException.Locked> { client.messages(conversation.id, 10u) }
        assertThrows<PieperException.Locked> { runBlocking { client.unlock(Check(false)) } }
        client.unlock(Check(true))
        assertEquals(listOf("Alleen voor mij"), client.messages(conversation.id, 10u).map { it.body })

        val code = newRecoveryCode()
        assertEquals(1u, client.createBackup(code, 50u))
        assertThrows<PieperException.WrongKey> { runBlocking { client.restoreBackup(newRecoveryCode()) } }
    }

    @Test
    fun `a revoked device is wiped and every later read says so`() = runBlocking<Unit> {
        server.createPractice("hazelaar", "Praktijk De Hazelaar")
        val secret = server.createUser("visser", "huisarts", "hazelaar")
        val managerSecret = server.createUser("mulder", "manager", "hazelaar")
        val phoneDir = dir()
        val phone = login(
            server.url, phoneDir, InMemoryKeyStore(),
            LoginCredentials("hazelaar", "visser", TestServer.PASSWORD, Totp.now(secret), "telefoon"),
        )
        val manager = login(
            server.url, dir(), InMemoryKeyStore(),
            LoginCredentials("hazelaar", "mulder", TestServer.PASSWORD, Totp.now(managerSecret), "laptop"),
        )
        val conversation = phone.createConversation("Overleg", ConversationKind.GROUP, null, emptyList())
        phone.send(conversation.id, "Labuitslag besproken", false, MessageKind.OVERLEG)

        // The manager sees the phone among the practice's devices and revokes it.
        assertTrue(manager.devices().any { it.id == phone.deviceId() && it.revokedAt == null })
        manager.revokeDevice(phone.deviceId())
        assertTrue(manager.devices().single { it.id == phone.deviceId() }.revokedAt != null)

        // The phone hears of it on its next sync and wipes itself; from then on
        // every read of the running app answers Wiped.
        assertThrows<PieperException.Revoked> { runBlocking { phone.sync() } }
        assertThrows<PieperException.Wiped> { phone.conversations() }
        assertThrows<PieperException.Wiped> { phone.messages(conversation.id, 10u) }
        assertThrows<PieperException.Wiped> { phone.search("Labuitslag", 10u) }
        assertThrows<PieperException.Wiped> { runBlocking { phone.sync() } }
        // Restarting the app does not bring it back.
        assertThrows<PieperException.Wiped> { runBlocking { openDevice(phoneDir, InMemoryKeyStore()) } }
    }

    @Test
    fun `replies, files, members and paging back`() = runBlocking<Unit> {
        server.createPractice("els", "Praktijk De Els")
        val artsSecret = server.createUser("devos", "huisarts", "els")
        val pohSecret = server.createUser("smits", "poh", "els")
        val balieSecret = server.createUser("bos", "assistent", "els")
        fun els(username: String, secret: String, device: String) = LoginCredentials(
            "els", username, TestServer.PASSWORD, Totp.now(secret), device,
        )
        val arts = login(server.url, dir(), InMemoryKeyStore(), els("devos", artsSecret, "desktop"))
        val poh = login(server.url, dir(), InMemoryKeyStore(), els("smits", pohSecret, "telefoon"))
        val balie = login(server.url, dir(), InMemoryKeyStore(), els("bos", balieSecret, "balie"))
        val conversation = arts.createConversation(
            "Dhr. Bos — wond", ConversationKind.GROUP, "his:patient/77", listOf(poh.userId()),
        )

        // Paging back: five messages, read two at a time from the newest.
        val sent = (1..5).map { arts.send(conversation.id, "bericht $it", false, MessageKind.OVERLEG) }
        poh.sync()
        val newest = poh.messages(conversation.id, 2u)
        assertEquals(listOf("bericht 4", "bericht 5"), newest.map { it.body })
        val before = poh.messagesBefore(conversation.id, newest.first().id, 2u)
        assertEquals(listOf("bericht 2", "bericht 3"), before.map { it.body })
        assertEquals(listOf("bericht 1"), poh.messagesBefore(conversation.id, before.first().id, 2u).map { it.body })
        assertThrows<PieperException.NotFound> { poh.messagesBefore(conversation.id, "geen-bericht", 2u) }
        // An anchor from another conversation is no anchor here.
        assertThrows<PieperException.NotFound> { poh.messagesBefore("elders", newest.first().id, 2u) }

        // A reply names the message it answers, on the other device too.
        val reply = poh.sendReply(conversation.id, "Gezien, ik bel hem", sent[2])
        arts.sync()
        assertEquals(sent[2], arts.messages(conversation.id, 10u).single { it.id == reply }.replyTo)

        // A file: sealed before upload, listed with the message, opened and saved on the other device.
        val photo = ByteArray(100_000) { (it % 251).toByte() }
        val withFile = arts.sendAttachment(conversation.id, "Foto van de wond", "wond.jpg", "image/jpeg", photo)
        poh.sync()
        val shown = poh.messages(conversation.id, 10u).single { it.id == withFile }
        assertEquals(listOf(AttachmentInfo("wond.jpg", "image/jpeg", 100_000uL)), shown.attachments)
        assertTrue(photo.contentEquals(poh.attachment(withFile, 0u)))
        val saved = Files.createTempDirectory("pieper-file").resolve("wond.jpg")
        poh.saveAttachment(withFile, 0u, saved.toString())
        assertTrue(photo.contentEquals(Files.readAllBytes(saved)))
        assertThrows<PieperException.NotFound> { runBlocking { poh.attachment(withFile, 1u) } }

        // Members: the assistant is added, then removed again.
        arts.addUsers(conversation.id, listOf(balie.userId()))
        assertTrue(arts.members(conversation.id).any { it.user == balie.userId() && it.device == balie.deviceId() })
        assertEquals(1u, arts.removeUsers(conversation.id, listOf(balie.userId())))
        assertTrue(arts.members(conversation.id).none { it.user == balie.userId() })
    }

    @Test
    fun `two staff share the front-desk tablet`() = runBlocking<Unit> {
        server.createPractice("kastanje", "Praktijk De Kastanje")
        val firstSecret = server.createUser("deboer", "assistent", "kastanje")
        val secondSecret = server.createUser("jacobs", "poh", "kastanje")
        val tablet = PieperTablet(dir(), InMemoryKeyStore())
        assertEquals(emptyList<String>(), tablet.profiles())
        assertEquals(null, tablet.active())

        val first = tablet.signIn(
            server.url, LoginCredentials("kastanje", "deboer", TestServer.PASSWORD, Totp.now(firstSecret), "balie-tablet"),
        )
        val notes = first.createConversation("Balie", ConversationKind.GROUP, null, emptyList())
        first.send(notes.id, "Alleen voor de balie", false, MessageKind.OVERLEG)

        // The second staff member signs in: the first profile locks.
        val second = tablet.signIn(
            server.url, LoginCredentials("kastanje", "jacobs", TestServer.PASSWORD, Totp.now(secondSecret), "balie-tablet"),
        )
        assertEquals(listOf("kastanje+deboer", "kastanje+jacobs"), tablet.profiles())
        assertEquals(second.userId(), tablet.active()?.userId())
        assertTrue(first.isLocked())
        assertThrows<PieperException.Locked> { first.messages(notes.id, 10u) }
        assertEquals(emptyList<Message>(), second.search("balie", 10u))

        // Back to the first, after her check; a failed check opens nothing.
        assertThrows<PieperException.Locked> { runBlocking { tablet.switchTo("kastanje+deboer", Check(false)) } }
        val again = tablet.switchTo("kastanje+deboer", Check(true))
        assertEquals(listOf("Alleen voor de balie"), again.messages(notes.id, 10u).map { it.body })
        assertTrue(second.isLocked())
        assertThrows<PieperException.NotFound> { runBlocking { tablet.switchTo("kastanje+niemand", Check(true)) } }
    }

    @Test
    fun `a manager resets the identity of a colleague who lost every device`() = runBlocking<Unit> {
        server.createPractice("es", "Praktijk De Es")
        val secrets = mapOf(
            "smit" to server.createUser("smit", "huisarts", "es"),
            "vos" to server.createUser("vos", "assistent", "es"),
            "mol" to server.createUser("mol", "manager", "es"),
        )
        suspend fun es(username: String, device: String) = login(
            server.url, dir(), InMemoryKeyStore(),
            LoginCredentials("es", username, TestServer.PASSWORD, Totp.now(secrets.getValue(username)), device),
        )
        val huisarts = es("smit", "telefoon")
        val lost = es("vos", "desktop")
        val manager = es("mol", "desktop")
        assertTrue(huisarts.syncPractice())
        lost.sync()
        manager.sync()
        val conversation = huisarts.createConversation(
            "Overleg", ConversationKind.GROUP, null, listOf(lost.userId(), manager.userId()),
        )
        assertEquals(Trust.FirstUse, trustOf(huisarts, lost.deviceId()))

        // Vos lost the desktop and the recovery code: the new one is not
        // taken in on the server's word alone.
        val replacement = es("vos", "nieuwe-desktop")
        huisarts.addUsers(conversation.id, listOf(lost.userId()))
        assertTrue(huisarts.members(conversation.id).none { it.device == replacement.deviceId() })
        // Only the manager resets.
        assertThrows<PieperException.Refused> {
            runBlocking { huisarts.resetIdentity(replacement.deviceId(), replacement.approvalCode()) }
        }
        manager.resetIdentity(replacement.deviceId(), replacement.approvalCode())

        val told = async {
            withTimeout(15_000) { huisarts.events().filterIsInstance<PieperEvent.IdentityReset>().first() }
        }
        delay(300)
        huisarts.addUsers(conversation.id, listOf(lost.userId()))
        val reset = told.await()
        assertEquals(lost.userId(), reset.user)
        assertEquals(manager.userId(), reset.by)
        assertTrue(huisarts.members(conversation.id).any { it.device == replacement.deviceId() })
        assertEquals(Trust.Reset(manager.userId()), trustOf(huisarts, replacement.deviceId()))
    }

    @Test
    fun `the manager disables a leaver, who is signed out and cannot sign in again`() = runBlocking<Unit> {
        server.createPractice("populier", "Praktijk De Populier")
        val secrets = mapOf(
            "kok" to server.createUser("kok", "assistent", "populier"),
            "dekker" to server.createUser("dekker", "manager", "populier"),
        )
        suspend fun populier(username: String, device: String) = login(
            server.url, dir(), InMemoryKeyStore(),
            LoginCredentials("populier", username, TestServer.PASSWORD, Totp.now(secrets.getValue(username)), device),
        )
        val leaver = populier("kok", "telefoon")
        val manager = populier("dekker", "laptop")
        // Only the manager may.
        assertThrows<PieperException.Refused> { runBlocking { leaver.disableUser(manager.userId()) } }

        manager.disableUser(leaver.userId())
        assertTrue(manager.colleagues().single { it.id == leaver.userId() }.disabled)
        assertThrows<PieperException.Revoked> { runBlocking { leaver.sync() } }
        val again = assertThrows<PieperException.Rejected> { runBlocking { populier("kok", "laptop") } }
        assertEquals("unauthorized", again.code)

        manager.enableUser(leaver.userId())
        assertTrue(manager.colleagues().none { it.disabled })
        populier("kok", "laptop")

        // A new colleague: invited, they set their own password and get
        // their authenticator secret with the code; then sign in as usual.
        val invited = manager.invite("jong", "Dr. De Jong", "huisarts")
        val enrolled = enrol(
            server.url, dir(), InMemoryKeyStore(),
            EnrolmentCredentials("populier", "jong", invited.code, TestServer.PASSWORD, "telefoon"),
        )
        assertEquals(invited.userId, enrolled.client.userId())
        // The assistent works on behalf of the new huisarts: her audit
        // records name him, until the manager clears it.
        manager.setOnBehalfOf(leaver.userId(), invited.userId)
        assertEquals(invited.userId, manager.colleagues().single { it.id == leaver.userId() }.onBehalfOf)
        assertThrows<PieperException.Rejected> { runBlocking { manager.setOnBehalfOf(leaver.userId(), manager.userId()) } }
        manager.setOnBehalfOf(leaver.userId(), null)
        // Registrations are checked before they go out, then entered.
        val malformed = assertThrows<PieperException.Invalid> {
            runBlocking { manager.setRegistrations(invited.userId, "0199", null, null) }
        }
        assertEquals("registrations", malformed.field)
        manager.setRegistrations(invited.userId, "01999999", "19012345601", null)
        assertEquals(null, manager.colleagues().single { it.id == leaver.userId() }.onBehalfOf)
        assertTrue(enrolled.otpauthUrl.startsWith("otpauth://totp/"))
        login(
            server.url, dir(), InMemoryKeyStore(),
            LoginCredentials("populier", "jong", TestServer.PASSWORD, Totp.now(enrolled.authenticatorSecret), "laptop"),
        )
        // The code is spent.
        assertThrows<PieperException.Rejected> {
            runBlocking {
                enrol(
                    server.url, dir(), InMemoryKeyStore(),
                    EnrolmentCredentials("populier", "jong", invited.code, TestServer.PASSWORD, "tablet"),
                )
            }
        }
    }

    @Test
    fun `a device renews its keys in a conversation and shows when`() = runBlocking<Unit> {
        server.createPractice("lijsterbes", "Praktijk De Lijsterbes")
        val secrets = mapOf(
            "de-boer" to server.createUser("de-boer", "huisarts", "lijsterbes"),
            "peters" to server.createUser("peters", "poh", "lijsterbes"),
        )
        suspend fun lijsterbes(username: String, device: String) = login(
            server.url, dir(), InMemoryKeyStore(),
            LoginCredentials("lijsterbes", username, TestServer.PASSWORD, Totp.now(secrets.getValue(username)), device),
        )
        val huisarts = lijsterbes("de-boer", "telefoon")
        val poh = lijsterbes("peters", "laptop")
        val conversation = huisarts.createConversation("Diabetes-spreekuur", ConversationKind.GROUP, null, listOf(poh.userId()))
        poh.sync()
        huisarts.send(conversation.id, "Voor de update", false, MessageKind.OVERLEG)
        val before = huisarts.keyUpdates().single { it.conversation == conversation.id }
        assertTrue(before.activitySince)
        assertFalse(before.dueNow)

        assertTrue(huisarts.updateKeys(conversation.id))
        val after = huisarts.keyUpdates().single { it.conversation == conversation.id }
        assertTrue(after.updatedAt >= before.updatedAt)
        assertFalse(after.activitySince)

        // The colleague follows the new epoch and both read on.
        poh.sync()
        poh.send(conversation.id, "Na de update", false, MessageKind.OVERLEG)
        huisarts.sync()
        assertEquals(
            listOf("Voor de update", "Na de update"),
            huisarts.messages(conversation.id, 10u).map { it.body },
        )
    }

    private fun trustOf(client: PieperClient, device: String): Trust? =
        client.knownDevices().singleOrNull { it.device == device }?.trust

    @Test
    fun `a wrong TOTP code is a typed exception`() = runBlocking {
        val wrong = Totp.at(assistentSecret, System.currentTimeMillis() / 1000 / 30 - 10)
        val e = assertThrows<PieperException.Rejected> {
            runBlocking {
                login(
                    server.url, dir(), InMemoryKeyStore(),
                    LoginCredentials("linde", "bakker", TestServer.PASSWORD, wrong, "tablet"),
                )
            }
        }
        // The answer a wrong password gets: it tells a guesser nothing.
        assertEquals("unauthorized", e.code)
    }

    @Test
    fun `a panic in Rust is an exception, and the library keeps working`() {
        assertThrows<InternalException> { panicForTests() }
        val e = assertThrows<PieperException.NotFound> {
            runBlocking { openDevice(dir(), InMemoryKeyStore()) }
        }
        assertEquals("device store", e.what)
    }

    @Test
    fun `opening a directory without a device is a typed exception`() {
        val e = assertThrows<PieperException.NotFound> {
            runBlocking { openDevice(dir(), InMemoryKeyStore()) }
        }
        assertEquals("device store", e.what)
    }
}
