//! `buybuddy bench train`: two measurements.
//!
//! - Speed: training steps/s and peak memory of our step (the `train` job's
//!   model, loss and optimiser) against the same step in Python torch
//!   (`vision/python/bench_train.py`: transformers' Dinov2Model from the same
//!   config.json, the same head, sub-center ArcFace, AdamW groups, clipping
//!   and schedule), on the same batch shape, each side in a process of its
//!   own, in the same run: ViT-S/14 at 518 and the tiny preset.
//! - Quality: the tiny preset trained from scratch on seeded synthetic
//!   products (the sample-video generator's scenes, other seeds and kinds),
//!   validation recall@1 / recall@5 / mAP@R on products it never saw, before
//!   and after training, beside the classic descriptor on the same split.

use std::{path::PathBuf, time::Instant};

use anyhow::Context;
use buybuddy_dataset::{augment::Rng, retrieval::Sample};
use buybuddy_worker::{media::synthetic::KINDS, postprocess};
use serde_json::{Value, json};

use crate::training::{self, Examples, RunConfig};

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// The Python with torch and transformers (the torch virtualenv).
    #[arg(long, default_value = ".data/torch/bin/python")]
    python: PathBuf,
    /// Timed steps per side for the small presets (after one warm-up step):
    /// fewer than a few dozen leave the ratio to the machine's noise.
    #[arg(long, default_value_t = 40)]
    steps: usize,
    /// Timed steps per side for ViT-S/14 at 518 (about 10 s each on a
    /// 2-core CPU).
    #[arg(long, default_value_t = 4)]
    vit_s_steps: usize,
    /// Leave out ViT-S/14 at 518 (tens of seconds a step on a CPU).
    #[arg(long)]
    no_vit_s: bool,
    /// Only the speed table.
    #[arg(long)]
    speed_only: bool,
    /// Only the quality table.
    #[arg(long)]
    quality_only: bool,
    /// Synthetic products for the quality run (two thirds train, one third
    /// validation).
    #[arg(long, default_value_t = 60)]
    products: usize,
    /// Frames per product.
    #[arg(long, default_value_t = 16)]
    frames: usize,
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Internal: one side of the speed table in this process
    /// (`preset:p:k:steps`), printed as JSON.
    #[arg(long, hide = true)]
    speed_child: Option<String>,
}

pub async fn run(args: TrainArgs) -> anyhow::Result<()> {
    #[cfg(not(feature = "sam3"))]
    {
        let _ = args;
        anyhow::bail!("this build has no libtorch (the `sam3` feature): nothing to train with")
    }
    #[cfg(feature = "sam3")]
    {
        if let Some(spec) = &args.speed_child {
            return speed_child(spec);
        }
        if !args.quality_only {
            speed(&args).await?;
        }
        if !args.speed_only {
            quality(&args).await?;
        }
        Ok(())
    }
}

/// (preset, P, K) of each speed case.
fn cases(args: &TrainArgs) -> Vec<(&'static str, usize, usize)> {
    let mut cases = vec![("tiny", 8, 4)];
    if !args.no_vit_s {
        cases.push(("vit_s", 2, 2));
    }
    cases
}

