//! The command line: one binary, one subcommand per role or tool.

mod bench;
mod dataset;
mod db;
mod doctor;
mod embed;
mod jobs;
mod merchant;
mod serve;
mod shelf;
mod sync;
mod train;
mod user;
mod video;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::DbArgs;

#[derive(Parser, Debug)]
#[command(
    name = "buybuddy",
    version,
    about = "Buybuddy AI Platform: product videos in, reviewed products, training data and embeddings out."
)]
pub struct Cli {
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(
        long,
        env = "BUYBUDDY_LOG_FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server (pages, JSON API, live updates).
    Serve(serve::Args),
    /// Run a worker that takes jobs from the queue.
    Worker(worker::Args),
    /// Create or upgrade the database schema.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check the installation: database, pgvector, schema, storage.
    Doctor(doctor::Args),
    /// Process one product video now, in this process, and print the result as JSON.
    Process(video::ProcessArgs),
    /// Queue one product video for the workers.
    Enqueue(video::EnqueueArgs),
    /// Fetch the Buybuddy catalog, report unprocessed products, and queue them with --enqueue.
    Sync(sync::Args),
    /// Write a sample product video (a box turning on a plain background).
    SampleVideo(video::SampleArgs),
    /// Manage the embedded PostgreSQL cluster (used when DATABASE_URL is unset).
    #[command(subcommand)]
    Db(db::Command),
    /// Queue, inspect and cancel jobs.
    #[command(subcommand)]
    Jobs(jobs::Command),
    /// Manage the people who sign in to the web UI.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(user::TokenCommand),
    /// Queue embed jobs: every product without vectors (--all) or some.
    Embed(embed::EmbedArgs),
    /// The embedding models: list them, make one active.
    #[command(subcommand)]
    Models(embed::ModelsCommand),
    /// Find products like a photo or like a product, and print them as JSON.
    Search(embed::SearchArgs),
    /// Datasets: create, generate versions, export and download.
    #[command(subcommand)]
    Dataset(dataset::Command),
    /// Training runs: start one, follow it, cancel it, use its model for search.
    #[command(subcommand)]
    Train(train::Command),
    /// Real shelf photos: upload them with labels, match and review the
    /// crops, print coverage.
    #[command(subcommand)]
    Shelf(shelf::Command),
    /// Merchants: import their product lists, assign the lines, export.
    #[command(subcommand)]
    Merchant(merchant::Command),
    /// Measure the platform (figures, not tests).
    #[command(subcommand)]
    Bench(bench::Command),
}

/// Parses the command line, runs the command, and turns errors into a message
/// and a failing exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve::run(args).await?,
        Command::Worker(args) => worker::run(args).await?,
        Command::Migrate { db } => {
            let target = crate::db::Target::resolve(&db).await?;
            let pool = crate::db::connect(&target.url, 2, &[]).await?;
            crate::db::schema::migrate(&pool).await?;
            let status = crate::db::schema::status(&pool).await?;
            println!(
                "migrated {}: {} platform and {} queue migrations applied",
                target.describe(),
                status.platform.0,
                status.queue.0
            );
        }
        Command::Doctor(args) => return doctor::run(args).await,
        Command::Process(args) => return video::process(args).await,
        Command::Enqueue(args) => video::enqueue(args).await?,
        Command::Sync(args) => sync::run(args).await?,
        Command::SampleVideo(args) => video::sample_video(args).await?,
        Command::Db(command) => db::run(command).await?,
        Command::Jobs(command) => jobs::run(command).await?,
        Command::User(command) => user::user(command).await?,
        Command::Token(command) => user::token(command).await?,
        Command::Embed(args) => embed::embed(args).await?,
        Command::Models(command) => embed::models(command).await?,
        Command::Search(args) => embed::run_search(args).await?,
        Command::Dataset(command) => dataset::run(command).await?,
        Command::Train(command) => train::run(command).await?,
        Command::Shelf(command) => shelf::run(command).await?,
        Command::Merchant(command) => merchant::run(command).await?,
        Command::Bench(command) => bench::run(command).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,apalis=warn,apalis_core=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// A token that fires on SIGINT or SIGTERM.
/// An action's refusal as the CLI reports it.
pub(crate) fn action(error: crate::actions::ActionError) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

/// Prints a command's result as indented JSON.
pub(crate) fn print(value: serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

pub(crate) fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let fire = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for shutdown signals");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        fire.cancel();
    });
    token
}

/// Resolves the database, opens a pool and checks that the schema is current.
pub(crate) async fn open_database(
    db: &DbArgs,
    settings: &[(&str, String)],
) -> anyhow::Result<(crate::db::Target, sqlx::PgPool)> {
    let target = crate::db::Target::resolve(db).await?;
    let pool = crate::db::connect_configured(db, &target.url, settings).await?;
    crate::db::schema::require_current(&pool).await?;
    Ok((target, pool))
}
