//! How well a segmenter finds the product in the generator's kinds of scene:
//! IoU against the exact masks, per frame, through the real encoder and
//! decoder when asked. Shared by the tests and `buybuddy bench segment`.

use std::{path::Path, time::Instant};

use super::{Segmenter, iou};
use crate::media::{
    decode,
    synthetic::{Codec, Kind},
};

/// One scene's figures.
#[derive(Debug, Clone)]
pub struct Score {
    pub kind: &'static str,
    pub seed: u64,
    /// IoU of every frame measured, in frame order.
    pub ious: Vec<f64>,
    /// Segmentation time per frame, in milliseconds.
    pub ms_per_frame: f64,
    /// Frame size.
    pub width: u32,
    pub height: u32,
}

impl Score {
    pub fn mean(&self) -> f64 {
        self.ious.iter().sum::<f64>() / self.ious.len().max(1) as f64
    }

    pub fn min(&self) -> f64 {
        self.ious.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// How the frames reach the segmenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight from the renderer.
    Rendered,
    /// Encoded to H.264 by `ffmpeg` in `scratch`, then sampled by the decoder,
    /// as a job reads an upload.
    Encoded,
}

/// Segments `frames` evenly spaced frames of the scene of `kind` for `seed`.
/// `scale` shrinks the picture (1 keeps the kind's own size).
pub fn score(
    kind: &Kind,
    seed: u64,
    frames: usize,
    scale: f32,
    route: Route,
    scratch: &Path,
    segmenter: &dyn Segmenter,
) -> anyhow::Result<Score> {
    let mut scene = kind.scene(seed);
    if scale != 1.0 {
        scene.width = ((scene.width as f32 * scale) as u32).max(16) & !1;
        scene.height = ((scene.height as f32 * scale) as u32).max(16) & !1;
    }
    let (indices, images): (Vec<usize>, Vec<image::RgbImage>) = match route {
        Route::Rendered => {
            let indices = decode::evenly_spaced(scene.frames, frames);
            let images = indices.iter().map(|&i| scene.render(i).0).collect();
            (indices, images)
        }
        Route::Encoded => {
            let path = scratch.join(format!("{}-{seed}.mp4", kind.name));
            scene.write_video(&path, Codec::H264, false)?;
            let (_, sampled) = decode::sample_frames(&path, frames)?;
            let _ = std::fs::remove_file(&path);
            sampled.into_iter().map(|f| (f.index, f.image)).unzip()
        }
    };
    let started = Instant::now();
    let masks = segmenter.segment(&images, kind.about)?;
    let ms_per_frame = started.elapsed().as_secs_f64() * 1000.0 / images.len().max(1) as f64;
    let ious = indices
        .iter()
        .zip(&masks)
        .map(|(&i, mask)| iou(mask, &scene.render(i).1))
        .collect();
    Ok(Score {
        kind: kind.name,
        seed,
        ious,
        ms_per_frame,
        width: scene.width,
        height: scene.height,
    })
}
