//! `sam3-bench`: frames per second of the SAM 3 backend, per batch size.
//!
//!   sam3-bench --model DIR [--device auto] [--batches 1,4,8] [--frames 64]
//!              [--width 1920] [--height 1080] [--warmup 3]
//!
//! Two figures per batch size, one JSON line each on stdout:
//! - `forward`: the TorchScript module alone on preprocessed frames (what
//!   `vision/python/bench_sam3.py` measures from Python on the same module);
//! - `segment`: the whole backend from 8-bit frames of the given size to one
//!   mask per frame (upload, resize, normalise, forward, choose, upsample).
//!
//! Frames are the export's reference pattern, so runs are comparable. This
//! binary links no FFmpeg: it runs on GPU machines with only libtorch.
//!
//!   sam3-bench --model DIR --segment FRAMES_DIR --masks-out DIR [--prompt P]
//!
//! segments a video's decoded frames (PNG files, in name order) instead, writes
//! the masks and prints what it found.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use buybuddy_vision::{
    DeviceChoice, Sam3, Sam3Options, TorchInfo, sam3::reference_frame, select::SelectParams,
};
use tch::{Cuda, Device};

struct Args {
    model: PathBuf,
    device: DeviceChoice,
    batches: Vec<usize>,
    frames: usize,
    width: u32,
    height: u32,
    warmup: usize,
    segment: Option<PathBuf>,
    masks_out: Option<PathBuf>,
    prompt: String,
}

fn parse() -> anyhow::Result<Args> {
    let mut args = Args {
        model: PathBuf::new(),
        device: DeviceChoice::Auto,
        batches: vec![1, 4, 8],
        frames: 64,
        width: 1920,
        height: 1080,
        warmup: 3,
        segment: None,
        masks_out: None,
        prompt: "product".to_owned(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => args.model = value()?.into(),
            "--device" => args.device = value()?.parse().map_err(anyhow::Error::msg)?,
            "--batches" => {
                args.batches = value()?
                    .split(',')
                    .map(|b| b.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--batches takes sizes like 1,4,8")?
            }
            "--frames" => args.frames = value()?.parse()?,
            "--width" => args.width = value()?.parse()?,
            "--height" => args.height = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--segment" => args.segment = Some(value()?.into()),
            "--masks-out" => args.masks_out = Some(value()?.into()),
            "--prompt" => args.prompt = value()?,
            "-h" | "--help" => {
                println!(
                    "sam3-bench --model DIR [--device auto] [--batches 1,4,8] [--frames 64] \
                     [--width 1920] [--height 1080] [--warmup 3]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    if args.model.as_os_str().is_empty() {
        bail!("--model DIR is required (a folder from vision/python/export_sam3.py)");
    }
    Ok(args)
}

fn sync(device: Device) {
    if let Device::Cuda(n) = device {
        Cuda::synchronize(n as i64);
    }
}

fn per_second(frames: usize, took: Duration) -> f64 {
    frames as f64 / took.as_secs_f64()
}

/// This process's peak resident memory in MiB (`VmHWM`), the CPU figure that
/// stands beside the GPU's memory.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = parse()?;
    eprintln!("{}", TorchInfo::probe().summary());
    if let Some(frames) = &args.segment {
        return segment_folder(&args, frames);
    }
    for &batch in &args.batches {
        let model = Sam3::load(
            &args.model,
            Sam3Options {
                device: args.device,
                batch_size: batch,
                // Every frame gets a mask, so the figure includes the upsampling.
                select: SelectParams {
                    min_score: 0.0,
                    ..SelectParams::default()
                },
            },
        )?;
        let device = model.device();
        let frames: Vec<_> = (0..args.frames)
            .map(|_| reference_frame(args.width, args.height))
            .collect();
        let (text, mask) = model.encode_text("product")?;

        let pixels = tch::no_grad(|| model.preprocess(&frames[..batch.min(frames.len())]));
        for _ in 0..args.warmup {
            model.forward(&pixels, &text, &mask)?;
        }
        sync(device);
        let passes = args.frames.div_ceil(batch);
        let started = Instant::now();
        for _ in 0..passes {
            model.forward(&pixels, &text, &mask)?;
        }
        sync(device);
        let forward = per_second(passes * batch, started.elapsed());

        model.segment(&frames[..batch.min(frames.len())], "product")?;
        sync(device);
        let started = Instant::now();
        let masks = model.segment(&frames, "product")?;
        sync(device);
        let segment = per_second(masks.len(), started.elapsed());

        println!(
            "{}",
            serde_json::json!({
                "backend": "rust-tch",
                "model": model.manifest().model,
                "dtype": model.manifest().dtype,
                "device": buybuddy_vision::sam3::device_name(device),
                "batch": batch,
                "frames": args.frames,
                "forward_fps": forward,
                "segment_fps": segment,
                "peak_rss_mib": peak_rss_mib(),
            })
        );
        eprintln!(
            "batch {batch}: forward {forward:.1} frames/s, whole backend {segment:.1} frames/s"
        );
    }
    Ok(())
}

/// Segments decoded frames and writes their masks.
fn segment_folder(args: &Args, folder: &std::path::Path) -> anyhow::Result<()> {
    let out = args
        .masks_out
        .as_ref()
        .context("--segment needs --masks-out DIR")?;
    std::fs::create_dir_all(out)?;
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .with_context(|| format!("reading {}", folder.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "png"));
    paths.sort();
    let frames = paths
        .iter()
        .map(|p| {
            Ok(image::open(p)
                .with_context(|| p.display().to_string())?
                .into_rgb8())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let model = Sam3::load(
        &args.model,
        Sam3Options {
            device: args.device,
            batch_size: args.batches.first().copied().unwrap_or(4),
            select: SelectParams::default(),
        },
    )?;
    eprintln!("{}", model.describe());
    let started = Instant::now();
    let masks = model.segment(&frames, &args.prompt)?;
    sync(model.device());
    let took = started.elapsed();
    let mut found = 0;
    for (path, mask) in paths.iter().zip(&masks) {
        let area = mask.as_raw().iter().filter(|&&v| v != 0).count();
        found += usize::from(area > 0);
        mask.save(out.join(path.file_name().expect("a file")))?;
    }
    println!(
        "{}",
        serde_json::json!({
            "frames": frames.len(),
            "with_product": found,
            "seconds": took.as_secs_f64(),
            "device": buybuddy_vision::sam3::device_name(model.device()),
            "model": model.manifest().model,
        })
    );
    Ok(())
}
