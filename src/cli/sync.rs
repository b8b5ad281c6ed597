//! `buybuddy sync`: the Buybuddy catalog into the database, and video jobs for
//! the products not processed yet.

use std::io::Write;

use anyhow::Context;

use crate::{
    config::{BuybuddyArgs, DbArgs},
    queue::DEFAULT_QUEUE,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    api: BuybuddyArgs,
    /// Queue video jobs for unprocessed products that have none queued or running.
    #[arg(long)]
    enqueue: bool,
    /// Queue to push to.
    #[arg(long, env = "BUYBUDDY_QUEUE", default_value = DEFAULT_QUEUE)]
    queue: String,
    /// Print the whole report as JSON instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Unprocessed products listed by name in the summary; the rest are counted.
const SHOWN: usize = 20;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.api.client()?.context(
        "the Buybuddy API is not configured: set BUYBUDDY_API_URL, BUYBUDDY_USERNAME and BUYBUDDY_PASSWORD",
    )?;
    let (_, pool) = super::open_database(&args.db, &[]).await?;
    eprintln!("listing the catalog of {}", client.base_url());
    let report =
        crate::actions::sync::sync(&pool, &client, &args.queue, args.enqueue, |page, pages| {
            eprint!("\r  page {page} of {pages}");
            let _ = std::io::stderr().flush();
        })
        .await;
    eprintln!();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} products listed in {} pages ({} items left out: no barcode, no video, or listed twice)",
        report.listed, report.pages, report.skipped
    );
    println!(
        "catalog: {} new, {} changed, {} unchanged",
        report.stored.new, report.stored.changed, report.stored.unchanged
    );
    if !report.unusable_barcodes.is_empty() {
        println!(
            "{} barcodes cannot be processed (letters, digits, '-', '_' and '.' only): {}",
            report.unusable_barcodes.len(),
            report.unusable_barcodes.join(", ")
        );
    }
    println!(
        "{} unprocessed (no product and no completed job), {} of them with a job queued or running",
        report.unprocessed.len(),
        report.in_progress()
    );
    for product in report.unprocessed.iter().take(SHOWN) {
        let note = if product.in_progress {
            "  [queued or running]"
        } else if product.last_failed {
            "  [last job failed]"
        } else {
            ""
        };
        println!(
            "  {:<16} {}{note}",
            product.barcode,
            product.name.as_deref().unwrap_or("(no name)")
        );
    }
    if report.unprocessed.len() > SHOWN {
        println!(
            "  ... and {} more (--json lists them all)",
            report.unprocessed.len() - SHOWN
        );
    }
    if args.enqueue {
        println!("enqueued {} video jobs", report.enqueued.len());
    } else if report.unprocessed.iter().any(|u| !u.in_progress) {
        println!("run again with --enqueue to queue video jobs for them");
    }
    Ok(())
}
