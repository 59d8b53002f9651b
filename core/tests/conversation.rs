//! Conversations between several devices, end to end through MLS, with hand
//! delivery standing in for the server.

mod common;

use common::{TestDevice, TestResult, accept, add, conversation_with, deliver};
use pieper_core::{
    ConversationKind, Error, MessageState, NewMessage, PatientRef, Priority, Received,
};

#[test]
fn three_devices_converse_and_a_removed_member_reads_nothing_after() -> TestResult {
    let huisarts = TestDevice::new("dr.jansen", "phone")?;
    let assistent = TestDevice::new("assistent.bakker", "tablet")?;
    let poh = TestDevice::new("poh.devries", "desktop")?;

    let patient = PatientRef::new("his:patient/48213")?;
    let c = huisarts.create_conversation(
        "Mw. Smit, INR",
        ConversationKind::Group,
        Some(patient.clone()),
    )?;
    add(&huisarts, &c.id, &[&assistent, &poh], &[])?;

    // Every device knows the conversation's details and its three members.
    for d in [&assistent, &poh] {
        let seen = d.conversation(&c.id)?;
        assert_eq!(seen.title, "Mw. Smit, INR");
        assert_eq!(seen.patient, Some(patient.clone()));
        assert_eq!(seen.epoch, huisarts.conversation(&c.id)?.epoch);
        assert_eq!(d.members(&c.id)?.len(), 3);
    }

    // Messages in every direction.
    let first = huisarts.send(&c.id, NewMessage::text("INR 4,1: dosering aanpassen?"))?;
    let got = deliver(&first, &[&assistent, &poh])?;
    for r in &got {
        let Received::Message(m) = r else {
            panic!("expected a message, got {r:?}")
        };
        assert_eq!(m.body, "INR 4,1: dosering aanpassen?");
        assert_eq!(m.sender, *huisarts.id());
        assert_eq!(m.state, MessageState::Received);
    }
    let reply = poh.send(
        &c.id,
        NewMessage {
            reply_to: Some(first.id.clone()),
            ..NewMessage::urgent("Ik bel haar vandaag")
        },
    )?;
    deliver(&reply, &[&huisarts, &assistent])?;
    let back = assistent.send(&c.id, NewMessage::text("Afspraak staat donderdag"))?;
    deliver(&back, &[&huisarts, &poh])?;

    let at_huisarts = huisarts.messages(&c.id, 10)?;
    assert_eq!(
        at_huisarts
            .iter()
            .map(|m| m.body.as_str())
            .collect::<Vec<_>>(),
        [
            "INR 4,1: dosering aanpassen?",
            "Ik bel haar vandaag",
            "Afspraak staat donderdag"
        ]
    );
    assert_eq!(at_huisarts[1].priority, Priority::Urgent);
    assert_eq!(at_huisarts[1].reply_to.as_deref(), Some(first.id.as_str()));
    assert_eq!(at_huisarts[0].state, MessageState::Pending);
    huisarts.mark_sent(&first.id)?;
    assert_eq!(huisarts.message(&first.id)?.state, MessageState::Sent);

    // The huisarts removes the assistent.
    let removal = huisarts.remove_members(&c.id, &[assistent.id().clone()])?;
    assert_eq!(removal.remove_devices, [assistent.id().device.clone()]);
    let queued = huisarts.outbox()?;
    let queued_commit = queued
        .iter()
        .find(|o| o.kind == pieper_core::OutgoingKind::Commit);
    assert_eq!(
        queued_commit.map(|o| o.remove_devices.clone()),
        Some(removal.remove_devices.clone())
    );
    accept(&huisarts, &removal, &[&poh])?;
    assert_eq!(
        assistent.receive(&removal.commit)?,
        Received::Removed {
            conversation: c.id.clone()
        }
    );
    assert!(!assistent.conversation(&c.id)?.active);
    assert_eq!(huisarts.members(&c.id)?.len(), 2);

    // After the removal: the others still talk, the removed device reads nothing.
    let after = huisarts.send(&c.id, NewMessage::text("Na verwijdering: alleen voor POH"))?;
    assert!(matches!(poh.receive(&after.payload)?, Received::Message(_)));
    assert!(matches!(
        assistent.receive(&after.payload),
        Err(Error::NotMember)
    ));
    assert!(assistent.search("verwijdering", 10)?.is_empty());
    assert_eq!(assistent.messages(&c.id, 10)?.len(), 3);
    Ok(())
}

