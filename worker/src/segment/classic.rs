//! The CPU segmenter for products filmed against a plain background (a wall, a
//! table, a turntable), for machines without a segmentation model.
//!
//! Per frame, on a reduced copy: the background is modelled from the frame's
//! border ring as a smooth quadratic surface per colour channel, fitted robustly
//! (pixels of the product touching the border are rejected as outliers), which
//! absorbs lighting gradients and lighting changes between frames. The noise level
//! is estimated across all frames. Pixels far from the background (in noise
//! units, and in absolute levels) are the product; the mask is cleaned up (gaps
//! closed, holes filled, specks removed, the product's component kept) and scaled
//! back to the frame's size with smooth edges.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage};

use super::{Segmenter, morphology::Binary};

#[derive(Debug, Clone, PartialEq)]
pub struct ClassicSegmenter {
    /// Longer side of the working copy, in pixels.
    pub working_size: u32,
    /// Distance from the background, in noise standard deviations, from which a
    /// pixel counts as the product.
    pub threshold_sigmas: f32,
    /// Smallest distance from the background, in 8-bit levels, that counts,
    /// however clean the picture.
    pub min_contrast: f32,
}

impl Default for ClassicSegmenter {
    fn default() -> Self {
        Self {
            working_size: 384,
            threshold_sigmas: 6.0,
            min_contrast: 14.0,
        }
    }
}

impl Segmenter for ClassicSegmenter {
    fn name(&self) -> &'static str {
        "classic"
    }

    fn segment(&self, frames: &[RgbImage], _prompt: &str) -> anyhow::Result<Vec<GrayImage>> {
        let small: Vec<Plane> = frames.iter().map(|f| self.reduce(f)).collect();
        let fits: Vec<Fit> = small.iter().map(fit_background).collect();
        // One noise level for the whole video: more border pixels, steadier figure.
        let mut residuals: Vec<f32> = fits
            .iter()
            .flat_map(|f| f.residuals.iter().copied())
            .collect();
        let sigma = robust_sigma(&mut residuals).max(0.5);
        let threshold = (self.threshold_sigmas * sigma).max(self.min_contrast);
        Ok(frames
            .iter()
            .zip(small.iter().zip(&fits))
            .map(|(frame, (plane, fit))| {
                let raw = foreground(plane, &fit.model, threshold);
                let cleaned = clean(&raw);
                enlarge(&cleaned, frame.width(), frame.height())
            })
            .collect())
    }
}

/// A reduced frame, as floating-point RGB.
struct Plane {
    width: usize,
    height: usize,
    pixels: Vec<[f32; 3]>,
}

impl ClassicSegmenter {
    fn reduce(&self, frame: &RgbImage) -> Plane {
        let (w, h) = frame.dimensions();
        let scale = (self.working_size as f32 / w.max(h) as f32).min(1.0);
        let (sw, sh) = (
            ((w as f32 * scale).round() as u32).max(8),
            ((h as f32 * scale).round() as u32).max(8),
        );
        let reduced = if (sw, sh) == (w, h) {
            frame.clone()
        } else {
            // A box filter widened to the reduction averages the pixels each
            // working pixel covers, which also tames the sensor noise.
            let mut reduced = RgbImage::new(sw, sh);
            Resizer::new()
                .resize(
                    frame,
                    &mut reduced,
                    &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box)),
                )
                .expect("same pixel types");
            reduced
        };
        Plane {
            width: sw as usize,
            height: sh as usize,
            pixels: reduced.pixels().map(|p| p.0.map(f32::from)).collect(),
        }
    }
}

/// A smooth background: per channel, c(u, v) = a + b·u + c·v + d·u² + e·uv + f·v²
/// over coordinates scaled to [-0.5, 0.5].
#[derive(Debug, Clone)]
struct Model {
    coefficients: [[f32; 6]; 3],
}

impl Model {
    fn at(&self, u: f32, v: f32) -> [f32; 3] {
        let basis = basis(u, v);
        self.coefficients
            .map(|c| c.iter().zip(basis).map(|(c, b)| c * b).sum())
    }
}

fn basis(u: f32, v: f32) -> [f32; 6] {
    [1.0, u, v, u * u, u * v, v * v]
}

struct Fit {
    model: Model,
    /// Distances of the kept border pixels from the model.
    residuals: Vec<f32>,
}

/// Fits the background to the frame's border ring, three rounds, dropping
/// outliers (the product where it reaches the border) after each.
fn fit_background(plane: &Plane) -> Fit {
    let (w, h) = (plane.width, plane.height);
    let ring = ((w.min(h) as f32 * 0.05).round() as usize).max(2);
    let mut samples: Vec<(f32, f32, [f32; 3])> = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if x < ring || y < ring || x >= w - ring || y >= h - ring {
                let (u, v) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.5);
                samples.push((u, v, plane.pixels[y * w + x]));
            }
        }
    }
    let mut model = solve(&samples);
    for _ in 0..3 {
        let distances: Vec<f32> = samples
            .iter()
            .map(|(u, v, p)| distance(p, &model.at(*u, *v)))
            .collect();
        let sigma = robust_sigma(&mut distances.clone()).max(0.5);
        let limit = (4.0 * sigma).max(6.0);
        let kept: Vec<(f32, f32, [f32; 3])> = samples
            .iter()
            .zip(&distances)
            .filter(|(_, d)| **d <= limit)
            .map(|(s, _)| *s)
            .collect();
        // Too much of the ring rejected: the product fills the picture's edge;
        // keep the last model rather than fit to a handful of pixels.
        if kept.len() < samples.len() / 4 {
            break;
        }
        samples = kept;
        model = solve(&samples);
    }
    let residuals = samples
        .iter()
        .map(|(u, v, p)| distance(p, &model.at(*u, *v)))
        .collect();
    Fit { model, residuals }
}

