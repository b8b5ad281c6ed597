//! `bench embed`: the DINOv2 port against transformers on the same weights
//! and inputs (images per second and peak memory, ViT-S/14 and ViT-B/14 at
//! 518 with random weights of the real sizes, batch 1, 8 and 32), and how
//! well the classic descriptor and a DINOv2 model find products: recall@1 of
//! frames filmed again (other angles, other light) against the first filming.
//!
//! Each speed figure is its own process (`dinov2-bench` beside this binary,
//! `vision/python/bench_dinov2.py`), so its peak resident memory is its own.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, bail};
use buybuddy_worker::{
    embed::{ClassicEmbedder, Embedder, Subject, cosine},
    media::synthetic::KINDS,
    postprocess,
};
use serde::Deserialize;

use crate::config::DbArgs;

#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Model sizes (small = ViT-S/14, base = ViT-B/14), random weights.
    #[arg(long, value_delimiter = ',', default_value = "small,base")]
    sizes: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    batches: Vec<usize>,
    /// Seconds each setting runs for (at least two batches).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// `cpu`, or `cuda` (then with fp16 autocast on both sides).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// The DINOv2 folder the retrieval comparison uses (real weights give
    /// real figures); the random ViT-S/14 when unset.
    #[arg(long)]
    retrieval_model: Option<PathBuf>,
    /// Products in the retrieval comparison (scenes of every kind in turn).
    #[arg(long, default_value_t = 32)]
    retrieval_products: usize,
    /// Skip the speed comparison.
    #[arg(long)]
    no_speed: bool,
    /// Skip the retrieval comparison.
    #[arg(long)]
    no_retrieval: bool,
    #[arg(long, default_value = ".data/torch/bin/python")]
    python: PathBuf,
}

#[derive(Debug, Deserialize)]
struct Speed {
    images_per_s: f64,
    peak_rss_mb: f64,
    #[serde(default)]
    peak_gpu_mb: Option<f64>,
}

fn script(name: &str) -> anyhow::Result<PathBuf> {
    [
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("vision/python")
            .join(name),
        PathBuf::from("vision/python").join(name),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .with_context(|| format!("vision/python/{name} is missing: run from the repository"))
}

/// A random DINOv2 folder of this size, made once.
async fn model_folder(args: &EmbedArgs, size: &str) -> anyhow::Result<PathBuf> {
    let folder = args
        .db
        .data_dir
        .join("bench/embed")
        .join(format!("dinov2-{size}-random"));
    if folder.join("model.safetensors").is_file() {
        return Ok(folder);
    }
    println!("making {} (random weights)", folder.display());
    let status = tokio::process::Command::new(&args.python)
        .arg(script("make_dinov2.py")?)
        .args(["--size", size, "--out"])
        .arg(&folder)
        .status()
        .await?;
    if !status.success() {
        bail!("making the {size} model failed");
    }
    Ok(folder)
}

async fn measure(mut command: tokio::process::Command, what: &str) -> anyhow::Result<Speed> {
    let output = command
        .output()
        .await
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("{what} printed no figures"))?;
    Ok(serde_json::from_str(line)?)
}

pub async fn run(args: EmbedArgs) -> anyhow::Result<()> {
    let half = args.device.starts_with("cuda");
    if !args.no_speed {
        let ours = std::env::current_exe()?
            .parent()
            .context("no folder for this binary")?
            .join("dinov2-bench");
        anyhow::ensure!(
            ours.is_file(),
            "{} is missing: build it with `cargo build -p buybuddy-vision --bin dinov2-bench` (same profile)",
            ours.display()
        );
        println!(
            "DINOv2 at 518x518 on {}{}, {} s per setting; ours (tch) and transformers from Python, same weights and inputs",
            args.device,
            if half { " (fp16 autocast)" } else { " (fp32)" },
            args.seconds
        );
        println!();
        println!(
            "| model | batch | ours img/s | transformers img/s | ours / transformers | ours peak MB | transformers peak MB |"
        );
        println!("|---|---|---|---|---|---|---|");
        for size in &args.sizes {
            let folder = model_folder(&args, size).await?;
            for &batch in &args.batches {
                let common = |c: &mut tokio::process::Command| {
                    c.arg("--model")
                        .arg(&folder)
                        .args(["--batch", &batch.to_string()])
                        .args(["--seconds", &args.seconds.to_string()])
                        .args(["--device", &args.device]);
                    if half {
                        c.arg("--half");
                    }
                };
                let mut command = tokio::process::Command::new(&ours);
                common(&mut command);
                let mine = measure(command, "dinov2-bench").await?;
                let mut command = tokio::process::Command::new(&args.python);
                command.arg(script("bench_dinov2.py")?);
                common(&mut command);
                let theirs = measure(command, "bench_dinov2.py").await?;
                let memory = |s: &Speed| match s.peak_gpu_mb {
                    Some(gpu) => format!("{:.0} (GPU {gpu:.0})", s.peak_rss_mb),
                    None => format!("{:.0}", s.peak_rss_mb),
                };
                println!(
                    "| ViT-{}/14 | {batch} | {:.2} | {:.2} | {:.2}x | {} | {} |",
                    if size == "small" { "S" } else { "B" },
                    mine.images_per_s,
                    theirs.images_per_s,
                    mine.images_per_s / theirs.images_per_s,
                    memory(&mine),
                    memory(&theirs)
                );
            }
        }
        println!();
    }
    if args.no_retrieval {
        return Ok(());
    }
    retrieval(&args).await
}

