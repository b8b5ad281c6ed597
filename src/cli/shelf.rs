//! `buybuddy shelf`: real shelf photos from the command line: upload photos
//! with their labels (or a ZIP), list and show them, add boxes, match the
//! crops, review them, and print the coverage figures (the same actions as
//! the Shelves pages and the API).

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use serde_json::json;

use super::{action, print};
use crate::{
    actions::{
        Ctx,
        shelves::{self as act, BoxInput, Decision, PlaceInput, Sent},
    },
    db,
};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Upload shelf photos (JPEG, PNG, WebP), with their YOLO or COCO label
    /// files, or ZIPs of them. Nothing is imported unless every file is fine.
    Upload {
        #[command(flatten)]
        common: super::dataset::Common,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "")]
        store: String,
        #[arg(long, default_value = "")]
        aisle: String,
        /// The day the photos were taken, e.g. 2026-12-07.
        #[arg(long, default_value = "")]
        taken_on: String,
        #[arg(long, default_value = "")]
        notes: String,
    },
    /// The photos, newest first, as JSON.
    List {
        #[command(flatten)]
        common: super::dataset::Common,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// A photo with its boxes, as JSON.
    Show {
        #[command(flatten)]
        common: super::dataset::Common,
        image: i32,
    },
    /// Add a box (pixels of the upright photo).
    Box {
        #[command(flatten)]
        common: super::dataset::Common,
        image: i32,
        #[arg(long)]
        x: i64,
        #[arg(long)]
        y: i64,
        #[arg(long)]
        width: i64,
        #[arg(long)]
        height: i64,
    },
    /// Propose boxes on a photo with SAM 3 (on a worker that has it); with
    /// --wait, until done.
    Propose {
        #[command(flatten)]
        common: super::dataset::Common,
        image: i32,
        /// What to look for (repeatable): "product", or product names.
        #[arg(long)]
        prompt: Vec<String>,
        #[arg(long)]
        min_score: Option<f32>,
        #[arg(long)]
        wait: bool,
    },
    /// Match the crops of these photos (of every photo with unmatched crops
    /// when none is named) with the serving model; with --wait, until done.
    Match {
        #[command(flatten)]
        common: super::dataset::Common,
        images: Vec<i32>,
        #[arg(long)]
        wait: bool,
    },
    /// The next crop to review (of one photo, or of all), as JSON.
    Next {
        #[command(flatten)]
        common: super::dataset::Common,
        #[arg(long)]
        image: Option<i32>,
    },
    /// Review a crop: confirm (with --product, an id or a barcode), absent
    /// (not in the directory), skip, or reopen.
    Review {
        #[command(flatten)]
        common: super::dataset::Common,
        #[arg(name = "box")]
        crop: i64,
        action: String,
        #[arg(long)]
        product: Option<String>,
    },
    /// The coverage figures per product (worst first) and per category, as JSON.
    Coverage {
        #[command(flatten)]
        common: super::dataset::Common,
    },
    /// Write synthetic shelf photos made of the directory's own masked frames
    /// (pasted on shelves over generated backgrounds, scaled and
    /// overlapping), with YOLO labels naming each product by its barcode:
    /// photos to try the Shelves pages with, or to measure matching on.
    Sample {
        #[command(flatten)]
        common: super::dataset::Common,
        /// The folder to write `shelf-NNN.jpg`, `shelf-NNN.txt` and `data.yaml` in.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 4)]
        photos: usize,
        /// Products per photo at most.
        #[arg(long, default_value_t = 8)]
        per_photo: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let common = match &command {
        Command::Upload { common, .. }
        | Command::List { common, .. }
        | Command::Show { common, .. }
        | Command::Box { common, .. }
        | Command::Propose { common, .. }
        | Command::Match { common, .. }
        | Command::Next { common, .. }
        | Command::Review { common, .. }
        | Command::Coverage { common }
        | Command::Sample { common, .. } => common.clone(),
    };
    let opened = common.open().await?;
    let ctx = opened.ctx();
    match command {
        Command::Upload {
            files,
            store,
            aisle,
            taken_on,
            notes,
            ..
        } => {
            let mut sent = Vec::with_capacity(files.len());
            for path in files {
                anyhow::ensure!(path.is_file(), "{} is not a file", path.display());
                sent.push(Sent {
                    name: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path,
                });
            }
            let place = PlaceInput {
                store,
                aisle,
                taken_on,
                notes,
            };
            let report = act::upload(ctx, sent, &place, None).await.map_err(action)?;
            print(json!(report))?;
        }
        Command::List { limit, .. } => print(json!(
            db::shelves::list_images(&opened.pool, limit.clamp(1, 10_000), 0).await?
        ))?,
        Command::Show { image, .. } => print(json!(act::image(ctx, image).await.map_err(action)?))?,
        Command::Box {
            image,
            x,
            y,
            width,
            height,
            ..
        } => {
            let added = act::add_boxes(
                ctx,
                image,
                &[BoxInput {
                    x,
                    y,
                    width,
                    height,
                }],
                "drawn",
                None,
            )
            .await
            .map_err(action)?;
            print(json!(added))?;
        }
        Command::Propose {
            image,
            prompt,
            min_score,
            wait,
            ..
        } => {
            let job = act::propose(ctx, image, &prompt.join("\n"), min_score)
                .await
                .map_err(action)?;
            eprintln!("proposing boxes on photo #{image} (job {job})");
            if wait {
                wait_job(&opened.pool, job).await?;
            }
            print(json!(act::image(ctx, image).await.map_err(action)?))?;
        }
        Command::Match { images, wait, .. } => {
            let ids = (!images.is_empty()).then_some(images);
            let (model, job, count) = act::match_crops(ctx, ids).await.map_err(action)?;
            eprintln!(
                "matching the crops of {count} photos with {} (job {job})",
                model.label()
            );
            if wait {
                wait_job(&opened.pool, job).await?;
            }
            print(json!({"job_id": job, "model": model.label(), "images": count}))?;
        }
        Command::Next { image, .. } => {
            let (item, counts) = act::next_to_review(ctx, image).await.map_err(action)?;
            print(json!({"next": item, "counts": counts}))?;
        }
        Command::Review {
            crop,
            action: what,
            product,
            ..
        } => {
            let decision = Decision::parse(&what, product.as_deref()).map_err(action)?;
            let decided = act::decide(ctx, crop, &decision, None)
                .await
                .map_err(action)?;
            print(json!(decided))?;
        }
        Command::Coverage { .. } => {
            print(json!(act::coverage(ctx, 500).await.map_err(action)?))?;
        }
        Command::Sample {
            out,
            photos,
            per_photo,
            seed,
            ..
        } => {
            let written = sample(ctx, &out, photos, per_photo, seed).await?;
            print(json!({"out": out, "photos": written.0, "boxes": written.1}))?;
        }
    }
    Ok(())
}

/// Pasted products whose visible part is less than this share of them get
/// no label (their crop would be mostly of their neighbours).
const MIN_VISIBLE: f64 = 0.5;

/// Writes synthetic shelf photos with YOLO labels; returns (photos, boxes).
async fn sample(
    ctx: Ctx<'_>,
    out: &std::path::Path,
    photos: usize,
    per_photo: usize,
    seed: u64,
) -> anyhow::Result<(usize, usize)> {
    use buybuddy_dataset::{
        augment::Rng,
        composite::{Cutout, Shelf, compose},
    };
    let selection = db::datasets::Selection {
        statuses: buybuddy_domain::ProductStatus::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        categories: Vec::new(),
        products: Vec::new(),
    };
    let frames = db::datasets::select_frames(ctx.pool, &selection, true).await?;
    let products: Vec<&[db::datasets::SelectedFrame]> = frames
        .chunk_by(|a, b| a.product_id == b.product_id)
        .collect();
    anyhow::ensure!(
        !products.is_empty(),
        "no product has masked frames yet: process some videos first"
    );
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut names = String::from("# Class names: the products' barcodes.\nnames:\n");
    for (i, p) in products.iter().enumerate() {
        names.push_str(&format!(
            "  {i}: {}\n",
            serde_json::to_string(&p[0].barcode)?
        ));
    }
    std::fs::write(out.join("data.yaml"), names)?;
    let mut rng = Rng::new(seed);
    let mut boxes = 0;
    for photo in 0..photos {
        // Distinct products, one random frame of each.
        let mut order: Vec<usize> = (0..products.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        order.truncate(per_photo.clamp(1, 40));
        let mut loaded = Vec::with_capacity(order.len());
        for &p in &order {
            let frame = &products[p][(rng.next_u64() % products[p].len() as u64) as usize];
            let image = ctx.storage.get(&frame.storage_key).await?;
            let mask = ctx
                .storage
                .get(
                    frame
                        .mask_key
                        .as_deref()
                        .context("a masked frame has a mask")?,
                )
                .await?;
            loaded.push((
                image::load_from_memory(&image)?.to_rgb8(),
                image::load_from_memory(&mask)?.to_luma8(),
            ));
        }
        let cutouts: Vec<Cutout<'_>> = loaded
            .iter()
            .map(|(image, mask)| Cutout { image, mask })
            .collect();
        let (image, placed) = compose(&cutouts, &Shelf::default(), rng.next_u64(), &[]);
        let (w, h) = image.dimensions();
        let mut labels = String::new();
        for p in placed.iter().filter(|p| p.visible >= MIN_VISIBLE) {
            let [cx, cy, bw, bh] = p.bbox.normalised(w, h);
            labels.push_str(&format!(
                "{} {cx:.6} {cy:.6} {bw:.6} {bh:.6}\n",
                order[p.source]
            ));
            boxes += 1;
        }
        let stem = out.join(format!("shelf-{photo:03}"));
        std::fs::write(
            stem.with_extension("jpg"),
            buybuddy_worker::media::photo::jpeg(&image, 92),
        )?;
        std::fs::write(stem.with_extension("txt"), labels)?;
    }
    Ok((photos, boxes))
}

/// Waits for a job to end, printing its progress.
pub(super) async fn wait_job(pool: &sqlx::PgPool, id: uuid::Uuid) -> anyhow::Result<()> {
    let mut last = None;
    loop {
        let job = db::jobs::get(pool, id)
            .await?
            .with_context(|| format!("job {id} is gone"))?;
        let now = (job.progress, job.stage.clone());
        if last.as_ref() != Some(&now) {
            eprintln!(
                "{}% {}",
                job.progress,
                job.stage.clone().unwrap_or_default()
            );
            last = Some(now);
        }
        match job.status.as_str() {
            "completed" => return Ok(()),
            "failed" | "cancelled" => anyhow::bail!(
                "job {id} {}: {}",
                job.status,
                job.error_message.unwrap_or_default()
            ),
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}
