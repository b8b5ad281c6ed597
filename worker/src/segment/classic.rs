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

    fn spanning_masks_fail(&self) -> bool {
        true
    }

    fn segment(&self, frames: &[RgbImage], _prompt: &str) -> anyhow::Result<Vec<GrayImage>> {
        let masks = self.segment_at(frames, self.working_size);
        // A product far away covers few working pixels, and a pixel's error at
        // its edge costs much of its area: look again at twice the detail.
        let longest = frames
            .iter()
            .map(|f| f.width().max(f.height()))
            .max()
            .unwrap_or(0);
        let small_share = median_height_share(&masks);
        if small_share < 0.3 && longest > self.working_size {
            return Ok(self.segment_at(frames, (self.working_size * 2).min(longest)));
        }
        Ok(masks)
    }
}

/// The median, over frames with a product, of its height as a share of the frame's.
fn median_height_share(masks: &[GrayImage]) -> f32 {
    let mut shares: Vec<f32> = masks
        .iter()
        .filter_map(|m| super::bounding_box(m).map(|b| b.height as f32 / m.height().max(1) as f32))
        .collect();
    if shares.is_empty() {
        return 1.0;
    }
    let mid = shares.len() / 2;
    *shares.select_nth_unstable_by(mid, f32::total_cmp).1
}

impl ClassicSegmenter {
    /// Segments every frame on a working copy whose longer side is `size`.
    fn segment_at(&self, frames: &[RgbImage], size: u32) -> Vec<GrayImage> {
        let small: Vec<Plane> = frames.iter().map(|f| reduce(f, size)).collect();
        let fits: Vec<Fit> = small.iter().map(fit_background).collect();
        // One noise level for the whole video: more border pixels, steadier figure.
        let mut residuals: Vec<f32> = fits
            .iter()
            .flat_map(|f| f.residuals.iter().copied())
            .collect();
        let sigma = robust_sigma(&mut residuals).max(0.5);
        let threshold = (self.threshold_sigmas * sigma).max(self.min_contrast);
        frames
            .iter()
            .zip(small.iter().zip(&fits))
            .map(|(frame, (plane, fit))| {
                let (raw, shadowy) = foreground(plane, fit, threshold);
                let standing = fit.edge > threshold;
                let cleaned = clean(&raw, &shadowy, standing);
                enlarge(&cleaned, frame.width(), frame.height())
            })
            .collect()
    }
}

/// A reduced frame, as floating-point RGB.
struct Plane {
    width: usize,
    height: usize,
    pixels: Vec<[f32; 3]>,
}

/// A working copy of a frame whose longer side is at most `size`.
fn reduce(frame: &RgbImage, size: u32) -> Plane {
    let (w, h) = frame.dimensions();
    let scale = (size as f32 / w.max(h) as f32).min(1.0);
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
    let plane = Plane {
        width: sw as usize,
        height: sh as usize,
        pixels: reduced.pixels().map(|p| p.0.map(f32::from)).collect(),
    };
    // A frame small enough to be worked on as it is keeps the encoder's
    // ringing at sharp edges at full strength: a 3x3 mean tames it, as a
    // reduction would have.
    if scale >= 1.0 { smooth(&plane) } else { plane }
}

/// A 3x3 mean, the border averaging what it has.
fn smooth(plane: &Plane) -> Plane {
    let (w, h) = (plane.width, plane.height);
    let mut pixels = vec![[0f32; 3]; w * h];
    for y in 0..h {
        for x in 0..w {
            let (mut sum, mut n) = ([0f32; 3], 0f32);
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    let p = plane.pixels[yy * w + xx];
                    for c in 0..3 {
                        sum[c] += p[c];
                    }
                    n += 1.0;
                }
            }
            pixels[y * w + x] = sum.map(|v| v / n);
        }
    }
    Plane {
        width: w,
        height: h,
        pixels,
    }
}

/// The background of one frame: colours read along the left and right borders,
/// row by row, and blended across the picture along the edges' slope.
#[derive(Debug, Clone)]
struct Model {
    left: Vec<[f32; 3]>,
    right: Vec<[f32; 3]>,
    /// Rows an edge drops from the left border to the right one.
    shift: f32,
    /// Centres of the two border strips, in columns.
    from: f32,
    to: f32,
}