#[test]
fn removed_device_that_missed_its_removal_still_cannot_decrypt() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "phone")?;
    let c = TestDevice::new("c", "phone")?;
    let conv = conversation_with(&a, &[&b, &c], "Overleg")?;
    let removal = a.remove_members(&conv.id, &[c.id().clone()])?;
    accept(&a, &removal, &[&b])?;
    // `c` never processes its removal, so it still holds the old epoch's keys.
    let secret = a.send(&conv.id, NewMessage::text("nieuw geheim"))?;
    assert!(matches!(
        c.receive(&secret.payload),
        Err(Error::StaleEpoch { .. })
    ));
    assert!(c.search("geheim", 5)?.is_empty());
    Ok(())
}

#[test]
fn tampered_and_replayed_messages_are_rejected_and_change_nothing() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "phone")?;
    let conv = conversation_with(&a, &[&b], "Overleg")?;

    let out = a.send(&conv.id, NewMessage::text("origineel"))?;
    let before = b.messages(&conv.id, 100)?;

    for index in [
        out.payload.len() - 1,
        out.payload.len() - 20,
        out.payload.len() / 2,
    ] {
        let mut tampered = out.payload.clone();
        tampered[index] ^= 0x5a;
        let result = b.receive(&tampered);
        assert!(
            matches!(result, Err(Error::Tampered | Error::StaleEpoch { .. })),
            "byte {index}: {result:?}"
        );
    }
    assert!(matches!(
        b.receive(&out.payload[..out.payload.len() - 3]),
        Err(Error::Tampered)
    ));
    assert_eq!(b.messages(&conv.id, 100)?, before);

    // The genuine message still decrypts: the failures consumed no key.
    assert!(matches!(b.receive(&out.payload)?, Received::Message(_)));
    let after_first = b.messages(&conv.id, 100)?;
    assert_eq!(after_first.len(), before.len() + 1);

    // The same ciphertext again is a replay, and stores nothing.
    assert!(matches!(b.receive(&out.payload), Err(Error::Replay)));
    assert_eq!(b.messages(&conv.id, 100)?, after_first);

    // Later messages still flow.
    let next = a.send(&conv.id, NewMessage::text("volgende"))?;
    assert!(matches!(b.receive(&next.payload)?, Received::Message(_)));
    Ok(())
}

#[test]
fn groups_and_messages_survive_a_restart() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "tablet")?;
    let conv = conversation_with(&a, &[&b], "Spoedoverleg")?;
    let first = a.send(&conv.id, NewMessage::text("voor de herstart"))?;
    deliver(&first, &[&b])?;
    let pending = a.send(&conv.id, NewMessage::text("nog in de outbox"))?;

    let a = a.restart()?;
    let b = b.restart()?;

    assert_eq!(a.conversation(&conv.id)?, conv);
    assert_eq!(b.conversation(&conv.id)?.title, "Spoedoverleg");
    assert_eq!(b.messages(&conv.id, 10)?.len(), 1);
    assert_eq!(a.messages(&conv.id, 10)?.len(), 2);
    // The unsent message is still queued, exactly once.
    let outbox = a.outbox()?;
    assert_eq!(a.next_outgoing()?, outbox.first().cloned());
    assert!(
        outbox.len() >= 2,
        "the first message (never marked sent) and the pending one wait: {}",
        outbox.len()
    );
    assert_eq!(outbox.iter().filter(|o| o.id == pending.id).count(), 1);
    assert_eq!(
        outbox
            .iter()
            .find(|o| o.id == pending.id)
            .map(|o| &o.payload),
        Some(&pending.payload)
    );

    // The conversation continues both ways after the restart.
    deliver(&pending, &[&b])?;
    let reply = b.send(&conv.id, NewMessage::text("na de herstart"))?;
    assert!(matches!(a.receive(&reply.payload)?, Received::Message(_)));
    assert_eq!(a.search("herstart", 10)?.len(), 2);
    Ok(())
}

#[test]
fn refused_commit_is_cleared_and_the_next_change_succeeds() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "phone")?;
    let c = TestDevice::new("c", "phone")?;
    let d = TestDevice::new("d", "phone")?;
    let conv = conversation_with(&a, &[&b, &c], "Team")?;
    let epoch = a.conversation(&conv.id)?.epoch;

    // `a` and `b` both commit in the same epoch; the server takes `a`'s.
    let winner = a.remove_members(&conv.id, &[c.id().clone()])?;
    let loser = b.add_members(&conv.id, &d.key_packages(1)?)?;
    assert_eq!((winner.epoch, loser.epoch), (epoch, epoch));
    assert!(matches!(
        b.send(&conv.id, NewMessage::text("x")),
        Err(Error::PendingCommit)
    ));

    b.commit_refused(&conv.id)?;
    assert!(
        b.outbox()?
            .iter()
            .all(|o| o.kind != pieper_core::OutgoingKind::Commit)
    );
    accept(&a, &winner, &[&b])?;
    assert!(matches!(
        c.receive(&winner.commit)?,
        Received::Removed { .. }
    ));

    // The refused commit, delivered by mistake, is a stale epoch to members.
    assert!(matches!(
        a.receive(&loser.commit),
        Err(Error::StaleEpoch { message, current }) if message == epoch && current == epoch + 1
    ));

    // `b` can change the group again: it adds `d` in the new epoch.
    add(&b, &conv.id, &[&d], &[&a])?;
    let hello = d.send(&conv.id, NewMessage::text("hallo van d"))?;
    deliver(&hello, &[&a, &b])?;
    assert_eq!(a.members(&conv.id)?.len(), 3);
    Ok(())
}

