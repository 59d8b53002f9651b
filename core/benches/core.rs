//! The core's figures beside their anchors (see shared/PERFORMANCE.md):
//! MLS encrypt + decrypt in a 10-member group with state persisted in
//! SQLCipher; sealing 8 MiB next to the bare AEAD; opening a store and
//! reading the 50 newest of 10,000 messages.

use std::hint::black_box;

use chacha20poly1305::{ChaCha20Poly1305, KeyInit, aead::Aead};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use pieper_core::{ConversationKind, Device, FileKeyStore, MemberId, NewMessage, attachments};
use tempfile::TempDir;

fn device(name: &str) -> (Device, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let keystore = FileKeyStore::in_dir(dir.path()).expect("keystore");
    let id = MemberId::new("bench", name, "d").expect("id");
    (
        Device::create_for_tests(dir.path(), &keystore, id, pieper_wire::Role::Huisarts)
            .expect("device"),
        dir,
    )
}

fn mls_round_trip(c: &mut Criterion) {
    let devices: Vec<(Device, TempDir)> = (0..10).map(|i| device(&format!("u{i}"))).collect();
    let (owner, others) = devices.split_first().expect("ten devices");
    let conv = owner
        .0
        .create_conversation("bench", ConversationKind::Group, None)
        .expect("conversation");
    let key_packages: Vec<Vec<u8>> = others
        .iter()
        .flat_map(|(d, _)| d.key_packages(1).expect("key package"))
        .collect();
    let out = owner.0.add_members(&conv.id, &key_packages).expect("add");
    owner.0.commit_accepted(&conv.id).expect("merge");
    let welcome = out.welcome.expect("welcome");
    for (d, _) in others {
        d.receive(&welcome).expect("join");
    }
    let receiver = &others[0].0;
    let body = "x".repeat(1024);

    let mut group = c.benchmark_group("mls");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encrypt + decrypt 1 KiB, 10 members, persisted", |b| {
        b.iter(|| {
            let out = owner
                .0
                .send(&conv.id, NewMessage::text(body.clone()))
                .expect("send");
            black_box(receiver.receive(&out.payload).expect("receive"));
        })
    });
    // Catch-up: 100 messages received in one transaction, per message.
    group.throughput(Throughput::Elements(100));
    group.sample_size(20);
    group.bench_function("encrypt + decrypt 1 KiB, 10 members, batch of 100", |b| {
        b.iter(|| {
            let envelopes: Vec<Vec<u8>> = (0..100)
                .map(|_| {
                    owner
                        .0
                        .send(&conv.id, NewMessage::text(body.clone()))
                        .expect("send")
                        .payload
                })
                .collect();
            let results = receiver.receive_batch(&envelopes).expect("batch");
            assert!(results.iter().all(Result::is_ok));
            black_box(results)
        })
    });
    group.finish();
}

