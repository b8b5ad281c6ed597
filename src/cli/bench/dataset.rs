//! `buybuddy bench dataset`: augmentation speed per core beside albumentations
//! on the same 518x518 image and mask (both held to one thread), and export
//! speed for 10,000 and 100,000 images: images/s, MB/s and the process's peak
//! resident memory while the archive is written.

use std::{io::BufWriter, path::PathBuf, time::Instant};

use anyhow::Context;
use buybuddy_dataset::{
    augment::{Augment, Ranged, augment},
    export::{Exporter, Format, Item, Object},
    render,
    split::Split,
};
use image::{GrayImage, Luma, Rgb, RgbImage};

#[derive(clap::Args, Debug)]
pub struct DatasetArgs {
    /// Draws timed per augmentation case.
    #[arg(long, default_value_t = 200)]
    draws: usize,
    /// Archive sizes to export, in images.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    images: Vec<usize>,
    /// The Python with albumentations (installed into it if missing).
    #[arg(long, default_value = ".data/torch/bin/python")]
    python: PathBuf,
    /// Skip the albumentations side.
    #[arg(long)]
    no_reference: bool,
    /// Internal: one export measured in this process (`N:coco`), printed as
    /// JSON; the bench runs each export in a child of its own so its peak
    /// memory is the export's alone.
    #[arg(long, hide = true)]
    export_child: Option<String>,
}

