//! `buybuddy db`: the embedded PostgreSQL cluster used when DATABASE_URL is unset.

use crate::{
    config::DbArgs,
    db::{self, Target},
};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create the cluster if needed and start it.
    Start {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Stop the cluster.
    Stop {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Say whether the cluster runs, and where it keeps its files.
    Status {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the database URL, password included, e.g. for `psql "$(buybuddy db url)"`.
    Url {
        #[command(flatten)]
        db: DbArgs,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Start { db } => {
            let target = Target::resolve(&db).await?;
            println!("running: {}", target.describe());
        }
        Command::Stop { db } => {
            let cluster = db::embedded_cluster(&db)?;
            tokio::task::spawn_blocking(move || cluster.stop()).await??;
            println!("stopped");
        }
        Command::Status { db } => {
            let cluster = db::embedded_cluster(&db)?;
            let files = cluster.pgdata()?;
            let running = {
                let cluster = cluster.clone();
                tokio::task::spawn_blocking(move || cluster.is_running()).await??
            };
            println!(
                "{} on 127.0.0.1:{} (files in {})",
                if running { "running" } else { "not running" },
                cluster.port(),
                files.display()
            );
        }
        Command::Url { db } => {
            let target = Target::resolve(&db).await?;
            println!("{}", target.url.expose());
        }
    }
    Ok(())
}
