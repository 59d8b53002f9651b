//! The patient's rights under the AVG: access (inzage) — everything this
//! device's chat holds about one patient, as a readable PDF and as a FHIR R4
//! Bundle, nothing of anyone else — and erasure of the chat content about
//! them, with what must be kept and why.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::{
    error::Result,
    fhir::{rfc3339, stable_uuid},
    model::{Message, PatientRef},
    store::{StoreError, queries},
};

/// Where this device keeps a sealed attachment (`None` for an id that is
/// not a plain blob id: nothing outside the folder is ever touched).
pub(crate) fn attachment_path(dir: &Path, blob_id: &str) -> Option<PathBuf> {
    let plain = !blob_id.is_empty()
        && blob_id.len() <= 64
        && blob_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    plain.then(|| dir.join("attachments").join(blob_id))
}

/// What an access request (inzage) produced.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PatientExport {
    /// The readable document (PDF 1.7).
    pub pdf: Vec<u8>,
    /// The same as a FHIR R4 Bundle (JSON): Patient, Communication per
    /// message, Task, Consent and AuditEvent resources.
    pub fhir_bundle: String,
    /// Conversations about the patient on this device.
    pub conversations: u32,
    /// Messages in them (expired ones as markers only).
    pub messages: u32,
    /// Attachments included.
    pub attachments: u32,
    /// Tasks about the patient.
    pub tasks: u32,
    /// Consent changes in the patient's history.
    pub consent_changes: u32,
    /// Access log events about the patient.
    pub access_events: u32,
}

/// What must stay after an erasure, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Kept {
    /// What is kept.
    pub what: String,
    /// The legal reason.
    pub why: String,
}

/// What an erasure removed here, and what it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ErasureReport {
    /// The request's id (the same on every device).
    pub request: String,
    /// Conversations whose content was removed.
    pub conversations: u32,
    /// Messages removed.
    pub messages: u32,
    /// Tasks removed.
    pub tasks: u32,
    /// Documentation items removed.
    pub documentation_items: u32,
    /// What stays, and why: never silently.
    pub kept: Vec<Kept>,
    /// The task raised for the huisarts to handle the request in the HIS.
    pub his_task: Option<String>,
}

/// What every erasure keeps.
pub(crate) fn kept() -> Vec<Kept> {
    vec![
        Kept {
            what: "Het medisch dossier in het HIS".into(),
            why: "WGBO art. 7:454: de huisarts bewaart het dossier 20 jaar; een verzoek tot \
                  vernietiging (art. 7:455) beoordeelt de huisarts in het HIS (taak aangemaakt)."
                .into(),
        },
        Kept {
            what: "Het toegangslogboek (wie, wanneer, welke handeling; geen inhoud)".into(),
            why: "NEN 7513 en art. 32 AVG: toegang tot patiëntgegevens wordt vijf jaar \
                  vastgelegd; ook deze verwijdering staat erin."
                .into(),
        },
        Kept {
            what: "De toestemmingsgeschiedenis (LSP opt-in)".into(),
            why: "Bewijs van de keuze van de patiënt voor uitwisseling via het LSP; nodig zolang \
                  gegevens op grond daarvan zijn gedeeld."
                .into(),
        },
        Kept {
            what: "Markeringen van verwijderde berichten (afzender, tijd, geen inhoud)".into(),
            why: "Samenhang van het gesprek en de audit; zonder inhoud geen patiëntgegevens."
                .into(),
        },
    ]
}

/// The conversations about `patient` on this device.
pub(crate) fn conversations_of(
    conn: &Connection,
    patient: &PatientRef,
) -> Result<Vec<(String, String)>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, title FROM conversations WHERE patient_ref = ?1 ORDER BY created_at",
        )
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map([patient.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(StoreError::from)?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(StoreError::from)?)
}

/// All messages of a conversation, oldest first.
pub(crate) fn all_messages(conn: &Connection, conversation: &str) -> Result<Vec<Message>> {
    let mut messages = queries::recent_messages(conn, conversation, u32::MAX)?;
    messages.sort_by_key(|m| m.sent_at);
    Ok(messages)
}

