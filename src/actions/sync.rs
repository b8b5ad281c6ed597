//! Syncing the Buybuddy catalog: list it, store it, find the products not yet
//! processed and, if asked, queue video jobs for them. `buybuddy sync` and the
//! Sync page both run this.

use std::collections::BTreeMap;

use anyhow::Context;
use buybuddy_domain::Barcode;
use buybuddy_worker::buybuddy::{Buybuddy, CatalogProduct};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{self, catalog::Unprocessed},
    jobs::{JobSpec, video::Video},
    queue::{self, Enqueue},
};

/// What a sync found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub pages: u32,
    /// Distinct products listed.
    pub listed: usize,
    /// Items without a barcode or a video, or listed twice.
    pub skipped: usize,
    /// Products whose barcode cannot be used (see `Barcode::parse`).
    pub unusable_barcodes: Vec<String>,
    pub stored: db::catalog::Upserted,
    /// Listed products with neither a product row nor a completed job.
    pub unprocessed: Vec<Unprocessed>,
    /// Jobs queued by this sync, by barcode.
    pub enqueued: Vec<(String, Uuid)>,
}

impl Report {
    /// Unprocessed products that already have a job queued or running.
    pub fn in_progress(&self) -> usize {
        self.unprocessed.iter().filter(|u| u.in_progress).count()
    }
}

/// Lists the catalog, stores it, and with `enqueue` queues a video job for each
/// unprocessed product that has none queued or running. Running it twice
/// queues nothing the second time.
pub async fn sync(
    pool: &PgPool,
    client: &Buybuddy,
    queue_name: &str,
    enqueue: bool,
    progress: impl FnMut(u32, u32),
) -> anyhow::Result<Report> {
    let catalog = client
        .list_products(progress)
        .await
        .context("listing the Buybuddy catalog")?;
    let mut report = Report {
        pages: catalog.pages,
        skipped: catalog.skipped,
        ..Report::default()
    };
    // A barcode listed twice keeps its last listing (the API lists newest last).
    let mut by_barcode: BTreeMap<String, CatalogProduct> = BTreeMap::new();
    for product in catalog.products {
        if by_barcode
            .insert(product.barcode.clone(), product)
            .is_some()
        {
            report.skipped += 1;
        }
    }
    report.listed = by_barcode.len();
    let entries: Vec<db::catalog::Entry> = by_barcode
        .into_values()
        .map(|p| db::catalog::Entry {
            barcode: p.barcode,
            name: p.name,
            video_url: p.video_url,
            video_id: p.video_id,
            processed: p.processed,
            raw: p.raw,
        })
        .collect();
    report.stored = db::catalog::upsert(pool, &entries).await?;
    let barcodes: Vec<String> = entries.iter().map(|e| e.barcode.clone()).collect();
    report.unusable_barcodes = barcodes.iter().filter(|b| !usable(b)).cloned().collect();

    if !enqueue {
        report.unprocessed = db::catalog::unprocessed(pool, &barcodes).await?;
        return Ok(report);
    }
    let (unprocessed, enqueued) = enqueue_unprocessed(pool, queue_name, &barcodes).await?;
    report.unprocessed = unprocessed;
    report.enqueued = enqueued;
    Ok(report)
}

/// Queues a video job for each of `barcodes` that is in the catalog,
/// unprocessed, and has no job queued or running, under a lock so that two
/// callers at once cannot both queue one. Returns the unprocessed products as
/// found (before queueing) and the jobs queued.
pub async fn enqueue_unprocessed(
    pool: &PgPool,
    queue_name: &str,
    barcodes: &[String],
) -> anyhow::Result<(Vec<Unprocessed>, Vec<(String, Uuid)>)> {
    let mut tx = pool.begin().await?;
    db::catalog::lock_for_enqueue(&mut tx).await?;
    let unprocessed = db::catalog::unprocessed(&mut *tx, barcodes).await?;
    let chosen: Vec<&Unprocessed> = unprocessed
        .iter()
        .filter(|u| !u.in_progress && usable(&u.barcode))
        .collect();
    let jobs = chosen
        .iter()
        .map(|u| {
            Enqueue::from(JobSpec::Video(Video {
                video_url: u.video_url.clone(),
                barcode: u.barcode.clone(),
                video_id: u.video_id.and_then(|id| i32::try_from(id).ok()),
                frames: None,
                background: None,
            }))
        })
        .collect();
    let ids = queue::enqueue_in(&mut tx, queue_name, jobs).await?;
    tx.commit().await?;
    let enqueued = chosen.iter().map(|u| u.barcode.clone()).zip(ids).collect();
    Ok((unprocessed, enqueued))
}

/// A catalog barcode that the platform can key a product by, exactly as listed.
fn usable(barcode: &str) -> bool {
    Barcode::parse(barcode).is_ok_and(|parsed| parsed.as_str() == barcode)
}
