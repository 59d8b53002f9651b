//! The dashboard query: what the app opens with, in order.

mod common;

use common::{TestDevice, add, deliver};
use pieper_core::{
    Assignee, ConversationKind, NewMessage, NewTask, PatientRef, Received, TaskState,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn the_dashboard_puts_urgent_first_then_tasks_documentation_and_unread() -> TestResult {
    let arts = TestDevice::new("jansen", "desktop")?;
    let poh = TestDevice::new("devries", "laptop")?;
    let patient = PatientRef::new("his:1001")?;
    let with_poh = |title: &str,
                    kind: ConversationKind,
                    patient: Option<PatientRef>|
     -> Result<pieper_core::Conversation, Box<dyn std::error::Error>> {
        let c = arts.create_conversation(title, kind, patient)?;
        add(&arts, &c.id, &[&poh], &[])?;
        Ok(c)
    };
    let about = with_poh("Mw. Smit", ConversationKind::Group, Some(patient.clone()))?;
    let topic = with_poh("Rooster", ConversationKind::Group, None)?;
    let spoed = with_poh("Spoed", ConversationKind::Spoed, None)?;

    let send =
        |conversation: &str, message: NewMessage| -> Result<String, Box<dyn std::error::Error>> {
            let out = arts.send(conversation, message)?;
            arts.mark_sent(&out.id)?;
            deliver(&out, &[&poh])?;
            Ok(out.id)
        };
    send(&topic.id, NewMessage::text("Wie ruilt vrijdag?"))?;
    send(&about.id, NewMessage::text("INR 4,1"))?;
    let urgent = send(&about.id, NewMessage::urgent("Bel mw. Smit vandaag"))?;
    let alarm = send(
        &spoed.id,
        NewMessage::urgent("Pijn op de borst in de wachtkamer"),
    )?;
    // A task for the POH (no session here: tasks for the user count).
    let task = arts.create_task(
        &about.id,
        NewTask {
            what: "INR herhalen".into(),
            assignee: Assignee::User("devries".into()),
            due: Some("2026-12-04".into()),
            from_message: None,
            follow_up: None,
        },
    )?;
    let out = arts.next_outgoing()?.ok_or("no task envelope")?;
    arts.mark_sent(&out.id)?;
    assert!(matches!(
        deliver(&out, &[&poh])?[0],
        Received::TaskChanged(_)
    ));
    // The POH marks one of their own messages for the record.
    let own = poh.send(&about.id, NewMessage::for_record("RR 150/95"))?;
    poh.mark_sent(&own.id)?;

    let d = poh.dashboard()?;
    // Spoed posts (made in the practice's spoed channel) are covered end to
    // end; here the urgent messages come newest first.
    assert!(d.spoed.is_empty());
    assert_eq!(
        d.urgent.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [alarm.as_str(), urgent.as_str()]
    );
    assert_eq!(d.tasks.len(), 1);
    assert_eq!(
        (d.tasks[0].id.as_str(), d.tasks[0].state),
        (task.id.as_str(), TaskState::Requested)
    );
    assert_eq!(
        d.to_document
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        [own.id.as_str()]
    );
    // Grouped by patient or topic, the group with the newest unread first.
    let groups: Vec<(Option<&str>, Option<&str>, u32)> = d
        .unread
        .iter()
        .map(|g| {
            (
                g.patient.as_ref().map(PatientRef::as_str),
                g.topic.as_deref(),
                g.conversations[0].unread,
            )
        })
        .collect();
    assert_eq!(
        groups,
        [
            (None, Some("Spoed"), 1),
            (Some("his:1001"), None, 2),
            (None, Some("Rooster"), 1),
        ]
    );

    // Read up to the urgent message: it leaves the dashboard.
    assert_eq!(poh.mark_read_here(&about.id, &urgent)?, 2);
    let d = poh.dashboard()?;
    assert_eq!(
        d.urgent.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        [alarm.as_str()]
    );
    assert_eq!(d.unread.len(), 2);
    // The author's own view has nothing unread.
    assert!(arts.dashboard()?.unread.is_empty());
    Ok(())
}