/// Removes the chat content about `patient` on this device: the messages,
/// tasks and documentation items of its conversations (and spoed posts that
/// repeat them), their attachment files and receipts; the conversations
/// stay as empty, untitled groups. Returns what went.
pub(crate) fn erase(
    conn: &Connection,
    dir: &Path,
    request: &str,
    patient: &PatientRef,
    pseudonym: &str,
    requested_by: &str,
) -> Result<ErasureReport> {
    let conversations = conversations_of(conn, patient)?;
    let mut report = ErasureReport {
        request: request.to_owned(),
        conversations: conversations.len() as u32,
        messages: 0,
        tasks: 0,
        documentation_items: 0,
        kept: kept(),
        his_task: None,
    };
    for (id, _) in &conversations {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, attachments FROM messages WHERE conversation_id = ?1
                 UNION SELECT id, attachments FROM messages WHERE spoed_of_conversation = ?1",
            )
            .map_err(StoreError::from)?;
        let gone: Vec<(String, String)> = stmt
            .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(StoreError::from)?
            .collect::<rusqlite::Result<_>>()
            .map_err(StoreError::from)?;
        for (message, attachments) in &gone {
            super::expiry::remove_attachment_files(dir, attachments);
            conn.execute("DELETE FROM messages WHERE id = ?1", [message])
                .map_err(StoreError::from)?;
        }
        let ids: Vec<String> = gone.into_iter().map(|(m, _)| m).collect();
        super::receipts::forget(conn, &ids)?;
        report.messages += ids.len() as u32;
        report.tasks += conn
            .query_row(
                "SELECT count(DISTINCT task_id) FROM task_changes WHERE conversation_id = ?1",
                [id],
                |r| r.get::<_, u32>(0),
            )
            .map_err(StoreError::from)?;
        conn.execute("DELETE FROM task_changes WHERE conversation_id = ?1", [id])
            .map_err(StoreError::from)?;
        report.documentation_items += conn
            .execute("DELETE FROM doc_items WHERE conversation_id = ?1", [id])
            .map_err(StoreError::from)? as u32;
        conn.execute(
            "DELETE FROM receipts_pending WHERE conversation_id = ?1",
            [id],
        )
        .map_err(StoreError::from)?;
        conn.execute(
            "UPDATE conversations SET title = 'Gewist (AVG-verzoek)', patient_ref = NULL WHERE id = ?1",
            [id],
        )
        .map_err(StoreError::from)?;
    }
    conn.execute(
        "INSERT INTO erasures (id, pseudonym, requested_by, at, removed) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO NOTHING",
        params![request, pseudonym, requested_by, queries::now_ms(), report.messages],
    )
    .map_err(StoreError::from)?;
    conn.execute(
        "UPDATE housekeeping SET erased_total = erased_total + ?1 WHERE id = 1",
        [report.messages],
    )
    .map_err(StoreError::from)?;
    Ok(report)
}

/// Whether this device carried out the request already.
pub(crate) fn erased_before(conn: &Connection, request: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM erasures WHERE id = ?1")
        .map_err(StoreError::from)?
        .exists([request])
        .map_err(StoreError::from)?)
}

/// One exported message as a FHIR `Communication`.
fn communication(
    m: &Message,
    patient_url: &str,
    attachments: &[(crate::model::AttachmentRef, Vec<u8>)],
) -> Result<Value> {
    let mut payload = Vec::new();
    if m.expired {
        payload.push(json!({ "contentString": "[bericht verlopen]" }));
    } else if !m.body.is_empty() {
        payload.push(json!({ "contentString": m.body }));
    }
    for (r, bytes) in attachments {
        use base64::Engine as _;
        payload.push(json!({ "contentAttachment": {
            "contentType": r.mime_type,
            "title": r.name,
            "size": bytes.len(),
            "data": base64::engine::general_purpose::STANDARD.encode(bytes),
        }}));
    }
    let mut c = json!({
        "resourceType": "Communication",
        "id": stable_uuid(&format!("message {}", m.id)),
        "status": "completed",
        "subject": { "reference": patient_url },
        "sent": rfc3339(m.sent_at)?,
        "sender": { "display": m.sender.user },
    });
    if !payload.is_empty() {
        c["payload"] = json!(payload);
    }
    Ok(c)
}