impl Model {
    fn at(&self, x: f32, y: f32) -> [f32; 3] {
        let f = ((x - self.from) / (self.to - self.from)).clamp(0.0, 1.0);
        let l = sample(&self.left, y - f * self.shift);
        let r = sample(&self.right, y + (1.0 - f) * self.shift);
        [0, 1, 2].map(|c| l[c] * (1.0 - f) + r[c] * f)
    }
}

/// A border's colour at a fractional row, clamped to the picture.
fn sample(rows: &[[f32; 3]], y: f32) -> [f32; 3] {
    let y = y.clamp(0.0, (rows.len() - 1) as f32);
    let (i, t) = (y.floor() as usize, y.fract());
    let j = (i + 1).min(rows.len() - 1);
    [0, 1, 2].map(|c| rows[i][c] * (1.0 - t) + rows[j][c] * t)
}

struct Fit {
    model: Model,
    /// Distances of the border pixels from the model: the strips' spread and
    /// the misfit on the top and bottom borders.
    residuals: Vec<f32>,
    /// Per row, the misfit's spread on the surface the row belongs to (the
    /// wall's, from the top border, or the table's, from the bottom one).
    roughness: Vec<f32>,
    /// The sharpest step in colour down both side borders, in levels.
    edge: f32,
}

/// Reads the background from the frame's borders.
fn fit_background(plane: &Plane) -> Fit {
    let (w, h) = (plane.width, plane.height);
    let strip = ((w.min(h) as f32 * 0.04).round() as usize).max(2);
    let at = |x: usize, y: usize| plane.pixels[y * w + x];
    let rows = |columns: std::ops::Range<usize>| -> Vec<[f32; 3]> {
        (0..h)
            .map(|y| {
                let mut values: Vec<[f32; 3]> = columns.clone().map(|x| at(x, y)).collect();
                median(&mut values)
            })
            .collect()
    };
    // A running median down each border steadies the colours without
    // blurring a step.
    let steady = |rows: Vec<[f32; 3]>| -> Vec<[f32; 3]> {
        (0..rows.len())
            .map(|y| {
                let mut near: Vec<[f32; 3]> =
                    rows[y.saturating_sub(2)..(y + 3).min(rows.len())].to_vec();
                median(&mut near)
            })
            .collect()
    };
    let left = steady(rows(0..strip));
    let right = steady(rows(w - strip..w));
    let shift = edge_shift(&left, &right, (w as f32 * 0.08).ceil() as usize);
    let model = Model {
        left,
        right,
        shift: shift as f32,
        from: strip as f32 / 2.0,
        to: (w - strip) as f32 + strip as f32 / 2.0,
    };
    let mut residuals = Vec::new();
    for y in 0..h {
        for x in (0..strip).chain(w - strip..w) {
            let side = if x < strip { &model.left } else { &model.right };
            residuals.push(distance(&at(x, y), &side[y]));
        }
    }
    // The top and bottom borders: the misfit of the model where it guessed.
    // Each says how rough its surface is (a table's grain, a wall's texture).
    let mut misfit = |rows: std::ops::Range<usize>| {
        let mut own = Vec::new();
        for y in rows {
            for x in strip..w - strip {
                own.push(distance(&at(x, y), &model.at(x as f32 + 0.5, y as f32)));
            }
        }
        residuals.extend_from_slice(&own);
        robust_sigma(&mut own)
    };
    let rough_top = misfit(0..strip);
    let rough_bottom = misfit(h - strip..h);
    let (top_colour, bottom_colour) = (model.left[0], model.left[h - 1]);
    let roughness = (0..h)
        .map(|y| {
            let c = &model.left[y];
            if distance(c, &top_colour) <= distance(c, &bottom_colour) {
                rough_top
            } else {
                rough_bottom
            }
        })
        .collect();
    // A sharp step down a border: a wall meeting the surface the product
    // stands on.
    let step = |rows: &[[f32; 3]]| {
        (2..h.saturating_sub(2))
            .map(|y| distance(&rows[y - 2], &rows[y + 2]))
            .fold(0f32, f32::max)
    };
    let edge = step(&model.left).min(step(&model.right));
    Fit {
        model,
        residuals,
        roughness,
        edge,
    }
}