/// Gallery: even frames of each product's scene; queries: odd frames of the
/// same scene with other light and sensor noise. A query counts when its
/// nearest gallery frame is of its product.
async fn retrieval(args: &EmbedArgs) -> anyhow::Result<()> {
    let products = args.retrieval_products.max(2);
    let per_product = 6usize;
    let mut gallery = Vec::new();
    let mut queries = Vec::new();
    for p in 0..products {
        let kind = KINDS[p % KINDS.len()];
        let scene = buybuddy_worker::media::synthetic::Scene {
            width: 480,
            height: 360,
            frames: 2 * per_product,
            ..kind.scene(1000 + p as u64)
        };
        let refilmed = buybuddy_worker::media::synthetic::Scene {
            lighting: (scene.lighting + 0.25).min(0.6),
            noise: scene.noise + 4.0,
            ..scene.clone()
        };
        for i in 0..2 * per_product {
            let (frame, mask) = if i % 2 == 0 {
                scene.render(i)
            } else {
                refilmed.render(i)
            };
            let Some(processed) =
                postprocess::process(&frame, &mask, &postprocess::Options::default())
            else {
                continue;
            };
            let image = image::load_from_memory(&processed.image)?.to_rgb8();
            let mask = image::load_from_memory(&processed.mask)?.to_luma8();
            if i % 2 == 0 {
                gallery.push((p, image, mask));
            } else {
                queries.push((p, image, mask));
            }
        }
    }
    println!(
        "retrieval: {products} products, {} gallery frames, {} queries (other angles, other light and noise)",
        gallery.len(),
        queries.len()
    );
    println!();
    println!("| embedder | dims | recall@1 | ms per image |");
    println!("|---|---|---|---|");
    let classic: Box<dyn Embedder> = Box::new(ClassicEmbedder::default());
    recall(
        classic.as_ref(),
        "classic descriptor",
        &gallery,
        &queries,
        false,
    )?;
    #[cfg(feature = "sam3")]
    {
        let folder = match &args.retrieval_model {
            Some(folder) => folder.clone(),
            None => model_folder(args, "small").await?,
        };
        let device = args.device.parse().map_err(anyhow::Error::msg)?;
        let model = buybuddy_worker::embed::Dinov2Embedder::load(
            &folder,
            buybuddy_vision::Dinov2Options {
                device,
                batch_size: 8,
                half: args.device.starts_with("cuda"),
            },
        )?;
        let label = if args.retrieval_model.is_some() {
            format!("DINOv2 {}", model.info().name)
        } else {
            "DINOv2 ViT-S/14, random weights".to_owned()
        };
        recall(&model, &label, &gallery, &queries, true)?;
    }
    Ok(())
}

type Sample = (usize, image::RgbImage, image::GrayImage);

fn recall(
    embedder: &dyn Embedder,
    label: &str,
    gallery: &[Sample],
    queries: &[Sample],
    without_masks: bool,
) -> anyhow::Result<()> {
    let embed = |samples: &[Sample]| {
        let subjects: Vec<Subject<'_>> = samples
            .iter()
            .map(|(_, image, mask)| Subject {
                image,
                mask: (!without_masks).then_some(mask),
            })
            .collect();
        embedder.embed(&subjects)
    };
    let started = Instant::now();
    let g = embed(gallery)?;
    let q = embed(queries)?;
    let ms = started.elapsed().as_secs_f64() * 1000.0 / (gallery.len() + queries.len()) as f64;
    let mut hits = 0;
    for (i, query) in q.iter().enumerate() {
        let best = g
            .iter()
            .enumerate()
            .max_by(|a, b| cosine(query, a.1).total_cmp(&cosine(query, b.1)))
            .map(|(j, _)| gallery[j].0);
        hits += usize::from(best == Some(queries[i].0));
    }
    println!(
        "| {label} | {} | {:.3} | {ms:.1} |",
        embedder.info().dims,
        hits as f64 / queries.len().max(1) as f64
    );
    Ok(())
}
