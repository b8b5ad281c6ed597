//! `bench video`: on a 10 s 1080p H.264 clip (made here unless given), how fast
//! we decode every frame compared with `ffmpeg -benchmark -i clip -f null -` in
//! the same run, how fast segmentation and post-processing go, and how long the
//! whole video job takes through `buybuddy process`.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use buybuddy_worker::{
    media::{
        decode,
        synthetic::{Codec, Scene},
    },
    postprocess,
    segment::{ClassicSegmenter, Segmenter},
};

use super::Throwaway;
use crate::config::DbArgs;

#[derive(clap::Args, Debug)]
pub struct VideoArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The clip to measure; a 10 s 1920x1080 30 fps H.264 sample is made (and
    /// kept in the data folder) when unset.
    #[arg(long)]
    clip: Option<PathBuf>,
    /// Runs of each measurement; the best one counts.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Frames sampled by the pipeline measurements.
    #[arg(long, default_value_t = 24)]
    frames: usize,
}

pub async fn run(args: VideoArgs) -> anyhow::Result<()> {
    let clip = match &args.clip {
        Some(clip) => clip.clone(),
        None => sample_clip(&args.db.data_dir).await?,
    };
    let runs = args.runs.max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // Decoding every frame: ours against the ffmpeg program, same libraries.
    let mut ours = Duration::MAX;
    let mut frames = 0;
    for _ in 0..runs {
        let path = clip.clone();
        let started = Instant::now();
        frames = tokio::task::spawn_blocking(move || decode::decode_all(&path)).await??;
        ours = ours.min(started.elapsed());
    }
    let mut theirs = Duration::MAX;
    for _ in 0..runs {
        theirs = theirs.min(ffmpeg_null(&clip).await?);
    }
    let ours_fps = frames as f64 / ours.as_secs_f64();
    let theirs_fps = frames as f64 / theirs.as_secs_f64();

    // The pipeline's own steps on its sample of frames.
    let path = clip.clone();
    let wanted = args.frames;
    let (_, (info, sampled)) = timed_blocking(move || decode::sample_frames(&path, wanted)).await?;
    let decoding = sampled_decode(&clip, args.frames, runs, ours).await?;
    let mut longer = Vec::new();
    for (name, file, encoder) in [
        ("30 s, x264 defaults", "clip-1080p30-30s.mp4", &[][..]),
        (
            "30 s phone-like (GOP 3 s, B-frames)",
            "clip-1080p30-30s-phone.mp4",
            &["-g", "90", "-bf", "3"][..],
        ),
    ] {
        let path = long_clip(&args.db.data_dir, file, encoder).await?;
        let mut every = Duration::MAX;
        for _ in 0..runs {
            let path = path.clone();
            let started = Instant::now();
            tokio::task::spawn_blocking(move || decode::decode_all(&path)).await??;
            every = every.min(started.elapsed());
        }
        longer.push((name, sampled_decode(&path, args.frames, runs, every).await?));
    }
    let images: Vec<_> = sampled.iter().map(|f| f.image.clone()).collect();
    let segmenting = images.clone();
    let (segment_time, masks) =
        timed_blocking(move || ClassicSegmenter::default().segment(&segmenting, "product")).await?;
    let options = postprocess::Options::default();
    let (one_core, _) = {
        let (images, masks, options) = (images.clone(), masks.clone(), options.clone());
        timed_blocking(move || {
            for (image, mask) in images.iter().zip(&masks) {
                postprocess::process(image, mask, &options);
            }
            Ok::<_, anyhow::Error>(())
        })
        .await?
    };
    let (all_cores, _) = {
        let (images, masks, options) = (images.clone(), masks.clone(), options.clone());
        timed_blocking(move || {
            let chunk = images.len().div_ceil(cores).max(1);
            std::thread::scope(|scope| {
                for (images, masks) in images.chunks(chunk).zip(masks.chunks(chunk)) {
                    let options = &options;
                    scope.spawn(move || {
                        for (i, m) in images.iter().zip(masks) {
                            postprocess::process(i, m, options);
                        }
                    });
                }
            });
            Ok::<_, anyhow::Error>(())
        })
        .await?
    };

    // The whole job, as a user runs it, against a throwaway database.
    let scratch = Throwaway::create(&args.db).await?;
    let storage = tempfile::tempdir()?;
    let mut end_to_end = Vec::new();
    let result = async {
        for run in 0..runs {
            end_to_end.push(process(&clip, &scratch, storage.path(), run, args.frames).await?);
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    scratch.drop().await?;
    result?;

    let n = sampled.len() as f64;
    println!(
        "\nvideo benchmark: {} ({} {}x{}, {} frames, {:.1} s), {cores} CPU cores, best of {runs}",
        clip.display(),
        info.codec,
        info.width,
        info.height,
        info.frame_count,
        info.duration_s
    );
    println!("{:<44} {:>12} {:>10}", "", "time", "frames/s");
    let row = |name: &str, time: Duration, count: f64| {
        println!(
            "{name:<44} {:>10.3} s {:>10.1}",
            time.as_secs_f64(),
            count / time.as_secs_f64()
        );
    };
    row("decode every frame (ours)", ours, frames as f64);
    row(
        "decode every frame (ffmpeg -benchmark -f null)",
        theirs,
        frames as f64,
    );
    println!("{:<44} {:>12.2}x", "ours / ffmpeg", ours_fps / theirs_fps);
    row(
        &format!("decode {} sampled frames to RGB", sampled.len()),
        decoding.sampled,
        n,
    );
    row("segment (classic, CPU)", segment_time, n);
    row("post-process to 518x518 PNG, one core", one_core, n);
    row(
        &format!("post-process to 518x518 PNG, {cores} cores"),
        all_cores,
        n,
    );
    println!(
        "\nsampled decode of {} frames against decoding every frame, best of {runs}:",
        args.frames
    );
    println!(
        "{:<34} {:>12} {:>14} {:>16} {:>8}",
        "clip", "every frame", "every frame", "sampled (seek +", "sampled"
    );
    println!(
        "{:<34} {:>12} {:>14} {:>16} {:>8}",
        "", "(no RGB)", "to the samples", "drop unref'd)", "/ every"
    );
    let rows = std::iter::once(("10 s, x264 defaults (above)", &decoding))
        .chain(longer.iter().map(|(name, figures)| (*name, figures)));
    for (name, figures) in rows {
        println!(
            "{name:<34} {:>10.3} s {:>12.3} s {:>14.3} s {:>7.2}x",
            figures.every.as_secs_f64(),
            figures.reference.as_secs_f64(),
            figures.sampled.as_secs_f64(),
            figures.sampled.as_secs_f64() / figures.every.as_secs_f64()
        );
    }
    let best = end_to_end.iter().copied().min().unwrap_or_default();
    let listed: Vec<String> = end_to_end
        .iter()
        .map(|d| format!("{:.2} s", d.as_secs_f64()))
        .collect();
    println!(
        "{:<44} {:>10.3} s   (runs: {})",
        format!("end to end: buybuddy process, {} frames", args.frames),
        best.as_secs_f64(),
        listed.join(", ")
    );
    Ok(())
}

async fn timed_blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> anyhow::Result<(Duration, T)>
where
    T: Send + 'static,
    E: Into<anyhow::Error> + Send + 'static,
{
    let started = Instant::now();
    let value = tokio::task::spawn_blocking(work)
        .await?
        .map_err(Into::into)?;
    Ok((started.elapsed(), value))
}

/// Decode times of one clip.
struct Decoding {
    /// Every frame, without conversion (as `ffmpeg -f null`).
    every: Duration,
    /// Decoding every frame up to the last sample, converting the samples.
    reference: Duration,
    /// The sampled decode.
    sampled: Duration,
}

async fn sampled_decode(
    clip: &std::path::Path,
    frames: usize,
    runs: usize,
    every: Duration,
) -> anyhow::Result<Decoding> {
    let (mut reference, mut sampled) = (Duration::MAX, Duration::MAX);
    for _ in 0..runs {
        let path = clip.to_owned();
        let (time, _) =
            timed_blocking(move || decode::sample_frames_decoding_all(&path, frames)).await?;
        reference = reference.min(time);
        let path = clip.to_owned();
        let (time, _) = timed_blocking(move || decode::sample_frames(&path, frames)).await?;
        sampled = sampled.min(time);
    }
    Ok(Decoding {
        every,
        reference,
        sampled,
    })
}

/// A 30 s 1080p30 clip of the sample scene, with these encoder options
/// (`-g 90 -bf 3` encodes as phones do: a keyframe every 3 s, B-frames).
async fn long_clip(
    data_dir: &std::path::Path,
    file: &str,
    encoder: &'static [&'static str],
) -> anyhow::Result<PathBuf> {
    let scene = Scene {
        frames: 900,
        turns: 1.5,
        ..clip_scene()
    };
    made_once(data_dir, file, scene, encoder).await
}

/// The clip the figures are about: made once, then reused.
async fn sample_clip(data_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    made_once(data_dir, "clip-1080p30-10s.mp4", clip_scene(), &[]).await
}

/// The sample scene in 1080p30, 10 s.
fn clip_scene() -> Scene {
    Scene {
        width: 1920,
        height: 1080,
        frames: 300,
        fps: 30,
        ..Scene::default()
    }
}

/// A clip in the data folder's `bench/`, encoded the first time it is asked for.
async fn made_once(
    data_dir: &std::path::Path,
    file: &str,
    scene: Scene,
    encoder: &'static [&'static str],
) -> anyhow::Result<PathBuf> {
    let clip = data_dir.join("bench").join(file);
    if clip.exists() {
        return Ok(clip);
    }
    std::fs::create_dir_all(clip.parent().expect("has a folder"))?;
    eprintln!("making {} (once)", clip.display());
    let target = clip.clone();
    tokio::task::spawn_blocking(move || {
        scene.write_video_with(&target, Codec::H264, false, encoder)
    })
    .await??;
    Ok(clip)
}

/// Wall time of `ffmpeg -benchmark -i clip -f null -`.
async fn ffmpeg_null(clip: &std::path::Path) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-benchmark", "-i"])
        .arg(clip)
        .args(["-f", "null", "-"])
        .stdout(Stdio::null())
        .output()
        .await
        .context("running ffmpeg")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(elapsed)
}

/// Wall time of `buybuddy process` on the clip.
async fn process(
    clip: &std::path::Path,
    scratch: &Throwaway,
    storage: &std::path::Path,
    run: usize,
    frames: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .arg("process")
        .arg(clip)
        .args([
            "--barcode",
            &format!("bench{run}"),
            "--frames",
            &frames.to_string(),
        ])
        .arg("--storage")
        .arg(storage)
        .env("DATABASE_URL", scratch.url.expose())
        .env("RUST_LOG", "warn")
        .output()
        .await?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "process failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed)
}
