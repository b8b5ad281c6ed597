//! `buybuddy merchant`: merchants and their product lists from the command
//! line: add one, import a list, follow the suggestions, review a line,
//! accept the exact barcode matches, export the assignments (the same
//! actions as the Merchants pages and the API).

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::Context;
use serde_json::json;

use super::{action, print};
use crate::{
    actions::merchants::{self as act, BadLines, Choice, Imported},
    db::{self, merchants::LineFilter},
};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Add a merchant.
    Create {
        #[command(flatten)]
        common: super::dataset::Common,
        code: String,
        #[arg(long)]
        name: String,
    },
    /// The merchants with their progress, as JSON.
    List {
        #[command(flatten)]
        common: super::dataset::Common,
    },
    /// Import a list (CSV). Columns are mapped with --map field=Header
    /// (sku, name, brand, size, barcode, image_url, price), else as the last
    /// import or the header names say. A file with bad lines imports nothing
    /// unless --good-lines; either way the bad lines are printed.
    Import {
        #[command(flatten)]
        common: super::dataset::Common,
        merchant: String,
        file: PathBuf,
        #[arg(long, value_parser = parse_map)]
        map: Vec<(String, String)>,
        #[arg(long)]
        good_lines: bool,
        /// Wait until the suggestions are made.
        #[arg(long)]
        wait: bool,
    },
    /// The next line to review with its suggestions, as JSON.
    Next {
        #[command(flatten)]
        common: super::dataset::Common,
        merchant: String,
        /// unassigned, low_confidence, conflicts or all.
        #[arg(long, default_value = "unassigned")]
        filter: String,
    },
    /// Decide about a line (by its id, or merchant and SKU): assign (with
    /// --product), absent, skip or clear.
    Decide {
        #[command(flatten)]
        common: super::dataset::Common,
        merchant: String,
        sku: String,
        action: String,
        #[arg(long)]
        product: Option<String>,
    },
    /// Accept every exact barcode match whose name also agrees (without
    /// --yes, only count them).
    AcceptBarcodes {
        #[command(flatten)]
        common: super::dataset::Common,
        merchant: String,
        #[arg(long)]
        yes: bool,
    },
    /// Write a sample list made from the directory's products the way
    /// merchants' lists differ (abbreviations, typos, other size spellings,
    /// missing and wrong barcodes), with a few lines of products the
    /// directory lacks and, with --bad, bad lines to see refused.
    Sample {
        #[command(flatten)]
        common: super::dataset::Common,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 100)]
        lines: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Add these many bad lines (no SKU, a repeated SKU, a malformed barcode).
        #[arg(long, default_value_t = 0)]
        bad: usize,
    },
    /// The assignments as CSV or JSON, to a file or standard output.
    Export {
        #[command(flatten)]
        common: super::dataset::Common,
        merchant: String,
        #[arg(long, default_value = "csv")]
        format: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn parse_map(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(f, h)| (f.trim().to_owned(), h.trim().to_owned()))
        .ok_or_else(|| format!("{text:?}: use field=Header, e.g. sku=\"Item code\""))
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let common = match &command {
        Command::Create { common, .. }
        | Command::List { common }
        | Command::Import { common, .. }
        | Command::Next { common, .. }
        | Command::Decide { common, .. }
        | Command::AcceptBarcodes { common, .. }
        | Command::Export { common, .. }
        | Command::Sample { common, .. } => common.clone(),
    };
    let opened = common.open().await?;
    let ctx = opened.ctx();
    match command {
        Command::Create { code, name, .. } => {
            print(json!(act::create(ctx, &code, &name).await.map_err(action)?))?
        }
        Command::List { .. } => {
            let all: Vec<_> = db::merchants::list(&opened.pool)
                .await?
                .into_iter()
                .map(|(m, p)| json!({"merchant": m, "progress": p}))
                .collect();
            print(json!(all))?;
        }
        Command::Import {
            merchant,
            file,
            map,
            good_lines,
            wait,
            ..
        } => {
            let merchant = act::find(ctx, &merchant).await.map_err(action)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let table = act::read_list(&bytes).map_err(action)?;
            let mapping = if map.is_empty() {
                act::offered_mapping(&merchant, &table)
            } else {
                act::mapping_from(&map.into_iter().collect::<BTreeMap<_, _>>()).map_err(action)?
            };
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bad_lines = if good_lines {
                BadLines::ImportGood
            } else {
                BadLines::Refuse
            };
            let outcome = act::import(ctx, &merchant, &name, &table, &mapping, bad_lines, None)
                .await
                .map_err(action)?;
            print(json!({"mapping": mapping, "result": outcome}))?;
            match outcome {
                Imported::BadLines { bad, good } => anyhow::bail!(
                    "nothing imported: {} bad lines (listed above); --good-lines imports the {good} good ones",
                    bad.len()
                ),
                Imported::Imported { jobs, .. } if wait => {
                    for job in jobs {
                        super::shelf::wait_job(&opened.pool, job).await?;
                    }
                }
                Imported::Imported { .. } => {}
            }
        }
        Command::Next {
            merchant, filter, ..
        } => {
            let m = act::find(ctx, &merchant).await.map_err(action)?;
            let filter = LineFilter::parse(&filter)
                .with_context(|| format!("{filter:?} is not a filter"))?;
            let (line, left) = act::next_line(ctx, m.id, filter).await.map_err(action)?;
            print(json!({"next": line, "left": left}))?;
        }
        Command::Decide {
            merchant,
            sku,
            action: what,
            product,
            ..
        } => {
            let m = act::find(ctx, &merchant).await.map_err(action)?;
            let line = db::merchants::line_by_sku(&opened.pool, m.id, &sku)
                .await?
                .with_context(|| format!("{} has no line with SKU {sku:?}", m.code))?;
            let choice = Choice::parse(&what, product.as_deref()).map_err(action)?;
            let decided = act::decide(ctx, line.id, &choice, "cli", None)
                .await
                .map_err(action)?;
            print(json!(decided))?;
        }
        Command::AcceptBarcodes { merchant, yes, .. } => {
            let m = act::find(ctx, &merchant).await.map_err(action)?;
            let n = act::bulk_accept(ctx, m.id, yes, None)
                .await
                .map_err(action)?;
            if yes {
                eprintln!("{}", act::bulk_outcome(n, true));
            } else {
                eprintln!(
                    "{}; run again with --yes to assign them",
                    act::bulk_outcome(n, false)
                );
            }
            print(json!({"lines": n, "accepted": yes}))?;
        }
        Command::Sample {
            out,
            lines,
            seed,
            bad,
            ..
        } => {
            let text = sample_list(&opened.pool, lines, seed, bad).await?;
            std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {}", out.display());
        }
        Command::Export {
            merchant,
            format,
            out,
            ..
        } => {
            let m = act::find(ctx, &merchant).await.map_err(action)?;
            let (_, bytes) = act::export(ctx, &m, &format).await.map_err(action)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &bytes)
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => {
                    use std::io::Write;
                    std::io::stdout().write_all(&bytes)?;
                }
            }
        }
    }
    Ok(())
}

