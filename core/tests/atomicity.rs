//! Every MLS operation is all-or-nothing on disk. A failure is injected at
//! each write of an operation in turn (an SQLite trigger that aborts the N-th
//! write, as a full disk or a crash would); after each failure every table of
//! the store is exactly as before, and the conversation carries on.

mod common;

use std::path::Path;

use common::{TestDevice, TestResult, conversation_with, deliver};
use pieper_core::{KeyStore, NewMessage, Received};
use rusqlite::{Connection, types::ValueRef};
use sha2::{Digest, Sha256};

/// A second connection to a device's store that arms write faults.
struct Faults {
    conn: Connection,
}

const WATCHED: &[&str] = &[
    "openmls_group_data",
    "openmls_encryption_keys",
    "openmls_epoch_keys_pairs",
    "openmls_key_packages",
    "openmls_own_leaf_nodes",
    "openmls_proposals",
    "conversations",
    "members",
    "messages",
    "outbox",
];

impl Faults {
    fn attach(device: &TestDevice) -> Result<Self, Box<dyn std::error::Error>> {
        let wrapped = std::fs::read(device.dir.path().join("pieper.db.key"))?;
        let key = device.keystore()?.unwrap_key(&wrapped)?;
        let conn = Connection::open(device.dir.path().join("pieper.db"))?;
        conn.execute_batch(&format!("PRAGMA key = \"x'{}'\";", hex::encode(key)))?;
        conn.execute_batch("CREATE TABLE IF NOT EXISTS fault_budget (n INTEGER NOT NULL); DELETE FROM fault_budget; INSERT INTO fault_budget VALUES (1000000);")?;
        for table in WATCHED {
            for op in ["INSERT", "DELETE", "UPDATE"] {
                conn.execute_batch(&format!(
                    "CREATE TRIGGER IF NOT EXISTS fault_{table}_{op} BEFORE {op} ON {table} BEGIN
                         UPDATE fault_budget SET n = n - 1;
                         SELECT RAISE(ABORT, 'injected fault') WHERE (SELECT n FROM fault_budget) < 0;
                     END;"
                ))?;
            }
        }
        Ok(Self { conn })
    }

    /// The next operation may write `n` rows; the write after that fails.
    fn arm(&self, n: i64) -> rusqlite::Result<()> {
        self.conn
            .execute("UPDATE fault_budget SET n = ?1", [n])
            .map(|_| ())
    }

    fn disarm(&self) -> rusqlite::Result<()> {
        self.arm(1_000_000)
    }

    /// A digest of every row of every table but the fault budget.
    fn fingerprint(&self) -> rusqlite::Result<Vec<u8>> {
        let mut tables: Vec<String> = self
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'fault_budget' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        tables.sort();
        let mut hasher = Sha256::new();
        for table in tables {
            hasher.update(table.as_bytes());
            let columns = self
                .conn
                .prepare(&format!("SELECT * FROM \"{table}\""))?
                .column_count();
            let order: Vec<String> = (1..=columns).map(|i| i.to_string()).collect();
            let mut stmt = self.conn.prepare(&format!(
                "SELECT * FROM \"{table}\" ORDER BY {}",
                order.join(", ")
            ))?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                for i in 0..columns {
                    match row.get_ref(i)? {
                        ValueRef::Null => hasher.update(b"N"),
                        ValueRef::Integer(v) => hasher.update(v.to_le_bytes()),
                        ValueRef::Real(v) => hasher.update(v.to_le_bytes()),
                        ValueRef::Text(v) | ValueRef::Blob(v) => {
                            hasher.update((v.len() as u64).to_le_bytes());
                            hasher.update(v);
                        }
                    }
                }
            }
        }
        Ok(hasher.finalize().to_vec())
    }
}