/// Least squares per channel through the normal equations (6 unknowns).
fn solve(samples: &[(f32, f32, [f32; 3])]) -> Model {
    let mut ata = [[0f64; 6]; 6];
    let mut atb = [[0f64; 6]; 3];
    for (u, v, p) in samples {
        let b = basis(*u, *v);
        for i in 0..6 {
            for j in 0..6 {
                ata[i][j] += f64::from(b[i] * b[j]);
            }
            for c in 0..3 {
                atb[c][i] += f64::from(b[i] * p[c]);
            }
        }
    }
    let coefficients = atb.map(|rhs| gauss(ata, rhs).map(|x| x as f32));
    Model { coefficients }
}

/// Solves a 6x6 system by Gaussian elimination with partial pivoting; a
/// singular system (too few distinct positions) falls back to a flat model.
fn gauss(mut a: [[f64; 6]; 6], mut b: [f64; 6]) -> [f64; 6] {
    for col in 0..6 {
        let pivot = (col..6)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .expect("non-empty range");
        if a[pivot][col].abs() < 1e-9 {
            let mean = b[0] / a[0][0].max(1.0);
            return [mean, 0.0, 0.0, 0.0, 0.0, 0.0];
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..6 {
            let factor = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (value, above) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *value -= factor * above;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = [0f64; 6];
    for row in (0..6).rev() {
        let rest: f64 = (row + 1..6).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    x
}

fn distance(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// The noise's standard deviation from distances to the model: the median
/// distance of three-channel Gaussian noise is about 1.54 sigma.
fn robust_sigma(distances: &mut [f32]) -> f32 {
    if distances.is_empty() {
        return 0.0;
    }
    let mid = distances.len() / 2;
    let (_, median, _) = distances.select_nth_unstable_by(mid, f32::total_cmp);
    *median / 1.54
}

fn foreground(plane: &Plane, model: &Model, threshold: f32) -> Binary {
    let (w, h) = (plane.width, plane.height);
    let mut mask = Binary::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.5);
            mask.data[y * w + x] = distance(&plane.pixels[y * w + x], &model.at(u, v)) > threshold;
        }
    }
    mask
}

/// Closes gaps, fills holes, removes specks and keeps the product's component.
fn clean(raw: &Binary) -> Binary {
    let min_area = (raw.width * raw.height / 500).max(4);
    raw.close(2)
        .fill_holes()
        .open(1)
        .keep_product(min_area)
        .fill_holes()
}

/// Scales a working mask to the frame's size with smooth, sub-pixel edges:
/// bilinear interpolation of the 0/255 mask, cut at one half.
fn enlarge(mask: &Binary, width: u32, height: u32) -> GrayImage {
    let small = GrayImage::from_raw(
        mask.width as u32,
        mask.height as u32,
        mask.data
            .iter()
            .map(|&set| if set { 255 } else { 0 })
            .collect(),
    )
    .expect("sized to fit");
    let mut large = GrayImage::new(width, height);
    Resizer::new()
        .resize(
            &small,
            &mut large,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .expect("same pixel types");
    for value in large.iter_mut() {
        *value = if *value >= 128 { 255 } else { 0 };
    }
    large
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{media::synthetic::Scene, segment::iou};

    #[test]
    fn finds_the_box_in_rendered_frames() {
        let scene = Scene {
            width: 320,
            height: 240,
            frames: 12,
            ..Scene::default()
        };
        let (frames, truth): (Vec<_>, Vec<_>) = (0..12).map(|i| scene.render(i)).unzip();
        let masks = ClassicSegmenter::default().segment(&frames, "box").unwrap();
        let mean: f64 = masks
            .iter()
            .zip(&truth)
            .map(|(m, t)| iou(m, t))
            .sum::<f64>()
            / 12.0;
        assert!(mean > 0.9, "mean IoU {mean}");
    }

    #[test]
    fn an_empty_scene_gives_empty_masks() {
        let wall = RgbImage::from_pixel(200, 150, image::Rgb([200, 196, 190]));
        let masks = ClassicSegmenter::default().segment(&[wall], "box").unwrap();
        assert_eq!(crate::segment::area(&masks[0]), 0);
    }

    #[test]
    fn a_tilted_lighting_gradient_is_background() {
        let lit = RgbImage::from_fn(200, 150, |x, y| {
            let shade = 150.0 + 60.0 * x as f32 / 200.0 + 20.0 * y as f32 / 150.0;
            image::Rgb([shade as u8, shade as u8, (shade * 0.95) as u8])
        });
        let masks = ClassicSegmenter::default().segment(&[lit], "box").unwrap();
        assert_eq!(crate::segment::area(&masks[0]), 0);
    }
}