#[cfg(feature = "sam3")]
fn speed_child(spec: &str) -> anyhow::Result<()> {
    use buybuddy_vision::{
        tch::{Device, Kind, Tensor},
        train::{Base, Loss, Optimiser, Preset, Setup, Trainer},
    };
    let parts: Vec<&str> = spec.split(':').collect();
    anyhow::ensure!(parts.len() == 4, "--speed-child preset:p:k:steps");
    let preset = Preset::parse(parts[0]).context("unknown preset")?;
    let (p, k, steps): (i64, i64, usize) =
        (parts[1].parse()?, parts[2].parse()?, parts[3].parse()?);
    let setup = Setup {
        classes: p,
        loss: Loss::default(),
        optimiser: Optimiser::default(),
        frozen_blocks: 0,
        head_dim: 128,
        total_steps: steps + 1,
        seed: 0,
    };
    let mut trainer = Trainer::new(&Base::Scratch(preset), setup, Device::Cpu)?;
    let size = trainer.input_size();
    let pixels = Tensor::randn([p * k, 3, size, size], (Kind::Float, Device::Cpu));
    let labels = Tensor::arange(p, (Kind::Int64, Device::Cpu)).repeat_interleave_self_int(
        k,
        None::<i64>,
        None::<i64>,
    );
    trainer.train_step(&pixels, &labels)?;
    let started = Instant::now();
    for _ in 0..steps {
        trainer.train_step(&pixels, &labels)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "steps_per_s": steps as f64 / seconds,
            "images_per_s": (steps as i64 * p * k) as f64 / seconds,
            "peak_rss_mb": super::dataset::peak_rss() as f64 / 1e6,
            "threads": buybuddy_vision::tch::get_num_threads(),
        })
    );
    Ok(())
}

async fn json_of(mut command: tokio::process::Command, what: &str) -> anyhow::Result<Value> {
    let output = command
        .output()
        .await
        .with_context(|| format!("starting {what}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{what} printed {stdout:?}"))
}

#[cfg(feature = "sam3")]
async fn speed(args: &TrainArgs) -> anyhow::Result<()> {
    let python = super::ensure_module(&args.python, "transformers", "transformers==5.23.0").await?;
    let script = super::python_script("bench_train.py")?;
    let exe = std::env::current_exe()?;
    let scratch = tempfile::tempdir()?;
    println!(
        "training step, CPU, random weights, sub-center ArcFace + AdamW, {} timed steps after one \
         warm-up ({} for ViT-S/14); each side in a process of its own",
        args.steps, args.vit_s_steps
    );
    println!();
    println!(
        "| model | batch (P x K) | ours steps/s | torch steps/s | ours / torch | ours peak MB | torch peak MB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (preset, p, k) in cases(args) {
        let steps = if preset == "vit_s" {
            args.vit_s_steps
        } else {
            args.steps
        };
        let config = buybuddy_vision::train::Preset::parse(preset)
            .context("preset")?
            .config();
        let config_path = scratch.path().join(format!("{preset}.json"));
        std::fs::write(&config_path, serde_json::to_string(&config)?)?;
        let mut ours = tokio::process::Command::new(&exe);
        ours.args(["bench", "train", "--speed-child"])
            .arg(format!("{preset}:{p}:{k}:{steps}"));
        let ours = json_of(ours, "our training step").await?;
        let mut theirs = tokio::process::Command::new(&python);
        theirs
            .arg(&script)
            .arg("--config")
            .arg(&config_path)
            .args(["--p", &p.to_string(), "--k", &k.to_string()])
            .args(["--steps", &steps.to_string()]);
        let theirs = json_of(theirs, "bench_train.py").await?;
        let f = |v: &Value, key: &str| v[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} {}px | {p} x {k} | {:.3} | {:.3} | {:.2}x | {:.0} | {:.0} |",
            config.size_name(),
            config.image_size,
            f(&ours, "steps_per_s"),
            f(&theirs, "steps_per_s"),
            f(&ours, "steps_per_s") / f(&theirs, "steps_per_s"),
            f(&ours, "peak_rss_mb"),
            f(&theirs, "peak_rss_mb"),
        );
        eprintln!(
            "  ({preset}: threads ours {}, torch {})",
            ours["threads"], theirs["threads"]
        );
    }
    println!();
    Ok(())
}