/// What goes into an export, gathered from the store and the server.
pub(crate) struct ExportInput<'a> {
    pub patient: &'a PatientRef,
    pub conversations: Vec<(String, String, Vec<Message>)>,
    pub attachments: Vec<(String, crate::model::AttachmentRef, Vec<u8>)>,
    pub tasks: Vec<crate::tasks::Task>,
    pub consent: Vec<crate::consent::ConsentChange>,
    pub access: Vec<super::AuditEntry>,
    pub made_by: &'a str,
    pub at: i64,
}

/// Builds the FHIR Bundle and the PDF of an export.
pub(crate) fn build(input: &ExportInput<'_>) -> Result<PatientExport> {
    let patient_id = stable_uuid(&format!("patient {}", input.patient.as_str()));
    let patient_url = format!("urn:uuid:{patient_id}");
    let (system, value) = crate::record::patient_identifier(input.patient)?;
    let mut entries = vec![json!({
        "fullUrl": patient_url,
        "resource": {
            "resourceType": "Patient",
            "id": patient_id,
            "identifier": [{ "system": system, "value": value }],
        }
    })];
    let mut messages = 0;
    for (_, _, list) in &input.conversations {
        for m in list {
            let files: Vec<_> = input
                .attachments
                .iter()
                .filter(|(id, _, _)| *id == m.id)
                .map(|(_, r, b)| (r.clone(), b.clone()))
                .collect();
            let c = communication(m, &patient_url, &files)?;
            entries.push(json!({
                "fullUrl": format!("urn:uuid:{}", c["id"].as_str().unwrap_or_default()),
                "resource": c,
            }));
            messages += 1;
        }
    }
    for task in &input.tasks {
        let resource = task.to_fhir()?;
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", resource["id"].as_str().unwrap_or_default()),
            "resource": resource,
        }));
    }
    if !input.consent.is_empty() {
        let consents: Value =
            serde_json::from_str(&crate::consent::consent_to_fhir_bundle(&input.consent)?)
                .map_err(|e| crate::error::Error::invalid("consent", e.to_string()))?;
        if let Some(list) = consents["entry"].as_array() {
            entries.extend(list.iter().cloned());
        }
    }
    for e in &input.access {
        let resource = super::audit::to_fhir(e)?;
        entries.push(json!({
            "fullUrl": format!("urn:uuid:{}", resource["id"].as_str().unwrap_or_default()),
            "resource": resource,
        }));
    }
    let bundle = json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "collection",
        "timestamp": rfc3339(input.at)?,
        "entry": entries,
    });
    let fhir_bundle = serde_json::to_string_pretty(&bundle)
        .map_err(|e| crate::error::Error::invalid("bundle", e.to_string()))?;
    Ok(PatientExport {
        pdf: pdf(input)?,
        fhir_bundle,
        conversations: input.conversations.len() as u32,
        messages,
        attachments: input.attachments.len() as u32,
        tasks: input.tasks.len() as u32,
        consent_changes: input.consent.len() as u32,
        access_events: input.access.len() as u32,
    })
}