/// A product as a sample list takes it: id, barcode, brand, name, size.
type ProductRow = (
    uuid::Uuid,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A sample list of the directory's products (and 10 % more it lacks).
async fn sample_list(
    pool: &sqlx::PgPool,
    lines: usize,
    seed: u64,
    bad: usize,
) -> anyhow::Result<String> {
    use crate::actions::merchants::sample::{self, Differences, Known};
    let rows: Vec<ProductRow> = sqlx::query_as(
        "SELECT id, barcode, brand_name, product_name, net_quantity FROM products ORDER BY barcode",
    )
    .fetch_all(pool)
    .await?;
    anyhow::ensure!(!rows.is_empty(), "the directory has no products yet");
    let mut products: Vec<Known> = rows
        .into_iter()
        .map(|(id, barcode, brand, name, size)| Known {
            id: Some(id),
            barcode,
            brand: brand.unwrap_or_default(),
            name: name.unwrap_or_default(),
            size: size.unwrap_or_default(),
        })
        .collect();
    let strangers = (products.len() / 10).max(1);
    products.extend(
        sample::synthetic(strangers, 0, seed ^ 0x5eed)
            .into_iter()
            .map(|k| Known { id: None, ..k }),
    );
    let list = sample::list(
        &products,
        lines,
        seed,
        &Differences {
            image: 0.0,
            ..Differences::default()
        },
    );
    let mut text = sample::csv(&list, |_| None);
    let first = list.first().map(|l| l.sku.clone()).unwrap_or_default();
    for i in 0..bad {
        text.push_str(&match i % 3 {
            0 => ",a line without a SKU,,,,\n".to_owned(),
            1 => format!("{first},the same SKU again,,,,\n"),
            _ => format!("BAD{i},a malformed barcode,,,12AB34,\n"),
        });
    }
    Ok(text)
}