/// Runs `op` with a fault at its first write, then its second, and so on,
/// checking after each failure that nothing changed, until it succeeds.
/// Returns the value of the successful run and how many faults it survived.
fn until_it_succeeds<T>(
    faults: &Faults,
    mut op: impl FnMut() -> pieper_core::Result<T>,
) -> Result<(T, i64), Box<dyn std::error::Error>> {
    for n in 0..10_000 {
        let before = faults.fingerprint()?;
        faults.arm(n)?;
        let result = op();
        faults.disarm()?;
        match result {
            Ok(value) => return Ok((value, n)),
            Err(e) => assert_eq!(
                faults.fingerprint()?,
                before,
                "fault at write {n} ({e}) left a partial change"
            ),
        }
    }
    Err("operation never succeeded".into())
}

fn with_faults(device: &TestDevice) -> Result<Faults, Box<dyn std::error::Error>> {
    Faults::attach(device)
}

#[test]
fn interrupted_operations_leave_the_group_as_it_was() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "phone")?;
    let c = TestDevice::new("c", "phone")?;
    let conv = conversation_with(&a, &[&b], "Overleg")?;
    let (fa, fb, fc) = (with_faults(&a)?, with_faults(&b)?, with_faults(&c)?);

    // Committer side: creating the commit, then merging it.
    let kp = c.key_packages(1)?;
    let (out, faults) = until_it_succeeds(&fa, || a.add_members(&conv.id, &kp))?;
    assert!(faults >= 2, "add_members wrote only {faults} rows");
    let (details, faults) = until_it_succeeds(&fa, || a.commit_accepted(&conv.id))?;
    assert!(faults >= 2, "commit_accepted wrote only {faults} rows");

    // Receiving side: a commit, a Welcome, an application message.
    let (got, faults) = until_it_succeeds(&fb, || b.receive(&out.commit))?;
    assert!(matches!(got, Received::Commit { .. }));
    assert!(faults >= 2, "processing a commit wrote only {faults} rows");
    let welcome = out.welcome.clone().ok_or("welcome")?;
    let (joined, faults) = until_it_succeeds(&fc, || c.receive(&welcome))?;
    assert!(matches!(joined, Received::Joined(_)));
    assert!(faults >= 2, "joining wrote only {faults} rows");
    for d in [&b, &c] {
        d.receive(&details[0].payload)?;
    }

    let msg = a.send(&conv.id, NewMessage::text("na de storingen"))?;
    let (got, faults) = until_it_succeeds(&fc, || c.receive(&msg.payload))?;
    assert!(matches!(got, Received::Message(_)));
    assert!(faults >= 2, "receiving a message wrote only {faults} rows");
    let (sent, _) = until_it_succeeds(&fb, || b.send(&conv.id, NewMessage::text("antwoord")))?;

    // All three are in the same epoch and keep talking.
    deliver(&msg, &[&b])?;
    deliver(&sent, &[&a, &c])?;
    let epoch = a.conversation(&conv.id)?.epoch;
    for d in [&b, &c] {
        assert_eq!(d.conversation(&conv.id)?.epoch, epoch);
        assert_eq!(d.members(&conv.id)?.len(), 3);
    }
    assert_eq!(c.messages(&conv.id, 10)?.len(), 2);
    Ok(())
}

#[test]
fn interrupted_removal_and_refusal_leave_nothing_pending() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "phone")?;
    let c = TestDevice::new("c", "phone")?;
    let conv = conversation_with(&a, &[&b, &c], "Overleg")?;
    let fa = with_faults(&a)?;

    let (_, _) = until_it_succeeds(&fa, || a.remove_members(&conv.id, &[c.id().clone()]))?;
    // The server refused it; clearing is interrupted too, then completes.
    let (_, faults) = until_it_succeeds(&fa, || a.commit_refused(&conv.id))?;
    assert!(faults >= 1);
    // Nothing is pending: a new change goes through and is applied by `b`.
    let out = a.remove_members(&conv.id, &[c.id().clone()])?;
    common::accept(&a, &out, &[&b])?;
    assert_eq!(b.members(&conv.id)?.len(), 2);
    let _unused: &Path = a.dir.path();
    Ok(())
}