/// The row offset that best lines up the right border's colours with the
/// left's (a tilted edge between wall and table), preferring no offset.
fn edge_shift(left: &[[f32; 3]], right: &[[f32; 3]], most: usize) -> i32 {
    let h = left.len() as i32;
    let most = most.min(left.len() / 4) as i32;
    let cost = |s: i32| {
        let (mut sum, mut n) = (0f32, 0usize);
        for y in 0..h {
            let z = y + s;
            if (0..h).contains(&z) {
                sum += distance(&left[y as usize], &right[z as usize]);
                n += 1;
            }
        }
        sum / n.max(1) as f32 + 0.02 * s.abs() as f32
    };
    (-most..=most)
        .min_by(|&a, &b| cost(a).total_cmp(&cost(b)))
        .unwrap_or(0)
}

/// The per-channel median of some colours.
fn median(values: &mut [[f32; 3]]) -> [f32; 3] {
    let mid = values.len() / 2;
    [0, 1, 2].map(|c| {
        let (_, m, _) = values.select_nth_unstable_by(mid, |a, b| a[c].total_cmp(&b[c]));
        m[c]
    })
}

fn distance(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt()
}

/// How far past a surface's own misfit spread a pixel must be to count.
const ROUGHNESS_SIGMAS: f32 = 4.5;

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

/// Pixels unlike the background, and among them those that are the
/// background darkened with its colour kept (what a shadow does).
/// A rough surface raises the bar on its rows.
fn foreground(plane: &Plane, fit: &Fit, threshold: f32) -> (Binary, Binary) {
    let (w, h) = (plane.width, plane.height);
    let model = &fit.model;
    let mut unlike = Binary::new(w, h);
    let mut shadowy = Binary::new(w, h);
    for y in 0..h {
        let threshold = threshold.max(ROUGHNESS_SIGMAS * fit.roughness[y]);
        for x in 0..w {
            let p = &plane.pixels[y * w + x];
            let b = model.at(x as f32 + 0.5, y as f32);
            if distance(p, &b) <= threshold {
                continue;
            }
            unlike.data[y * w + x] = true;
            let bb: f32 = b.iter().map(|c| c * c).sum::<f32>().max(1.0);
            let gain = p.iter().zip(&b).map(|(p, b)| p * b).sum::<f32>() / bb;
            let dimmed = b.map(|c| c * gain);
            shadowy.data[y * w + x] =
                (0.4..1.0).contains(&gain) && distance(p, &dimmed) <= threshold * 0.6;
        }
    }
    (unlike, shadowy)
}

/// Closes gaps, fills holes, removes specks and cast shadows, and keeps the
/// product's component.
/// `standing`: the product stands on a surface seen meeting the wall, so
/// it reaches down to one base line.
fn clean(raw: &Binary, shadowy: &Binary, standing: bool) -> Binary {
    let min_area = (raw.width * raw.height / 500).max(4);
    let first = raw.close(2).fill_holes().open(1);
    let Some((_, top, _, bottom)) = first.keep_product(min_area).extent() else {
        return first;
    };
    // A shadow on the table is seen at a grazing angle: a flat patch low on
    // the object. Shadow-coloured parts that stand up (the shaded side of a
    // white box) stay.
    // It lies beside the product, where the object's upper half does not
    // reach, or is a thin seam under its base.
    let tall = (bottom + 1 - top) as f32;
    let upper = (0..first.width)
        .filter(|&x| (top..top + (bottom - top) / 2).any(|y| first.data[y * first.width + x]))
        .fold((usize::MAX, 0), |(a, b), x| (a.min(x), b.max(x)));
    let patches = shadowy.and(&first).open(1).components();
    let flat = patches.only(|i| {
        let part = &patches.parts[i];
        let beside = part.x0 < upper.0.saturating_sub(part.width() / 4)
            || part.x1 > upper.1 + part.width() / 4;
        let seam = part.height() as f32 <= tall * 0.05;
        part.height() as f32 <= tall * 0.22
            && part.y0 as f32 >= top as f32 + tall * 0.55
            && part.width() >= part.height()
            && (beside || seam)
    });
    let product = first
        .minus(&flat)
        .open(1)
        .keep_product(min_area)
        .fill_rows((raw.width / 40).max(2));
    if standing {
        product.extend_to_base()
    } else {
        product
    }
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