fn sample() -> (RgbImage, GrayImage) {
    let image = RgbImage::from_fn(518, 518, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mask = GrayImage::from_fn(518, 518, |x, y| {
        let inside = (100..400).contains(&x) && (80..450).contains(&y);
        Luma([if inside { 255 } else { 0 }])
    });
    (image, mask)
}

fn on(lo: f64, hi: f64) -> Ranged {
    Ranged {
        p: 1.0,
        range: [lo, hi],
    }
}

/// The cases, with the same transforms and ranges as bench_augment.py.
fn cases() -> Vec<(&'static str, Augment)> {
    let off = Augment::off;
    vec![
        ("flip", Augment { flip: 1.0, ..off() }),
        (
            "rotate",
            Augment {
                rotate: on(-15.0, 15.0),
                ..off()
            },
        ),
        (
            "scale_shift",
            Augment {
                scale: on(0.8, 1.1),
                shift: on(-0.08, 0.08),
                ..off()
            },
        ),
        (
            "brightness_contrast",
            Augment {
                brightness: on(-0.2, 0.2),
                contrast: on(0.8, 1.2),
                ..off()
            },
        ),
        (
            "hue_saturation",
            Augment {
                saturation: on(0.7, 1.3),
                hue: on(-10.0, 10.0),
                ..off()
            },
        ),
        (
            "blur",
            Augment {
                blur: on(1.0, 2.0),
                ..off()
            },
        ),
        (
            "noise",
            Augment {
                noise: on(2.0, 8.0),
                ..off()
            },
        ),
        (
            "jpeg",
            Augment {
                jpeg: on(80.0, 80.0),
                ..off()
            },
        ),
        (
            "pipeline",
            Augment {
                background: 0.0,
                ..Augment::default()
            },
        ),
    ]
}

pub async fn run(args: DatasetArgs) -> anyhow::Result<()> {
    if let Some(spec) = &args.export_child {
        let (n, format) = spec.split_once(':').context("--export-child N:FORMAT")?;
        let n: usize = n.parse()?;
        let format = match format {
            "yolo" => Format::Yolo,
            _ => Format::Coco,
        };
        let frame = render::png(&sample().0);
        let object = render::object(0, &sample().1, true).context("the sample has a product")?;
        let baseline = rss();
        let f = tokio::task::spawn_blocking(move || export(n, format, &frame, &object)).await??;
        println!(
            "{}",
            serde_json::json!({"seconds": f.seconds, "bytes": f.bytes, "peak_rss": f.peak_rss, "baseline_rss": baseline})
        );
        return Ok(());
    }
    let (image, mask) = sample();
    println!(
        "## Augmentation, 518x518, one core ({} draws per case)\n",
        args.draws
    );
    let ours: Vec<(&str, f64)> = tokio::task::spawn_blocking({
        let draws = args.draws;
        move || {
            cases()
                .into_iter()
                .map(|(name, config)| {
                    for seed in 0..5 {
                        augment(&image, &mask, &config, seed, &[]);
                    }
                    let start = Instant::now();
                    for seed in 0..draws as u64 {
                        std::hint::black_box(augment(&image, &mask, &config, seed, &[]));
                    }
                    (name, draws as f64 / start.elapsed().as_secs_f64())
                })
                .collect()
        }
    })
    .await?;
    let reference = if args.no_reference {
        None
    } else {
        Some(albumentations(&args).await?)
    };
    println!("| transform | ours (img/s) | albumentations 2.0.8 (img/s) | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, rate) in &ours {
        let peer = reference
            .as_ref()
            .and_then(|r| r.get(*name))
            .and_then(|v| v.as_f64());
        match peer {
            Some(peer) => println!("| {name} | {rate:.0} | {peer:.0} | {:.2}x |", rate / peer),
            None => println!("| {name} | {rate:.0} | | |"),
        }
    }

    println!("\n## Export, 518x518 PNG frames with one polygon each\n");
    println!(
        "Each export runs in a process of its own; \"idle\" is that process's resident memory \
         before it starts, \"peak\" the most while the archive is written.\n"
    );
    println!(
        "| format | images | seconds | images/s | MB/s | archive MB | idle RSS MB | peak RSS MB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe()?;
    for &n in &args.images {
        for format in [Format::Coco, Format::Yolo] {
            let output = tokio::process::Command::new(&exe)
                .args(["bench", "dataset", "--export-child"])
                .arg(format!("{n}:{}", format.as_str()))
                .output()
                .await?;
            anyhow::ensure!(
                output.status.success(),
                "the export of {n} images failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let f: serde_json::Value = serde_json::from_slice(&output.stdout)?;
            let seconds = f["seconds"].as_f64().unwrap_or(f64::NAN);
            let bytes = f["bytes"].as_f64().unwrap_or(0.0);
            println!(
                "| {} | {n} | {seconds:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                format.as_str(),
                n as f64 / seconds,
                bytes / 1e6 / seconds,
                bytes / 1e6,
                f["baseline_rss"].as_f64().unwrap_or(0.0) / 1e6,
                f["peak_rss"].as_f64().unwrap_or(0.0) / 1e6,
            );
        }
    }
    Ok(())
}

async fn albumentations(args: &DatasetArgs) -> anyhow::Result<serde_json::Value> {
    let python =
        super::ensure_module(&args.python, "albumentations", "albumentations==2.0.8").await?;
    let script = super::python_script("bench_augment.py")?;
    let output = tokio::process::Command::new(python)
        .arg(script)
        .arg(args.draws.to_string())
        .env("OMP_NUM_THREADS", "1")
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("NO_ALBUMENTATIONS_UPDATE", "1")
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "bench_augment.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    Ok(serde_json::from_str(last)?)
}

struct ExportFigures {
    seconds: f64,
    bytes: u64,
    peak_rss: u64,
}

/// Writes an archive of `n` copies of one frame to a scratch file, as the
/// export job does, and measures it.
fn export(n: usize, format: Format, png: &[u8], object: &Object) -> anyhow::Result<ExportFigures> {
    reset_peak_rss();
    let file = tempfile::tempfile()?;
    let start = Instant::now();
    let mut exporter = Exporter::new(
        BufWriter::with_capacity(1 << 20, file),
        format,
        vec!["product".into()],
        false,
        "# bench\n",
    )?;
    for i in 0..n {
        let split = match i % 10 {
            8 => Split::Val,
            9 => Split::Test,
            _ => Split::Train,
        };
        let name = format!("{i:07}");
        exporter.add(&Item {
            split,
            name: &name,
            png,
            width: 518,
            height: 518,
            objects: vec![object.clone()],
        })?;
    }
    let (mut out, bytes) = exporter.finish(&Split::ALL)?;
    std::io::Write::flush(&mut out)?;
    Ok(ExportFigures {
        seconds: start.elapsed().as_secs_f64(),
        bytes,
        peak_rss: peak_rss(),
    })
}

/// Linux: resets the process's peak resident set to its current size.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Linux: the process's peak resident set (VmHWM), in bytes.
pub(super) fn peak_rss() -> u64 {
    status_bytes("VmHWM:")
}

/// Linux: the process's resident set now (VmRSS), in bytes.
fn rss() -> u64 {
    status_bytes("VmRSS:")
}

fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