/// Seeded synthetic products at the tiny preset's input size.
fn synthetic(products: usize, frames: usize, size: u32) -> anyhow::Result<(Examples, Examples)> {
    let mut train = Examples::default();
    let mut val = Examples::default();
    let cut = products * 2 / 3;
    for p in 0..products {
        let kind = KINDS[p % KINDS.len()];
        let scene = buybuddy_worker::media::synthetic::Scene {
            width: 480,
            height: 360,
            frames,
            ..kind.scene(5000 + p as u64)
        };
        let (set, label) = if p < cut {
            (&mut train, p as u32)
        } else {
            (&mut val, (p - cut) as u32)
        };
        for i in 0..frames {
            let (frame, mask) = scene.render(i);
            let Some(processed) =
                postprocess::process(&frame, &mask, &postprocess::Options::default())
            else {
                continue;
            };
            let image = image::load_from_memory(&processed.image)?.to_rgb8();
            set.push(
                &image,
                size,
                Sample {
                    label,
                    video: label,
                    position: i as u32,
                },
            );
        }
    }
    Ok((train, val))
}

#[cfg(feature = "sam3")]
async fn quality(args: &TrainArgs) -> anyhow::Result<()> {
    use buybuddy_vision::{
        DeviceChoice,
        train::{Base, Preset, Trainer},
    };
    let config = RunConfig {
        epochs: args.epochs,
        ..RunConfig::default()
    };
    let products = args.products.max(6);
    let frames = args.frames;
    let epochs = args.epochs;
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let size = Preset::Tiny.config().image_size as u32;
        let (train, val) = synthetic(products, frames, size)?;
        println!(
            "quality: {} synthetic products ({} train with {} frames, {} validation with {} \
             frames, never seen in training), {size}x{size}, made in {:.1} s",
            products,
            train.classes(),
            train.len(),
            val.classes(),
            val.len(),
            started.elapsed().as_secs_f64()
        );
        println!("protocol: {}", buybuddy_dataset::retrieval::describe(config.window));
        let schedule = training::schedule(&train, &config).map_err(anyhow::Error::msg)?;
        let setup = config.setup(train.classes(), schedule.total_steps());
        let mut trainer = Trainer::new(
            &Base::Scratch(Preset::Tiny),
            setup,
            DeviceChoice::Cpu.resolve()?,
        )?;
        // The run's protocol, and a stricter one that also leaves out the
        // frames three positions either side.
        let strict = 3;
        let classic = training::classic_scores(&val, config.window)?;
        let classic_strict = training::classic_scores(&val, strict)?;
        let before = training::scores(&trainer, &val, config.window)?;
        let before_strict = training::scores(&trainer, &val, strict)?;
        let augmentation = config.augmentation();
        let mut rng = Rng::new(config.seed);
        let started = Instant::now();
        let mut best = before;
        let mut best_strict = before_strict;
        for epoch in 0..epochs {
            let mut loss = 0.0;
            let batches = schedule.sampler.epoch(&mut rng);
            for batch in &batches {
                loss += training::step(&mut trainer, &train, batch, augmentation.as_ref(), config.seed)?
                    .loss;
            }
            let scores = training::scores(&trainer, &val, config.window)?;
            if scores.map_at_r > best.map_at_r {
                best = scores;
                best_strict = training::scores(&trainer, &val, strict)?;
            }
            if (epoch + 1) % 5 == 0 || epoch + 1 == epochs {
                println!(
                    "  epoch {:>3}: loss {:.3}, recall@1 {:.3}, mAP@R {:.3} ({:.0} s)",
                    epoch + 1,
                    loss / batches.len() as f64,
                    scores.recall_at_1,
                    scores.map_at_r,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        println!();
        println!(
            "| embedder | recall@1 | recall@5 | mAP@R | recall@1, window {strict} | mAP@R, window {strict} |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (label, s, t) in [
            ("classic descriptor", classic, classic_strict),
            ("tiny preset, random weights (before training)", before, before_strict),
            ("tiny preset, trained (best epoch by mAP@R)", best, best_strict),
        ] {
            println!(
                "| {label} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
                s.recall_at_1, s.recall_at_5, s.map_at_r, t.recall_at_1, t.map_at_r
            );
        }
        println!(
            "\ntrained {} steps of {} x {} in {:.0} s on the CPU",
            schedule.total_steps(),
            schedule.sampler.batch_size() / config.k,
            config.k,
            started.elapsed().as_secs_f64()
        );
        Ok::<_, anyhow::Error>(())
    })
    .await?
}
