//! `buybuddy serve`: the web server.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;

use crate::{
    actions::Intake,
    config::{BuybuddyArgs, DbArgs, EmbedArgs, StorageArgs},
    queue::DEFAULT_QUEUE,
    realtime::Hub,
    web::{self, App, AppState},
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,

    #[command(flatten)]
    storage: StorageArgs,

    #[command(flatten)]
    api: BuybuddyArgs,

    /// The model that embeds search photos, when it is not the serving
    /// model's registered folder (which is loaded on the first search).
    #[command(flatten)]
    embed: EmbedArgs,

    /// Address the server listens on.
    #[arg(long, env = "BUYBUDDY_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,

    /// Queue that jobs created from the UI and the API go to.
    #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
    queue: String,

    /// Largest video accepted as an upload on the Jobs page, e.g. `2GiB`.
    #[arg(long, env = "BUYBUDDY_MAX_UPLOAD", default_value = "2GiB", value_parser = crate::config::parse_bytes)]
    max_upload: u64,

    /// Buckets that `s3://` video addresses from the pages and the API may name
    /// (comma-separated); the storage bucket when unset. Workers read them with
    /// their own credentials, so keep this to buckets people may use.
    #[arg(long, env = "BUYBUDDY_S3_ALLOWED_BUCKETS", value_delimiter = ',')]
    s3_allowed_buckets: Vec<String>,

    /// Accept the probe job kinds (noop, sleep, fail, crash) from the pages and
    /// the API: for testing the queue, never in production.
    #[arg(long, env = "BUYBUDDY_ENABLE_PROBE_JOBS")]
    enable_probe_jobs: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let (target, pool) = super::open_database(&args.db, &[]).await?;
    let storage = args.storage.open(&args.db.data_dir).await?;
    let shutdown = super::shutdown_signal();
    let hub = Hub::start(pool.clone(), shutdown.clone());
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("listening on {}", args.bind))?;
    let address = listener.local_addr()?;
    let buckets = if args.s3_allowed_buckets.is_empty() {
        storage.bucket().map(str::to_owned).into_iter().collect()
    } else {
        args.s3_allowed_buckets
            .iter()
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty())
            .collect()
    };
    if args.enable_probe_jobs {
        tracing::warn!("probe jobs are accepted from the pages and the API (--enable-probe-jobs)");
    }
    tracing::info!(database = %target.describe(), "serving on http://{address}");
    let state = AppState(Arc::new(App {
        pool,
        hub,
        queue: args.queue,
        storage,
        max_upload: args.max_upload,
        catalog: args.api.client()?.map(Arc::new),
        intake: Intake::remote(buckets, args.enable_probe_jobs),
        dashboard: Default::default(),
        embedders: args.embed.open()?,
    }));
    web::serve(listener, state, shutdown).await
}
