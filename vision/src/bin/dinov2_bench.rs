//! `dinov2-bench`: images per second and peak memory of the DINOv2 port for
//! one model folder and batch size, one JSON line on stdout.
//!
//!   dinov2-bench --model DIR --batch 8 [--device cpu] [--half] [--seconds 3]
//!
//! The input is `torch.randn(batch, 3, 518, 518)` after `manual_seed(0)`, as
//! `vision/python/bench_dinov2.py` feeds transformers; the pooled output is
//! L2-normalised and brought back to the CPU, as embedding does. One process
//! per setting, so the peak resident memory is that setting's. This binary
//! links no FFmpeg: it runs on GPU machines with only libtorch.

use std::{path::PathBuf, time::Instant};

use anyhow::Context;
use buybuddy_vision::{DeviceChoice, Dinov2, Dinov2Options};
use tch::{Device, Kind, Tensor};

fn main() -> anyhow::Result<()> {
    let mut model = None;
    let mut batch = 1usize;
    let mut device = DeviceChoice::Cpu;
    let mut half = false;
    let mut seconds = 3.0f64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--batch" => batch = value()?.parse()?,
            "--device" => device = value()?.parse().map_err(anyhow::Error::msg)?,
            "--half" => half = true,
            "--seconds" => seconds = value()?.parse()?,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let model = model.context("--model DIR is needed")?;
    let loaded = Dinov2::load(
        &model,
        Dinov2Options {
            device,
            batch_size: batch,
            half,
        },
    )?;
    let on = loaded.device();
    tch::manual_seed(0);
    let pixels =
        Tensor::randn([batch as i64, 3, 518, 518], (Kind::Float, Device::Cpu)).to_device(on);
    let network = loaded.model();
    let step = || {
        let pooled = tch::no_grad(|| {
            if on.is_cuda() && half {
                tch::autocast(true, || network.forward(&pixels).pooled)
            } else {
                network.forward(&pixels).pooled
            }
        })
        .to_kind(Kind::Float);
        let norms = pooled
            .norm_scalaropt_dim(2.0, [-1].as_slice(), true)
            .clamp_min(1e-12);
        let _ = (pooled / norms).to_device(Device::Cpu);
    };
    step(); // warm-up
    let started = Instant::now();
    let mut batches = 0usize;
    while batches < 2 || started.elapsed().as_secs_f64() < seconds {
        step();
        batches += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let peak_rss_mb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0);
    println!(
        "{}",
        serde_json::json!({
            "engine": "ours",
            "images_per_s": (batches * batch) as f64 / elapsed,
            "peak_rss_mb": peak_rss_mb,
            "device": format!("{on:?}"),
        })
    );
    Ok(())
}
