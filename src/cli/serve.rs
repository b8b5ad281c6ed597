//! `buybuddy serve`: the web server.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;

use crate::{
    config::{BuybuddyArgs, DbArgs, StorageArgs},
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

    /// Address the server listens on.
    #[arg(long, env = "BUYBUDDY_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,

    /// Queue that jobs created from the UI and the API go to.
    #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
    queue: String,

    /// Largest video accepted as an upload on the Jobs page, e.g. `2GiB`.
    #[arg(long, env = "BUYBUDDY_MAX_UPLOAD", default_value = "2GiB", value_parser = crate::config::parse_bytes)]
    max_upload: u64,
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
    tracing::info!(database = %target.describe(), "serving on http://{address}");
    let state = AppState(Arc::new(App {
        pool,
        hub,
        queue: args.queue,
        storage,
        max_upload: args.max_upload,
        catalog: args.api.client()?.map(Arc::new),
        dashboard: Default::default(),
    }));
    web::serve(listener, state, shutdown).await
}