#[test]
fn invalid_input_gets_typed_errors() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    assert!(matches!(
        a.create_conversation("  ", ConversationKind::Direct, None),
        Err(Error::Invalid { field: "title", .. })
    ));
    let conv = a.create_conversation("Solo", ConversationKind::Spoed, None)?;
    assert!(matches!(
        a.add_members(&conv.id, &[b"not a key package".to_vec()]),
        Err(Error::Invalid {
            field: "key_package",
            ..
        })
    ));
    assert!(matches!(
        a.send("no-such-conversation", NewMessage::text("x")),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        a.send(&conv.id, NewMessage::text("")),
        Err(Error::Invalid { field: "body", .. })
    ));
    assert!(matches!(
        a.receive(b"\x00\x01garbage"),
        Err(Error::Tampered)
    ));
    assert!(matches!(
        a.search("***", 5),
        Err(Error::Invalid { field: "query", .. })
    ));
    assert!(matches!(
        a.remove_members(&conv.id, &[a.id().clone()]),
        Err(Error::Invalid { .. })
    ));
    // A Welcome for someone else is refused and leaves nothing behind.
    let b = TestDevice::new("b", "phone")?;
    let other = TestDevice::new("other", "phone")?;
    let out = a.add_members(&conv.id, &b.key_packages(1)?)?;
    a.commit_accepted(&conv.id)?;
    let welcome = out.welcome.ok_or("welcome")?;
    assert!(matches!(other.receive(&welcome), Err(Error::NotMember)));
    assert!(other.conversations()?.is_empty());
    Ok(())
}

#[test]
fn a_batch_applies_in_order_and_isolates_a_bad_envelope() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "tablet")?;
    let c = TestDevice::new("c", "desktop")?;
    let conv = a.create_conversation("Catch-up", ConversationKind::Group, None)?;
    // `c` was offline: it gets its Welcome, the details, messages, a commit
    // that adds `b`, and more messages, all in one batch.
    let out = a.add_members(&conv.id, &c.key_packages(1)?)?;
    let details = a.commit_accepted(&conv.id)?;
    let mut envelopes = vec![
        out.welcome.clone().ok_or("welcome")?,
        details[0].payload.clone(),
    ];
    for i in 0..5 {
        envelopes.push(
            a.send(&conv.id, NewMessage::text(format!("bericht {i}")))?
                .payload,
        );
    }
    let add_b = a.add_members(&conv.id, &b.key_packages(1)?)?;
    a.commit_accepted(&conv.id)?;
    envelopes.push(add_b.commit.clone());
    let mut garbled = a.send(&conv.id, NewMessage::text("beschadigd"))?.payload;
    let last = garbled.len() - 1;
    garbled[last] ^= 1;
    envelopes.push(garbled);
    envelopes.push(envelopes[3].clone()); // a replay
    envelopes.push(a.send(&conv.id, NewMessage::text("na de storing"))?.payload);

    let results = c.receive_batch(&envelopes)?;
    assert_eq!(results.len(), envelopes.len());
    assert!(matches!(results[0], Ok(Received::Joined(_))));
    assert!(matches!(results[1], Ok(Received::ConversationUpdated(_))));
    assert!(
        results[2..7]
            .iter()
            .all(|r| matches!(r, Ok(Received::Message(_))))
    );
    assert!(matches!(results[7], Ok(Received::Commit { .. })));
    assert!(matches!(results[8], Err(Error::Tampered)));
    assert!(matches!(results[9], Err(Error::Replay)));
    assert!(matches!(results[10], Ok(Received::Message(_))));

    let bodies: Vec<String> = c
        .messages(&conv.id, 20)?
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        bodies,
        [
            "bericht 0",
            "bericht 1",
            "bericht 2",
            "bericht 3",
            "bericht 4",
            "na de storing"
        ]
    );
    assert_eq!(c.conversation(&conv.id)?.title, "Catch-up");
    assert_eq!(c.members(&conv.id)?.len(), 3);

    // The state the batch left behind is the one on disk: after a restart
    // `c` still follows the conversation.
    let c = c.restart()?;
    let next = a.send(&conv.id, NewMessage::text("morgen"))?;
    assert!(matches!(c.receive(&next.payload)?, Received::Message(_)));
    Ok(())
}

