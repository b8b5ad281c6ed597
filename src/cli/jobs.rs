//! `buybuddy jobs`: queue, inspect and cancel jobs from the command line.

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{
    config::DbArgs,
    db::{self, jobs::Cancel},
    jobs::{JobSpec, KINDS},
    queue::{self, DEFAULT_QUEUE, Enqueue},
};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Queue jobs of one kind, e.g. `jobs push sleep millis=500 steps=5 --count 3`.
    Push {
        #[command(flatten)]
        db: DbArgs,
        /// Queue to push to.
        #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
        queue: String,
        /// The job kind.
        kind: String,
        /// The kind's settings as KEY=VALUE (values are read as JSON when they parse).
        settings: Vec<String>,
        /// How many identical jobs to queue.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Attempts before a job fails for good (the kind's default when unset).
        #[arg(long)]
        max_attempts: Option<u32>,
    },
    /// Print a job and its event log as JSON.
    Show {
        #[command(flatten)]
        db: DbArgs,
        id: Uuid,
    },
    /// Cancel a job that has not started, or ask a running one to stop.
    Cancel {
        #[command(flatten)]
        db: DbArgs,
        id: Uuid,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Push {
            db,
            queue,
            kind,
            settings,
            count,
            max_attempts,
        } => {
            let spec = spec(&kind, &settings)?;
            if max_attempts == Some(0) {
                bail!("--max-attempts must be at least 1");
            }
            let (_, pool) = super::open_database(&db, &[]).await?;
            let jobs = (0..count)
                .map(|_| Enqueue {
                    max_attempts,
                    ..Enqueue::from(spec.clone())
                })
                .collect();
            for id in queue::enqueue(&pool, &queue, jobs).await? {
                println!("{id}");
            }
        }
        Command::Show { db, id } => {
            let (_, pool) = super::open_database(&db, &[]).await?;
            let job = db::jobs::get(&pool, id)
                .await?
                .with_context(|| format!("no job {id}"))?;
            let events = db::job_events::for_job(&pool, id).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "job": job, "events": events }))?
            );
        }
        Command::Cancel { db, id } => {
            let (_, pool) = super::open_database(&db, &[]).await?;
            match db::jobs::cancel(&pool, id).await? {
                Cancel::Cancelled => println!("cancelled"),
                Cancel::Requested => {
                    println!("cancellation requested: the job stops at its next stage")
                }
                Cancel::AlreadyEnded(status) => bail!("the job already ended ({status})"),
                Cancel::NotFound => bail!("no job {id}"),
            }
        }
    }
    Ok(())
}

/// Builds a job spec from a kind and KEY=VALUE settings.
fn spec(kind: &str, settings: &[String]) -> anyhow::Result<JobSpec> {
    if !KINDS.contains(&kind) {
        bail!("unknown job kind {kind:?}; kinds are {}", KINDS.join(", "));
    }
    let mut object = Map::new();
    object.insert("kind".into(), Value::String(kind.to_owned()));
    for setting in settings {
        let (key, value) = setting
            .split_once('=')
            .with_context(|| format!("expected KEY=VALUE, not {setting:?}"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        object.insert(key.to_owned(), value);
    }
    serde_json::from_value(Value::Object(object))
        .with_context(|| format!("these settings do not describe a {kind} job"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::sleep::Sleep;

    #[test]
    fn settings_become_a_spec() {
        let sleep = spec("sleep", &["millis=500".into(), "steps=5".into()]).unwrap();
        assert_eq!(
            sleep,
            JobSpec::Sleep(Sleep {
                millis: 500,
                steps: 5
            })
        );
        assert!(spec("nap", &[]).is_err());
        assert!(spec("sleep", &["millis=soon".into()]).is_err());
    }
}
