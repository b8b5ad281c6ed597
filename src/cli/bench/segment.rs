//! `bench segment`: how well the classic segmenter finds the product in each
//! kind of scene the generator makes (tables, shadows, changing light, noise,
//! shake, low contrast, far away, portrait, every shape), on seeds that were
//! never looked at while tuning, through the real encoder and decoder: mean
//! IoU per kind, the worst scene and the worst frame, and the time per frame.

use std::time::Instant;

use buybuddy_worker::{
    media::synthetic::KINDS,
    segment::{
        ClassicSegmenter,
        measure::{self, Route},
    },
};

use crate::config::DbArgs;

#[derive(clap::Args, Debug)]
pub struct SegmentArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Scenes of each kind, seeds from --first-seed on.
    #[arg(long, default_value_t = 4)]
    scenes: u64,
    /// The first seed (tuning used seeds below 100).
    #[arg(long, default_value_t = 101)]
    first_seed: u64,
    /// Frames sampled from each video.
    #[arg(long, default_value_t = 12)]
    frames: usize,
    /// Segment the rendered frames instead of encoding to H.264 and decoding.
    #[arg(long)]
    rendered: bool,
    /// Only these kinds (comma-separated); every kind when unset.
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
}

pub async fn run(args: SegmentArgs) -> anyhow::Result<()> {
    let scratch = args.db.data_dir.join("bench").join("segment");
    std::fs::create_dir_all(&scratch)?;
    let route = if args.rendered {
        Route::Rendered
    } else {
        Route::Encoded
    };
    println!(
        "classic segmenter, {} scenes per kind (seeds {}..{}), {} frames each, {}",
        args.scenes,
        args.first_seed,
        args.first_seed + args.scenes - 1,
        args.frames,
        if args.rendered {
            "rendered frames"
        } else {
            "encoded to H.264 (crf 18) and decoded"
        }
    );
    println!(
        "{:<15} {:>10} {:>9} {:>12} {:>12} {:>9}  about",
        "kind", "size", "mean IoU", "worst scene", "worst frame", "ms/frame"
    );
    let started = Instant::now();
    let mut all = Vec::new();
    for kind in KINDS {
        if !args.kinds.is_empty() && !args.kinds.iter().any(|k| k == kind.name) {
            continue;
        }
        let (kind, scratch, seeds, frames) = (
            *kind,
            scratch.clone(),
            args.first_seed..args.first_seed + args.scenes,
            args.frames,
        );
        let scores = tokio::task::spawn_blocking(move || {
            let segmenter = ClassicSegmenter::default();
            seeds
                .map(|seed| measure::score(&kind, seed, frames, 1.0, route, &scratch, &segmenter))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??;
        let ious: Vec<f64> = scores.iter().flat_map(|s| s.ious.iter().copied()).collect();
        let mean = ious.iter().sum::<f64>() / ious.len().max(1) as f64;
        let worst_scene = scores
            .iter()
            .map(|s| s.mean())
            .fold(f64::INFINITY, f64::min);
        let worst_frame = ious.iter().copied().fold(f64::INFINITY, f64::min);
        let ms = scores.iter().map(|s| s.ms_per_frame).sum::<f64>() / scores.len().max(1) as f64;
        println!(
            "{:<15} {:>10} {:>9.3} {:>12.3} {:>12.3} {:>9.1}  {}",
            kind.name,
            format!("{}x{}", scores[0].width, scores[0].height),
            mean,
            worst_scene,
            worst_frame,
            ms,
            kind.about
        );
        all.push((kind.name, mean));
    }
    let lowest = all
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(String::new(), |(k, m)| format!("{m:.3} ({k})"));
    println!(
        "lowest kind mean IoU: {lowest}; {:.0} s in all",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