/// The export as lines of a readable document.
fn lines(input: &ExportInput<'_>) -> Result<Vec<(bool, String)>> {
    let time = |ms: i64| rfc3339(ms).unwrap_or_else(|_| ms.to_string());
    let mut out: Vec<(bool, String)> = vec![
        (true, "Inzage: wat de praktijkchat over u bewaart".into()),
        (false, format!("Patiënt: {}", input.patient.as_str())),
        (
            false,
            format!("Opgesteld: {} door {}", time(input.at), input.made_by),
        ),
        (
            false,
            "Het medisch dossier zelf staat in het HIS en is geen deel van dit overzicht.".into(),
        ),
        (false, String::new()),
    ];
    out.push((true, format!("Gesprekken ({})", input.conversations.len())));
    for (_, title, messages) in &input.conversations {
        out.push((true, format!("Gesprek: {title}")));
        for m in messages {
            let body = if m.expired {
                "[bericht verlopen]".to_owned()
            } else {
                m.body.clone()
            };
            out.push((
                false,
                format!("{} {}: {}", time(m.sent_at), m.sender.user, body),
            ));
            for a in &m.attachments {
                out.push((
                    false,
                    format!(
                        "    bijlage: {} ({}, {} bytes)",
                        a.name, a.mime_type, a.key.size
                    ),
                ));
            }
        }
    }
    out.push((false, String::new()));
    out.push((true, format!("Taken ({})", input.tasks.len())));
    for t in &input.tasks {
        out.push((false, format!("{} [{:?}]", t.what, t.state)));
    }
    out.push((false, String::new()));
    out.push((
        true,
        format!("Toestemming (LSP) ({} wijzigingen)", input.consent.len()),
    ));
    for c in &input.consent {
        out.push((
            false,
            format!(
                "{} {:?}: {:?} ({})",
                time(c.recorded_at),
                c.kind,
                c.status,
                c.recorded_by
            ),
        ));
    }
    out.push((false, String::new()));
    out.push((
        true,
        format!("Toegangslogboek ({} gebeurtenissen)", input.access.len()),
    ));
    for e in &input.access {
        let ev = &e.event;
        out.push((
            false,
            format!(
                "{} {} ({}) {} {}",
                time(ev.at),
                ev.user_id.as_deref().unwrap_or("-"),
                ev.role.as_deref().unwrap_or("-"),
                ev.action,
                ev.outcome
            ),
        ));
    }
    Ok(out)
}

/// A character in WinAnsiEncoding (Windows-1252), '?' where it has none.
fn win_ansi(c: char) -> u8 {
    match c as u32 {
        0x20..=0x7e | 0xa0..=0xff => c as u32 as u8,
        0x20ac => 0x80,
        0x2018 => 0x91,
        0x2019 => 0x92,
        0x201c => 0x93,
        0x201d => 0x94,
        0x2013 => 0x96,
        0x2014 => 0x97,
        0x2026 => 0x85,
        _ => b'?',
    }
}

/// Wraps a line at `width` characters.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let rest: String = line.chars().skip(width).collect();
            out.push(line.chars().take(width).collect());
            line = rest;
        }
    }
    out.push(line);
    out
}

/// The export as a PDF: A4 pages of Helvetica text.
fn pdf(input: &ExportInput<'_>) -> Result<Vec<u8>> {
    use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
    const TOP: f32 = 800.0;
    const BOTTOM: f32 = 50.0;
    const LEADING: f32 = 13.0;
    let mut rows: Vec<(bool, String)> = Vec::new();
    for (heading, text) in lines(input)? {
        for part in wrap(&text, if heading { 70 } else { 95 }) {
            rows.push((heading, part));
        }
    }
    let per_page = ((TOP - BOTTOM) / LEADING) as usize;
    let pages: Vec<&[(bool, String)]> = rows.chunks(per_page.max(1)).collect();
    let mut pdf = Pdf::new();
    let (catalog, tree, font, bold, info) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    pdf.catalog(catalog).pages(tree);
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(10 + 2 * i as i32))
        .collect();
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    for (i, rows) in pages.iter().enumerate() {
        let (page_id, content_id) = (page_ids[i], Ref::new(11 + 2 * i as i32));
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, 595.0, 842.0));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"F1"), font);
        fonts.pair(Name(b"F2"), bold);
        fonts.finish();
        resources.finish();
        page.finish();
        let mut content = Content::new();
        content.begin_text();
        content.next_line(50.0, TOP);
        for (heading, text) in rows.iter() {
            content.set_font(
                Name(if *heading { b"F2" } else { b"F1" }),
                if *heading { 12.0 } else { 9.5 },
            );
            let bytes: Vec<u8> = text.chars().map(win_ansi).collect();
            content.show(Str(&bytes));
            content.next_line(0.0, -LEADING);
        }
        content.end_text();
        pdf.stream(content_id, &content.finish());
    }
    for (id, name) in [(font, &b"Helvetica"[..]), (bold, &b"Helvetica-Bold"[..])] {
        pdf.type1_font(id)
            .base_font(Name(name))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    pdf.document_info(info)
        .title(TextStr("Inzage praktijkchat"))
        .producer(TextStr("Pieper"));
    Ok(pdf.finish())
}
