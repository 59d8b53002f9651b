//! `pieper task ...`: tasks from the command line.

use clap::Subcommand;
use pieper_core::{Assignee, Client, NewTask, Task};

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Make a task in a conversation.
    Create {
        /// The conversation id.
        conversation: String,
        /// What is to be done.
        what: String,
        /// For this colleague (user name).
        #[arg(long, conflicts_with = "role")]
        user: Option<String>,
        /// For whoever has this role (poh, assistent, huisarts, ...).
        #[arg(long)]
        role: Option<String>,
        /// By when (YYYY-MM-DD).
        #[arg(long)]
        due: Option<String>,
        /// The message it came from.
        #[arg(long)]
        from_message: Option<String>,
        /// An appointment for the patient to plan (exported as a
        /// ServiceRequest); goes to the assistants unless --user/--role.
        #[arg(long, conflicts_with = "call_back")]
        appointment: bool,
        /// With whom, for --appointment.
        #[arg(long, requires = "appointment")]
        with: Option<String>,
        /// Call the patient back (exported as a CommunicationRequest).
        #[arg(long)]
        call_back: bool,
    },
    /// Take a task on.
    Accept {
        /// The task id.
        id: String,
    },
    /// Mark a task done.
    Complete {
        /// The task id.
        id: String,
    },
    /// Call a task off.
    Cancel {
        /// The task id.
        id: String,
    },
    /// My open tasks (or a conversation's tasks).
    List {
        /// Show this conversation's tasks instead.
        #[arg(long)]
        conversation: Option<String>,
    },
}

fn line(t: &Task) -> String {
    let who = match &t.assignee {
        Assignee::User(u) => format!("user {u}"),
        Assignee::Role(r) => format!("role {r}"),
    };
    format!(
        "{}\t{}\t{}\t{}\tdue {}\t{}",
        t.id,
        t.state.as_str(),
        who,
        t.patient.as_ref().map_or("-", |p| p.as_str()),
        t.due.as_deref().unwrap_or("-"),
        t.what
    )
}

pub(crate) async fn run(
    client: &Client,
    command: TaskCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    match client.sync().await {
        Ok(_) | Err(pieper_core::Error::Network(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let task = match command {
        TaskCommand::Create {
            conversation,
            what,
            user,
            role,
            due,
            from_message,
            appointment,
            with,
            call_back,
        } => {
            let follow_up = if appointment {
                Some(pieper_core::tasks::FollowUp::Appointment { with })
            } else if call_back {
                Some(pieper_core::tasks::FollowUp::CallBack)
            } else {
                None
            };
            let assignee = match (user, role) {
                (Some(name), None) => {
                    let staff = client.colleagues().await?;
                    let id = staff
                        .into_iter()
                        .find(|u| u.username == name)
                        .map(|u| u.id)
                        .ok_or_else(|| format!("no colleague named {name:?}"))?;
                    Assignee::User(id)
                }
                (None, Some(role)) => Assignee::Role(role),
                (None, None) if follow_up.is_some() => Assignee::Role("assistent".into()),
                _ => return Err("give --user or --role".into()),
            };
            let new = NewTask {
                what,
                assignee,
                due,
                from_message,
                follow_up,
            };
            client.tasks().create(&conversation, new).await?
        }
        TaskCommand::Accept { id } => client.tasks().accept(&id).await?,
        TaskCommand::Complete { id } => client.tasks().complete(&id).await?,
        TaskCommand::Cancel { id } => client.tasks().cancel(&id).await?,
        TaskCommand::List { conversation } => {
            let list = match conversation {
                Some(c) => client.tasks().of_conversation(&c)?,
                None => client.tasks().my_open()?,
            };
            for t in &list {
                println!("{}", line(t));
            }
            return Ok(());
        }
    };
    println!("{}", line(&task));
    Ok(())
}