fn attachment_sealing(c: &mut Criterion) {
    let data = vec![0x42u8; 8 << 20];
    let mut group = c.benchmark_group("attachment 8 MiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);
    group.bench_function("bare chacha20poly1305 one-shot", |b| {
        let cipher = ChaCha20Poly1305::new(&[7u8; 32].into());
        b.iter(|| {
            black_box(
                cipher
                    .encrypt(&[0u8; 12].into(), data.as_slice())
                    .expect("seal"),
            )
        })
    });
    group.bench_function("pieper seal (STREAM + SHA-256 digest)", |b| {
        b.iter(|| black_box(attachments::seal(&data).expect("seal")))
    });
    group.finish();
}

fn open_and_read_newest(c: &mut Criterion) {
    let (dev, dir) = device("reader");
    let conv = dev
        .create_conversation("10k", ConversationKind::Group, None)
        .expect("conversation");
    for i in 0..10_000 {
        dev.send(
            &conv.id,
            NewMessage::text(format!("bericht {i} over de patiënt")),
        )
        .expect("send");
    }
    drop(dev);
    let mut group = c.benchmark_group("store");
    group.bench_function("open (key unwrap included) + 50 newest of 10,000", |b| {
        b.iter_batched(
            || (),
            |()| {
                let keystore = FileKeyStore::in_dir(dir.path()).expect("keystore");
                let dev = Device::open(dir.path(), &keystore).expect("open");
                let newest = dev.messages(&conv.id, 50).expect("read");
                assert_eq!(newest.len(), 50);
                black_box(newest)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn consent_roster(c: &mut Criterion) {
    use pieper_core::consent::{
        ConsentChange, ConsentKind, ConsentMethod, ConsentStatus, figures, merge_roster,
        roster_from_csv, worklist,
    };
    let mut csv = String::from("reference,name,birth_date,enrolled\n");
    for i in 0..10_000 {
        csv.push_str(&format!("his:{i:06},Patiënt {i},1950-01-01,yes\n"));
    }
    let roster = roster_from_csv(&csv).expect("roster");
    let history: Vec<ConsentChange> = roster
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 != 0)
        .map(|(i, p)| ConsentChange {
            id: format!("c{i}"),
            patient: p.reference.clone(),
            kind: ConsentKind::LspSharing,
            status: if i % 5 == 0 {
                ConsentStatus::Refused
            } else {
                ConsentStatus::Given
            },
            method: ConsentMethod::InPerson,
            note: None,
            recorded_by: "u".into(),
            role: "assistent".into(),
            recorded_at: 1_780_000_000_000 + i as i64,
            withdrawal: false,
        })
        .collect();
    let mut group = c.benchmark_group("consent 10,000 patients");
    group.sample_size(20);
    group.bench_function("import CSV and merge into an empty roster", |b| {
        b.iter(|| {
            let mut roster = Vec::new();
            let import = roster_from_csv(&csv).expect("roster");
            black_box(merge_roster(&mut roster, import, true).expect("merge"))
        })
    });
    group.bench_function("figures", |b| {
        b.iter(|| {
            black_box(figures(
                &roster,
                &history,
                ConsentKind::LspSharing,
                i64::MAX,
            ))
        })
    });
    group.bench_function("worklist", |b| {
        let open = Default::default();
        b.iter(|| black_box(worklist(&roster, &history, ConsentKind::LspSharing, &open).len()))
    });
    // The same through a device's encrypted store, as the apps run it.
    group.bench_function("import into a fresh device store", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("dir");
                let keystore = FileKeyStore::in_dir(dir.path()).expect("keystore");
                let id = MemberId::new("linde", "bakker", "tablet").expect("id");
                let device = Device::create_for_tests(
                    dir.path(),
                    &keystore,
                    id,
                    pieper_wire::Role::Huisarts,
                )
                .expect("device");
                (dir, device)
            },
            |(_dir, device)| black_box(device.import_roster(roster.clone(), true).expect("import")),
            BatchSize::PerIteration,
        )
    });
    let dir = tempfile::tempdir().expect("dir");
    let keystore = FileKeyStore::in_dir(dir.path()).expect("keystore");
    let id = MemberId::new("linde", "bakker", "tablet").expect("id");
    let device = Device::create_for_tests(dir.path(), &keystore, id, pieper_wire::Role::Huisarts)
        .expect("device");
    device.import_roster(roster.clone(), true).expect("import");
    device.import_consent(history.clone()).expect("history");
    group.bench_function("figures from the device store", |b| {
        b.iter(|| {
            black_box(
                device
                    .consent_figures(ConsentKind::LspSharing)
                    .expect("figures"),
            )
        })
    });
    group.finish();
}

/// The dashboard over a store of 10,000 received messages in 100
/// conversations (a tenth unread, some urgent) and 1,000 tasks.
fn dashboard(c: &mut Criterion) {
    use pieper_core::{Assignee, NewTask, PatientRef};
    let (sender, _s) = device("sender");
    let (reader, _r) = device("reader");
    let mut conversations = Vec::new();
    for i in 0..100 {
        let patient = (i % 2 == 0).then(|| PatientRef::new(&format!("his:{i}")).expect("patient"));
        let conv = sender
            .create_conversation(&format!("c{i}"), ConversationKind::Group, patient)
            .expect("conversation");
        let kp = reader.key_packages(1).expect("key package");
        let out = sender.add_members(&conv.id, &kp).expect("add");
        let details = sender.commit_accepted(&conv.id).expect("merge");
        reader
            .receive(&out.welcome.expect("welcome"))
            .expect("join");
        for d in details {
            reader.receive(&d.payload).expect("details");
        }
        conversations.push(conv.id);
    }
    for (i, conv) in conversations.iter().enumerate() {
        let envelopes: Vec<Vec<u8>> = (0..100)
            .map(|j| {
                let message = if j % 50 == 0 {
                    NewMessage::urgent(format!("spoed {i}/{j}"))
                } else {
                    NewMessage::text(format!("bericht {i}/{j}"))
                };
                sender.send(conv, message).expect("send").payload
            })
            .collect();
        let received = reader.receive_batch(&envelopes).expect("batch");
        let ids: Vec<String> = received
            .into_iter()
            .filter_map(|r| match r {
                Ok(pieper_core::Received::Message(m)) => Some(m.id),
                _ => None,
            })
            .collect();
        // Nine tenths read.
        reader.mark_read_here(conv, &ids[89]).expect("read");
        for t in 0..10 {
            let task = NewTask {
                what: format!("taak {i}/{t}"),
                assignee: Assignee::User("reader".into()),
                due: Some(format!("2026-12-{:02}", 1 + (t % 28))),
                from_message: None,
                follow_up: None,
            };
            reader.create_task(conv, task).expect("task");
        }
    }
    let mut group = c.benchmark_group("dashboard");
    group.sample_size(20);
    group.bench_function("10,000 messages, 1,000 tasks", |b| {
        b.iter(|| {
            let d = reader.dashboard().expect("dashboard");
            assert_eq!(d.unread.len(), 100);
            black_box(d)
        })
    });
    group.finish();
}

/// A device that was off while 1,000 of its 10,000 messages expired opens:
/// the purge (markers, attachment files, receipts) and the search index
/// merge happen before anything is shown.
fn expiry_on_open(c: &mut Criterion) {
    let (dev, template) = device("expiring");
    let conv = dev
        .create_conversation("10k", ConversationKind::Group, None)
        .expect("conversation");
    for i in 0..10_000 {
        let message = NewMessage::text(format!("bericht {i} over de patiënt"));
        let message = if i % 10 == 0 {
            message.disappearing(1)
        } else {
            message
        };
        dev.send(&conv.id, message).expect("send");
    }
    drop(dev);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut group = c.benchmark_group("housekeeping");
    group.sample_size(10);
    group.bench_function("open with 1,000 of 10,000 messages expired", |b| {
        b.iter_batched(
            || {
                let copy = tempfile::tempdir().expect("temp dir");
                for entry in std::fs::read_dir(template.path()).expect("template") {
                    let entry = entry.expect("entry");
                    std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy");
                }
                copy
            },
            |copy| {
                let keystore = FileKeyStore::in_dir(copy.path()).expect("keystore");
                let dev = Device::open(copy.path(), &keystore).expect("open");
                let report = dev.housekeeping().expect("report");
                assert_eq!(report.expired_total, 1_000);
                black_box((dev, copy))
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    expiry_on_open,
    dashboard,
    mls_round_trip,
    attachment_sealing,
    open_and_read_newest,
    consent_roster
);
criterion_main!(benches);