#[test]
fn an_attachment_key_travels_inside_the_message_and_opens_the_blob() -> TestResult {
    use pieper_core::{AttachmentRef, attachments};
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "tablet")?;
    let conv = conversation_with(&a, &[&b], "Wondfoto")?;
    let photo: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (blob, key) = attachments::seal(&photo)?;
    let reference = AttachmentRef {
        blob_id: "blob-1".into(),
        name: "wond.jpg".into(),
        mime_type: "image/jpeg".into(),
        key,
    };
    let out = a.send(
        &conv.id,
        NewMessage {
            attachments: vec![reference.clone()],
            ..NewMessage::text("Foto van de wond")
        },
    )?;
    // The key is not visible in the envelope the server gets.
    assert!(!out.payload.windows(32).any(|w| w == reference.key.key));
    let Received::Message(m) = b.receive(&out.payload)? else {
        panic!("expected a message")
    };
    assert_eq!(m.attachments, vec![reference]);
    assert_eq!(attachments::open(&blob, &m.attachments[0].key)?, photo);
    // And it survives in the store.
    let b = b.restart()?;
    let stored = b.message(&m.id)?;
    assert_eq!(attachments::open(&blob, &stored.attachments[0].key)?, photo);
    Ok(())
}

/// When its one-time KeyPackages are used up, a device is added with its
/// last-resort one, which stays usable for the next add too.
#[test]
fn the_last_resort_key_package_adds_a_device_more_than_once() -> TestResult {
    let huisarts = TestDevice::new("dr.jansen", "phone")?;
    let poh = TestDevice::new("poh.devries", "desktop")?;
    let last_resort = poh.last_resort_key_package()?;
    for title in ["Eerste", "Tweede"] {
        let c = huisarts.create_conversation(title, ConversationKind::Group, None)?;
        let out = huisarts.add_members(&c.id, std::slice::from_ref(&last_resort))?;
        let follow_up = accept(&huisarts, &out, &[])?;
        let welcome = out.welcome.ok_or("an add has a Welcome")?;
        assert!(matches!(poh.receive(&welcome)?, Received::Joined(_)));
        for envelope in &follow_up {
            poh.receive(&envelope.payload)?;
            huisarts.mark_sent(&envelope.id)?;
        }
        let hello = huisarts.send(&c.id, NewMessage::text(title))?;
        let Received::Message(m) = poh.receive(&hello.payload)? else {
            return Err("expected a message".into());
        };
        assert_eq!(m.body, title);
    }
    Ok(())
}

#[test]
fn how_an_envelope_is_delivered_is_decided_when_it_is_queued() -> TestResult {
    let huisarts = TestDevice::new("dr.jansen", "phone")?;
    let patient = PatientRef::new("his:patient/48213")?;
    let c = huisarts.create_conversation(
        "Mw. Smit, INR",
        ConversationKind::Group,
        Some(patient.clone()),
    )?;
    let routine = huisarts.send(&c.id, NewMessage::text("INR 4,1"))?;
    let urgent = huisarts.send(&c.id, NewMessage::urgent("Bel terug"))?;
    let chat = huisarts.create_conversation("Rooster", ConversationKind::Group, None)?;
    let plain = huisarts.send(&chat.id, NewMessage::text("Wie ruilt vrijdag?"))?;

    // The envelope carries its delivery as queued, and reads back the same.
    assert_eq!(routine.delivery.priority, Some(Priority::Routine));
    assert_eq!(urgent.delivery.priority, Some(Priority::Urgent));
    // No practice key on this device yet: the pseudonym is looked up when
    // sending; a conversation about no patient names none.
    assert!(urgent.delivery.patient_pending && urgent.delivery.patient.is_none());
    assert!(!plain.delivery.patient_pending && plain.delivery.patient.is_none());
    let queued = huisarts.outbox()?;
    for sent in [&routine, &urgent, &plain] {
        let found = queued
            .iter()
            .find(|o| o.id == sent.id)
            .ok_or("not in the outbox")?;
        assert_eq!(found.delivery, sent.delivery);
    }
    // Envelopes without a message for anyone to read (the conversations'
    // details) go out silent.
    assert!(
        queued
            .iter()
            .filter(|o| ![&routine.id, &urgent.id, &plain.id].contains(&&o.id))
            .all(|o| o.delivery.priority.is_none())
    );
    Ok(())
}
