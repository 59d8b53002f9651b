import Foundation
import XCTest
@testable import PieperCore

/// The same scenario as the Kotlin tests, from Swift: two users sign in with
/// 2FA, one opens a patient-linked conversation, both exchange messages, the
/// other receives them as an AsyncStream, searches, and a wrong TOTP code is
/// a typed error.
final class ScenarioTests: XCTestCase {
    static var server: TestServer!
    static var huisarts = ""
    static var assistent = ""

    override class func setUp() {
        super.setUp()
        do {
            server = try TestServer()
            huisarts = try server.createUser("jansen", role: "huisarts")
            assistent = try server.createUser("bakker", role: "assistent")
        } catch {
            fatalError("cannot start the test server: \(error)")
        }
    }

    override class func tearDown() {
        server?.stop()
        super.tearDown()
    }

    private func dir() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    private func signIn(_ username: String, _ secret: String, _ device: String) async throws -> PieperClient {
        try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: LoginCredentials(
                practice: "linde", username: username, password: TestServer.password,
                totp: Totp.now(secret), deviceName: device))
    }

    func testTwoColleaguesTalkAboutAPatient() async throws {
        let huisarts = try await signIn("jansen", Self.huisarts, "telefoon")
        let assistent = try await signIn("bakker", Self.assistent, "balie-tablet")
        let colleagues = try await huisarts.colleagues()
        let bakker = try XCTUnwrap(colleagues.first { $0.username == "bakker" })
        let conversation = try await huisarts.createConversation(
            title: "Mw. Smit — INR", kind: .group, patient: "his:patient/48213", withUsers: [bakker.id])
        XCTAssertEqual(conversation.patient, "his:patient/48213")

        let live = assistent.startLive()
        defer { live.cancel() }
        let urgent = Task { () -> Message? in
            for await event in assistent.events() {
                if case let .urgentMessage(message) = event { return message }
            }
            return nil
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        let sentId = try await huisarts.send(conversation: conversation.id, body: "Bel mw. Smit vandaag terug", urgent: true, kind: .overleg)
        let arrived = await urgent.value
        let received = try XCTUnwrap(arrived)
        XCTAssertEqual(received.id, sentId)
        XCTAssertEqual(received.priority, .urgent)
        XCTAssertEqual(received.senderUser, huisarts.userId())

        _ = try await assistent.send(conversation: conversation.id, body: "Teruggebeld, komt morgen", urgent: false, kind: .overleg)
        _ = try await huisarts.sync()
        let seen = try huisarts.messages(conversation: conversation.id, limit: 10)
        XCTAssertEqual(seen.map(\.body), ["Bel mw. Smit vandaag terug", "Teruggebeld, komt morgen"])
        XCTAssertEqual(try assistent.search(query: "smit", limit: 10).count, 1)

        // Erasing a patient's chat takes a huisarts or the manager.
        do {
            _ = try await assistent.erasePatient(patient: "his:patient/48213")
            XCTFail("an assistent erased a patient's chat")
        } catch PieperError.Refused(let reason) {
            XCTAssertEqual(reason, .role)
        }
        XCTAssertEqual(try assistent.messages(conversation: conversation.id, limit: 10).count, 2)
        XCTAssertEqual(try huisarts.refusals(), [])
    }

    func testANewDeviceOfMineJoinsOnlyAfterIApproveIt() async throws {
        try Self.server.createPractice("berk", name: "Praktijk De Berk")
        let secret = try Self.server.createUser("dekker", role: "huisarts", practice: "berk")
        func credentials(_ device: String) -> LoginCredentials {
            LoginCredentials(
                practice: "berk", username: "dekker", password: TestServer.password,
                totp: Totp.now(secret), deviceName: device)
        }
        let phone = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(), credentials: credentials("telefoon"))
        let conversation = try await phone.createConversation(
            title: "Notities", kind: .group, patient: nil, withUsers: [])
        let tablet = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(), credentials: credentials("tablet"))
        do {
            _ = try await phone.approveDevice(device: tablet.deviceId(), code: "000 00")
            XCTFail("a wrong code approved the tablet")
        } catch PieperError.Invalid {}
        XCTAssertEqual(try phone.members(conversation: conversation.id).count, 1)
        _ = try await phone.approveDevice(device: tablet.deviceId(), code: try tablet.approvalCode())
        XCTAssertEqual(try phone.members(conversation: conversation.id).count, 2)
    }

    func testAManagerResetsTheIdentityOfAColleagueWhoLostEveryDevice() async throws {
        try Self.server.createPractice("es", name: "Praktijk De Es")
        let secrets = [
            "smit": try Self.server.createUser("smit", role: "huisarts", practice: "es"),
            "vos": try Self.server.createUser("vos", role: "assistent", practice: "es"),
            "mol": try Self.server.createUser("mol", role: "manager", practice: "es"),
        ]
        func es(_ username: String, _ device: String) async throws -> PieperClient {
            try await login(
                server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
                credentials: LoginCredentials(
                    practice: "es", username: username, password: TestServer.password,
                    totp: Totp.now(secrets[username]!), deviceName: device))
        }
        let huisarts = try await es("smit", "telefoon")
        let lost = try await es("vos", "desktop")
        let manager = try await es("mol", "desktop")
        XCTAssertTrue(try await huisarts.syncPractice())
        _ = try await lost.sync()
        _ = try await manager.sync()
        let conversation = try await huisarts.createConversation(
            title: "Overleg", kind: .group, patient: nil, withUsers: [lost.userId(), manager.userId()])
        XCTAssertEqual(try huisarts.knownDevices().first { $0.device == lost.deviceId() }?.trust, .firstUse)

        let replacement = try await es("vos", "nieuwe-desktop")
        _ = try await huisarts.addUsers(conversation: conversation.id, users: [lost.userId()])
        XCTAssertFalse(try huisarts.members(conversation: conversation.id).contains { $0.device == replacement.deviceId() })
        do {
            try await huisarts.resetIdentity(device: replacement.deviceId(), code: try replacement.approvalCode())
            XCTFail("a huisarts reset an identity")
        } catch PieperError.Refused {}
        try await manager.resetIdentity(device: replacement.deviceId(), code: try replacement.approvalCode())

        let told = Task { () -> (String, String)? in
            for await event in huisarts.events() {
                if case let .identityReset(user, by) = event { return (user, by) }
            }
            return nil
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        _ = try await huisarts.addUsers(conversation: conversation.id, users: [lost.userId()])
        let reset = await told.value
        XCTAssertEqual(reset?.0, lost.userId())
        XCTAssertEqual(reset?.1, manager.userId())
        XCTAssertEqual(
            try huisarts.knownDevices().first { $0.device == replacement.deviceId() }?.trust,
            .reset(byUser: manager.userId()))
    }

    func testReceiptsADisappearingMessageAndMyOwnData() async throws {
        try Self.server.createPractice("iep", name: "Praktijk De Iep")
        let artsSecret = try Self.server.createUser("vos", role: "huisarts", practice: "iep")
        let pohSecret = try Self.server.createUser("haan", role: "poh", practice: "iep")
        func iep(_ username: String, _ secret: String, _ device: String) -> LoginCredentials {
            LoginCredentials(
                practice: "iep", username: username, password: TestServer.password,
                totp: Totp.now(secret), deviceName: device)
        }
        let arts = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: iep("vos", artsSecret, "desktop"))
        let poh = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: iep("haan", pohSecret, "telefoon"))
        let haan = try XCTUnwrap(try await arts.colleagues().first { $0.username == "haan" })
        let conversation = try await arts.createConversation(
            title: "Uitslagen", kind: .group, patient: nil, withUsers: [haan.id])

        let sent = try await arts.send(conversation: conversation.id, body: "Lab binnen", urgent: false, kind: .overleg)
        _ = try await poh.sync()
        try await poh.markRead(conversation: conversation.id, message: sent)
        _ = try await poh.sync()
        _ = try await arts.sync()
        let receipt = try XCTUnwrap(try await arts.receipts(message: sent).first)
        XCTAssertEqual(receipt.user, haan.id)
        XCTAssertNotNil(receipt.readAt)

        let rules = try await arts.practiceRules()
        XCTAssertEqual(rules.ttl, .allowed)
        let fleeting = try await arts.sendDisappearing(conversation: conversation.id, body: "Vluchtig", ttlSecs: 2)
        try await Task.sleep(nanoseconds: 2_500_000_000)
        _ = try await arts.sync()
        let marker = try XCTUnwrap(try arts.messages(conversation: conversation.id, limit: 10).first { $0.id == fleeting })
        XCTAssertTrue(marker.expired)
        XCTAssertEqual(marker.body, "")

        let mine = try await arts.exportMyAccount()
        XCTAssertTrue(mine.contains("Lab binnen"))
        XCTAssertFalse(mine.contains("Vluchtig"))
    }

    /// The platform's user check as a test sets it.
    final class Check: UserCheck {
        let passes: Bool
        init(_ passes: Bool) { self.passes = passes }
        func verify() -> Bool { passes }
    }

    func testTheAppLockAsksThePlatformsCheckAndABackupNeedsItsCode() async throws {
        try Self.server.createPractice("wilg", name: "Praktijk De Wilg")
        let secret = try Self.server.createUser("kuipers", role: "huisarts", practice: "wilg")
        let client = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: LoginCredentials(
                practice: "wilg", username: "kuipers", password: TestServer.password,
                totp: Totp.now(secret), deviceName: "telefoon"))
        let conversation = try await client.createConversation(
            title: "Notities", kind: .group, patient: nil, withUsers: [])
        _ = try await client.send(conversation: conversation.id, body: "Alleen voor mij", urgent: false, kind: .overleg)

        await client.setLockPolicy(idleMs: 60_000, maxFailedUnlocks: 3)
        client.lock()
        XCTAssertTrue(client.isLocked())
        XCTAssertThrowsError(try client.messages(conversation: conversation.id, limit: 10)) { error in
            guard case PieperError.Locked = error else { return XCTFail("\(error)") }
        }
        do {
            try await client.unlock(check: Check(false))
            XCTFail("a failed check unlocked")
        } catch PieperError.Locked {}
        try await client.unlock(check: Check(true))
        XCTAssertEqual(try client.messages(conversation: conversation.id, limit: 10).map(\.body), ["Alleen voor mij"])

        let code = newRecoveryCode()
        XCTAssertEqual(try await client.createBackup(recoveryCode: code, perConversation: 50), 1)
        do {
            _ = try await client.restoreBackup(recoveryCode: newRecoveryCode())
            XCTFail("a wrong recovery code restored")
        } catch PieperError.WrongKey {}
    }

    func testARevokedDeviceIsWipedAndEveryLaterReadSaysSo() async throws {
        try Self.server.createPractice("hazelaar", name: "Praktijk De Hazelaar")
        let secret = try Self.server.createUser("visser", role: "huisarts", practice: "hazelaar")
        let managerSecret = try Self.server.createUser("mulder", role: "manager", practice: "hazelaar")
        let phoneDir = try dir()
        let phone = try await login(
            server: Self.server.url, dir: phoneDir, keystore: MemoryKeyStore(),
            credentials: LoginCredentials(
                practice: "hazelaar", username: "visser", password: TestServer.password,
                totp: Totp.now(secret), deviceName: "telefoon"))
        let manager = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: LoginCredentials(
                practice: "hazelaar", username: "mulder", password: TestServer.password,
                totp: Totp.now(managerSecret), deviceName: "laptop"))
        let conversation = try await phone.createConversation(
            title: "Overleg", kind: .group, patient: nil, withUsers: [])
        _ = try await phone.send(conversation: conversation.id, body: "Labuitslag besproken", urgent: false, kind: .overleg)

        let devices = try await manager.devices()
        XCTAssertTrue(devices.contains { $0.id == phone.deviceId() && $0.revokedAt == nil })
        try await manager.revokeDevice(device: phone.deviceId())

        do {
            _ = try await phone.sync()
            XCTFail("a revoked device synced")
        } catch PieperError.Revoked {}
        for read in [
            { _ = try phone.conversations() },
            { _ = try phone.messages(conversation: conversation.id, limit: 10) },
            { _ = try phone.search(query: "Labuitslag", limit: 10) },
        ] as [() throws -> Void] {
            XCTAssertThrowsError(try read()) { error in
                guard case PieperError.Wiped = error else { return XCTFail("\(error)") }
            }
        }
        do {
            _ = try await openDevice(dir: phoneDir, keystore: MemoryKeyStore())
            XCTFail("a wiped device opened")
        } catch PieperError.Wiped {}
    }

    func testTheManagerDisablesALeaverWhoIsSignedOutAndCannotSignInAgain() async throws {
        try Self.server.createPractice("populier", name: "Praktijk De Populier")
        let secrets = [
            "kok": try Self.server.createUser("kok", role: "assistent", practice: "populier"),
            "dekker": try Self.server.createUser("dekker", role: "manager", practice: "populier"),
        ]
        func populier(_ username: String, _ device: String) async throws -> PieperClient {
            try await login(
                server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
                credentials: LoginCredentials(
                    practice: "populier", username: username, password: TestServer.password,
                    totp: Totp.now(secrets[username]!), deviceName: device))
        }
        let leaver = try await populier("kok", "telefoon")
        let manager = try await populier("dekker", "laptop")
        do {
            try await leaver.disableUser(user: manager.userId())
            XCTFail("an assistent disabled the manager")
        } catch PieperError.Refused {}

        try await manager.disableUser(user: leaver.userId())
        let listed = try await manager.colleagues()
        XCTAssertTrue(listed.contains { $0.id == leaver.userId() && $0.disabled })
        do {
            _ = try await leaver.sync()
            XCTFail("a disabled user's device synced")
        } catch PieperError.Revoked {}
        do {
            _ = try await populier("kok", "laptop")
            XCTFail("a disabled user signed in")
        } catch let PieperError.Rejected(code, _) {
            XCTAssertEqual(code, "unauthorized")
        }

        try await manager.enableUser(user: leaver.userId())
        _ = try await populier("kok", "laptop")

        // A new colleague: invited, they set their own password and get
        // their authenticator secret with the code; then sign in as usual.
        let invited = try await manager.invite(username: "jong", displayName: "Dr. De Jong", role: "huisarts")
        let enrolled = try await enrol(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: EnrolmentCredentials(
                practice: "populier", username: "jong", code: invited.code,
                password: TestServer.password, deviceName: "telefoon"))
        XCTAssertEqual(enrolled.client.userId(), invited.userId)
        // The assistent works on behalf of the new huisarts: her audit
        // records name him, until the manager clears it.
        try await manager.setOnBehalfOf(user: leaver.userId(), huisarts: invited.userId)
        var colleagues = try await manager.colleagues()
        XCTAssertEqual(colleagues.first { $0.id == leaver.userId() }?.onBehalfOf, invited.userId)
        do {
            try await manager.setOnBehalfOf(user: leaver.userId(), huisarts: manager.userId())
            XCTFail("a manager is no huisarts to work for")
        } catch PieperError.Rejected {}
        try await manager.setOnBehalfOf(user: leaver.userId(), huisarts: nil)
        // Registrations are checked before they go out, then entered.
        do {
            try await manager.setRegistrations(user: invited.userId, agb: "0199", big: nil, uzi: nil)
            XCTFail("a malformed AGB-code went out")
        } catch let PieperError.Invalid(field, _) {
            XCTAssertEqual(field, "registrations")
        }
        try await manager.setRegistrations(
            user: invited.userId, agb: "01999999", big: "19012345601", uzi: nil)
        colleagues = try await manager.colleagues()
        XCTAssertNil(colleagues.first { $0.id == leaver.userId() }?.onBehalfOf)
        XCTAssertTrue(enrolled.otpauthUrl.hasPrefix("otpauth://totp/"))
        _ = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: LoginCredentials(
                practice: "populier", username: "jong", password: TestServer.password,
                totp: Totp.now(enrolled.authenticatorSecret), deviceName: "laptop"))
    }

    func testADeviceRenewsItsKeysInAConversationAndShowsWhen() async throws {
        try Self.server.createPractice("lijsterbes", name: "Praktijk De Lijsterbes")
        let secrets = [
            "de-boer": try Self.server.createUser("de-boer", role: "huisarts", practice: "lijsterbes"),
            "peters": try Self.server.createUser("peters", role: "poh", practice: "lijsterbes"),
        ]
        func lijsterbes(_ username: String, _ device: String) async throws -> PieperClient {
            try await login(
                server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
                credentials: LoginCredentials(
                    practice: "lijsterbes", username: username, password: TestServer.password,
                    totp: Totp.now(secrets[username]!), deviceName: device))
        }
        let huisarts = try await lijsterbes("de-boer", "telefoon")
        let poh = try await lijsterbes("peters", "laptop")
        let conversation = try await huisarts.createConversation(
            title: "Diabetes-spreekuur", kind: .group, patient: nil, withUsers: [poh.userId()])
        _ = try await poh.sync()
        _ = try await huisarts.send(conversation: conversation.id, body: "Voor de update", urgent: false, kind: .overleg)
        let before = try XCTUnwrap(try huisarts.keyUpdates().first { $0.conversation == conversation.id })
        XCTAssertTrue(before.activitySince)
        XCTAssertFalse(before.dueNow)

        let landed = try await huisarts.updateKeys(conversation: conversation.id)
        XCTAssertTrue(landed)
        let after = try XCTUnwrap(try huisarts.keyUpdates().first { $0.conversation == conversation.id })
        XCTAssertGreaterThanOrEqual(after.updatedAt, before.updatedAt)
        XCTAssertFalse(after.activitySince)

        // The colleague follows the new epoch and both read on.
        _ = try await poh.sync()
        _ = try await poh.send(conversation: conversation.id, body: "Na de update", urgent: false, kind: .overleg)
        _ = try await huisarts.sync()
        XCTAssertEqual(
            try huisarts.messages(conversation: conversation.id, limit: 10).map { $0.body },
            ["Voor de update", "Na de update"])
    }

    func testConsentRecordedAtTheFrontDeskReachesTheHuisarts() async throws {
        // Its own practice, so its practice group starts empty.
        try Self.server.createPractice("eik", name: "Praktijk De Eik")
        let balieSecret = try Self.server.createUser("visser", role: "assistent", practice: "eik")
        let artsSecret = try Self.server.createUser("mulder", role: "huisarts", practice: "eik")
        func eik(_ username: String, _ secret: String, _ device: String) -> LoginCredentials {
            LoginCredentials(
                practice: "eik", username: username, password: TestServer.password,
                totp: Totp.now(secret), deviceName: device)
        }
        let balie = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: eik("visser", balieSecret, "balie"))
        let arts = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: eik("mulder", artsSecret, "telefoon"))

        let roster = "reference,name,birth_date,enrolled\nhis:1,Mw. A. Smit,1950-01-01,yes\nhis:2,Dhr. B. Bos,1960-01-01,yes\n"
        let changes = try await balie.importRoster(text: roster, format: .csv, full: true)
        XCTAssertEqual(changes.added, ["his:1", "his:2"])
        _ = try await balie.recordConsent(
            patient: "his:1", kind: .lspSharing, status: .given, method: .paperForm,
            note: "formulier getekend", obtainedAt: nil)
        do {
            _ = try await balie.recordConsent(
                patient: "his:99", kind: .lspSharing, status: .given, method: .inPerson,
                note: nil, obtainedAt: nil)
            XCTFail("recorded consent for a patient not on the roster")
        } catch let PieperError.NotFound(what) {
            XCTAssertEqual(what, "patient on the roster")
        }

        _ = try await arts.sync()
        XCTAssertEqual(try arts.patientConsent(patient: "his:1").lspSharing, .given)
        let figures = try arts.consentFigures(kind: .lspSharing)
        XCTAssertEqual(figures.enrolled, 2)
        XCTAssertEqual(figures.given, 1)
        XCTAssertFalse(figures.meetsTarget)
        XCTAssertEqual(try arts.consentWorklist(kind: .lspSharing).map(\.reference), ["his:2"])
    }

    func testRepliesFilesMembersAndPagingBack() async throws {
        try Self.server.createPractice("els", name: "Praktijk De Els")
        let artsSecret = try Self.server.createUser("devos", role: "huisarts", practice: "els")
        let pohSecret = try Self.server.createUser("smits", role: "poh", practice: "els")
        let balieSecret = try Self.server.createUser("bos", role: "assistent", practice: "els")
        func els(_ username: String, _ secret: String, _ device: String) -> LoginCredentials {
            LoginCredentials(
                practice: "els", username: username, password: TestServer.password,
                totp: Totp.now(secret), deviceName: device)
        }
        let arts = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: els("devos", artsSecret, "desktop"))
        let poh = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: els("smits", pohSecret, "telefoon"))
        let balie = try await login(
            server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
            credentials: els("bos", balieSecret, "balie"))
        let conversation = try await arts.createConversation(
            title: "Dhr. Bos — wond", kind: .group, patient: "his:patient/77", withUsers: [poh.userId()])

        var sent: [String] = []
        for i in 1...5 {
            sent.append(try await arts.send(conversation: conversation.id, body: "bericht \(i)", urgent: false, kind: .overleg))
        }
        _ = try await poh.sync()
        let newest = try poh.messages(conversation: conversation.id, limit: 2)
        XCTAssertEqual(newest.map(\.body), ["bericht 4", "bericht 5"])
        let before = try poh.messagesBefore(conversation: conversation.id, before: newest[0].id, limit: 2)
        XCTAssertEqual(before.map(\.body), ["bericht 2", "bericht 3"])
        XCTAssertEqual(
            try poh.messagesBefore(conversation: conversation.id, before: before[0].id, limit: 2).map(\.body),
            ["bericht 1"])
        // An anchor from another conversation is no anchor here.
        XCTAssertThrowsError(try poh.messagesBefore(conversation: "elders", before: newest[0].id, limit: 2)) { error in
            guard case PieperError.NotFound = error else { return XCTFail("\(error)") }
        }

        let reply = try await poh.sendReply(conversation: conversation.id, body: "Gezien, ik bel hem", replyTo: sent[2])
        _ = try await arts.sync()
        XCTAssertEqual(try arts.messages(conversation: conversation.id, limit: 10).first { $0.id == reply }?.replyTo, sent[2])

        let photo = Data((0..<100_000).map { UInt8($0 % 251) })
        let withFile = try await arts.sendAttachment(
            conversation: conversation.id, body: "Foto van de wond", name: "wond.jpg", mimeType: "image/jpeg", data: photo)
        _ = try await poh.sync()
        let shown = try poh.messages(conversation: conversation.id, limit: 10).first { $0.id == withFile }
        XCTAssertEqual(shown?.attachments, [AttachmentInfo(name: "wond.jpg", mimeType: "image/jpeg", size: 100_000)])
        let opened = try await poh.attachment(message: withFile, index: 0)
        XCTAssertEqual(opened, photo)
        let saved = try dir() + "/wond.jpg"
        try await poh.saveAttachment(message: withFile, index: 0, path: saved)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: saved)), photo)

        try await arts.addUsers(conversation: conversation.id, users: [balie.userId()])
        XCTAssertTrue(try arts.members(conversation: conversation.id).contains { $0.user == balie.userId() })
        XCTAssertEqual(try await arts.removeUsers(conversation: conversation.id, users: [balie.userId()]), 1)
        XCTAssertFalse(try arts.members(conversation: conversation.id).contains { $0.user == balie.userId() })
    }

    func testTwoStaffShareTheFrontDeskTablet() async throws {
        try Self.server.createPractice("kastanje", name: "Praktijk De Kastanje")
        let firstSecret = try Self.server.createUser("deboer", role: "assistent", practice: "kastanje")
        let secondSecret = try Self.server.createUser("jacobs", role: "poh", practice: "kastanje")
        let tablet = PieperTablet(root: try dir(), keystore: MemoryKeyStore())
        XCTAssertEqual(try tablet.profiles(), [])

        let first = try await tablet.signIn(
            server: Self.server.url,
            credentials: LoginCredentials(
                practice: "kastanje", username: "deboer", password: TestServer.password,
                totp: Totp.now(firstSecret), deviceName: "balie-tablet"))
        let notes = try await first.createConversation(title: "Balie", kind: .group, patient: nil, withUsers: [])
        _ = try await first.send(conversation: notes.id, body: "Alleen voor de balie", urgent: false, kind: .overleg)

        let second = try await tablet.signIn(
            server: Self.server.url,
            credentials: LoginCredentials(
                practice: "kastanje", username: "jacobs", password: TestServer.password,
                totp: Totp.now(secondSecret), deviceName: "balie-tablet"))
        XCTAssertEqual(try tablet.profiles(), ["kastanje+deboer", "kastanje+jacobs"])
        XCTAssertEqual(tablet.active()?.userId(), second.userId())
        XCTAssertTrue(first.isLocked())
        XCTAssertThrowsError(try first.messages(conversation: notes.id, limit: 10)) { error in
            guard case PieperError.Locked = error else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try second.search(query: "balie", limit: 10), [])

        do {
            _ = try await tablet.switchTo(profile: "kastanje+deboer", check: Check(false))
            XCTFail("a failed check switched")
        } catch PieperError.Locked {}
        let again = try await tablet.switchTo(profile: "kastanje+deboer", check: Check(true))
        XCTAssertEqual(try again.messages(conversation: notes.id, limit: 10).map(\.body), ["Alleen voor de balie"])
        XCTAssertTrue(second.isLocked())
    }

    func testAWrongTotpCodeIsATypedError() async throws {
        let step = UInt64(Date().timeIntervalSince1970) / 30 - 10
        do {
            _ = try await login(
                server: Self.server.url, dir: try dir(), keystore: MemoryKeyStore(),
                credentials: LoginCredentials(
                    practice: "linde", username: "bakker", password: TestServer.password,
                    totp: Totp.at(Self.assistent, step: step), deviceName: "tablet"))
            XCTFail("a wrong code signed in")
        } catch let PieperError.Rejected(code, _) {
            // The answer a wrong password gets: it tells a guesser nothing.
            XCTAssertEqual(code, "unauthorized")
        }
    }

    func testAPanicInRustIsAnErrorAndTheLibraryKeepsWorking() async throws {
        XCTAssertThrowsError(try panicForTests())
        do {
            _ = try await openDevice(dir: try dir(), keystore: MemoryKeyStore())
            XCTFail("opened nothing")
        } catch let PieperError.NotFound(what) {
            XCTAssertEqual(what, "device store")
        }
    }

    func testOpeningADirectoryWithoutADeviceIsATypedError() async throws {
        do {
            _ = try await openDevice(dir: try dir(), keystore: MemoryKeyStore())
            XCTFail("opened nothing")
        } catch let PieperError.NotFound(what) {
            XCTAssertEqual(what, "device store")
        }
    }
}
