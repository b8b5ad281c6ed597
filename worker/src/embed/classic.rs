//! The classic descriptor: what serves as the embedding when no model is
//! configured. Over the product's pixels (its mask; for a photo without one,
//! the classic segmenter's mask, else a centre weighting):
//!
//! - a colour histogram: 12 hues x 2 saturations x 2 brightnesses for
//!   coloured pixels, 4 grey levels for the rest (52 bins);
//! - the same, coarser (8 hues + 4 greys), in each cell of a 2 x 3 grid over
//!   the mask's box: where on the pack the colours are (72 bins);
//! - edge orientations (8 directions, weighted by strength), over the whole
//!   product and per third of its height (32 bins).
//!
//! Each block is a distribution (sums to one), square-rooted (so that cosine
//! similarity is the Bhattacharyya coefficient) and weighted; the whole is
//! L2-normalised. It tells packs of different colours and layouts apart; it
//! does not read text, and two packs that differ only in print look alike.

use image::{GrayImage, RgbImage};

use super::{Embedder, ModelInfo, Subject, normalise};
use crate::segment::{ClassicSegmenter, Segmenter, area};

/// The descriptor's version: vectors of another version are another model.
const VERSION: &str = "classic-colour-layout-edges-v1";

const HUES: usize = 12;
const COARSE_HUES: usize = 8;
const GREYS: usize = 4;
const GLOBAL_BINS: usize = HUES * 4 + GREYS;
const CELL_BINS: usize = COARSE_HUES + GREYS;
const GRID: (usize, usize) = (2, 3);
const ORIENTATIONS: usize = 8;
const EDGE_BANDS: usize = 3;

/// The number of values in a classic vector.
pub const DIMS: usize = GLOBAL_BINS + GRID.0 * GRID.1 * CELL_BINS + ORIENTATIONS * (1 + EDGE_BANDS);

/// Every second pixel in each direction: plenty for histograms of a 518 frame.
const STEP: u32 = 2;

pub struct ClassicEmbedder {
    info: ModelInfo,
    segmenter: ClassicSegmenter,
}

impl Default for ClassicEmbedder {
    fn default() -> Self {
        Self {
            info: ModelInfo {
                kind: "classic",
                name: "classic".to_owned(),
                dims: DIMS,
                config: serde_json::json!({
                    "descriptor": VERSION,
                    "blocks": {
                        "colour": GLOBAL_BINS,
                        "layout": GRID.0 * GRID.1 * CELL_BINS,
                        "edges": ORIENTATIONS * (1 + EDGE_BANDS),
                    },
                }),
                weights_hash: VERSION.to_owned(),
            },
            segmenter: ClassicSegmenter::default(),
        }
    }
}

impl Embedder for ClassicEmbedder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn embed(&self, subjects: &[Subject<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        subjects
            .iter()
            .map(|subject| {
                let found;
                let mask = match subject.mask {
                    Some(mask) => Some(mask),
                    None => {
                        found = self.find_product(subject.image)?;
                        found.as_ref()
                    }
                };
                Ok(describe(subject.image, mask))
            })
            .collect()
    }
}

impl ClassicEmbedder {
    /// The product in a photo without a mask: the classic segmenter's mask
    /// when it found something that is neither a speck nor the whole image.
    fn find_product(&self, image: &RgbImage) -> anyhow::Result<Option<GrayImage>> {
        let (w, h) = image.dimensions();
        if w < 32 || h < 32 {
            return Ok(None);
        }
        let mask = self.segmenter.segment(std::slice::from_ref(image), "")?;
        let share = area(&mask[0]) as f64 / (f64::from(w) * f64::from(h));
        Ok((0.02..0.9)
            .contains(&share)
            .then(|| mask.into_iter().next().unwrap_or_default()))
    }
}

/// A pixel's colour bin: (hue position in [0, hues), saturation and
/// brightness halves), or a grey level.
enum Colour {
    Hue {
        hue: f32,
        high_sat: bool,
        high_val: bool,
    },
    Grey(usize),
}

fn colour(p: [u8; 3]) -> Colour {
    let [r, g, b] = p.map(|v| f32::from(v) / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let chroma = max - min;
    let sat = if max > 0.0 { chroma / max } else { 0.0 };
    if sat < 0.2 || max < 0.15 {
        return Colour::Grey(((max * GREYS as f32) as usize).min(GREYS - 1));
    }
    let hue = if max == r {
        ((g - b) / chroma).rem_euclid(6.0)
    } else if max == g {
        (b - r) / chroma + 2.0
    } else {
        (r - g) / chroma + 4.0
    } / 6.0;
    Colour::Hue {
        hue,
        high_sat: sat >= 0.55,
        high_val: max >= 0.6,
    }
}

/// Adds `weight` to a circular hue histogram of `bins` bins starting at
/// `offset` (stride `stride`), split between the two nearest bins.
fn add_hue(hist: &mut [f32], offset: usize, stride: usize, bins: usize, hue: f32, weight: f32) {
    let pos = hue * bins as f32 - 0.5;
    let lower = pos.floor();
    let frac = pos - lower;
    let a = (lower as i64).rem_euclid(bins as i64) as usize;
    let b = (a + 1) % bins;
    hist[offset + a * stride] += weight * (1.0 - frac);
    hist[offset + b * stride] += weight * frac;
}

/// The classic vector of an image, over the mask when there is one.
pub fn describe(image: &RgbImage, mask: Option<&GrayImage>) -> Vec<f32> {
    let (w, h) = image.dimensions();
    let weight_at = |x: u32, y: u32| -> f32 {
        match mask {
            Some(m) if m.dimensions() == (w, h) => {
                if m.get_pixel(x, y).0[0] >= 128 {
                    1.0
                } else {
                    0.0
                }
            }
            _ => {
                // Centre weighting: the product is in the middle of a crop.
                let dx = (x as f32 + 0.5) / w as f32 - 0.5;
                let dy = (y as f32 + 0.5) / h as f32 - 0.5;
                (-(dx * dx + dy * dy) / (2.0 * 0.2 * 0.2)).exp()
            }
        }
    };
    // The box the layout grid and edge bands are laid over.
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for y in (0..h).step_by(STEP as usize) {
        for x in (0..w).step_by(STEP as usize) {
            if weight_at(x, y) > 0.5 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x + 1);
                y1 = y1.max(y + 1);
            }
        }
    }
    if x0 >= x1 || y0 >= y1 {
        (x0, y0, x1, y1) = (0, 0, w.max(1), h.max(1));
    }
    let (bw, bh) = ((x1 - x0) as f32, (y1 - y0) as f32);

    let mut global = vec![0f32; GLOBAL_BINS];
    let mut cells = vec![0f32; GRID.0 * GRID.1 * CELL_BINS];
    let mut edges = vec![0f32; ORIENTATIONS * (1 + EDGE_BANDS)];
    let luma = |x: u32, y: u32| {
        let p = image.get_pixel(x, y).0;
        0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
    };
    for y in (0..h).step_by(STEP as usize) {
        for x in (0..w).step_by(STEP as usize) {
            let weight = weight_at(x, y);
            if weight < 1e-3 {
                continue;
            }
            let col =
                (((x.saturating_sub(x0)) as f32 / bw * GRID.0 as f32) as usize).min(GRID.0 - 1);
            let row =
                (((y.saturating_sub(y0)) as f32 / bh * GRID.1 as f32) as usize).min(GRID.1 - 1);
            let cell = (row * GRID.0 + col) * CELL_BINS;
            match colour(image.get_pixel(x, y).0) {
                Colour::Hue {
                    hue,
                    high_sat,
                    high_val,
                } => {
                    let offset = usize::from(high_sat) * 2 + usize::from(high_val);
                    add_hue(&mut global, offset, 4, HUES, hue, weight);
                    add_hue(&mut cells, cell, 1, COARSE_HUES, hue, weight);
                }
                Colour::Grey(level) => {
                    global[HUES * 4 + level] += weight;
                    cells[cell + COARSE_HUES + level] += weight;
                }
            }
            if x > 0 && y > 0 && x + 1 < w && y + 1 < h {
                let gx = luma(x + 1, y) - luma(x - 1, y);
                let gy = luma(x, y + 1) - luma(x, y - 1);
                let strength = (gx * gx + gy * gy).sqrt();
                if strength > 8.0 {
                    // Orientation modulo 180 degrees: a dark-to-light edge and
                    // its opposite are the same line.
                    let angle = gy.atan2(gx).rem_euclid(std::f32::consts::PI);
                    let bin = ((angle / std::f32::consts::PI * ORIENTATIONS as f32) as usize)
                        .min(ORIENTATIONS - 1);
                    let band = (((y.saturating_sub(y0)) as f32 / bh * EDGE_BANDS as f32) as usize)
                        .min(EDGE_BANDS - 1);
                    let amount = weight * strength.min(255.0);
                    edges[bin] += amount;
                    edges[ORIENTATIONS * (1 + band) + bin] += amount;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(DIMS);
    block(&mut out, &global, 1, 1.0);
    block(&mut out, &cells, GRID.0 * GRID.1, 0.8);
    block(&mut out, &edges, 1 + EDGE_BANDS, 0.5);
    normalise(&mut out);
    out
}

/// Appends `parts` equal parts of `values`, each made a distribution,
/// square-rooted and scaled to `weight` (so each part has norm `weight`).
fn block(out: &mut Vec<f32>, values: &[f32], parts: usize, weight: f32) {
    for part in values.chunks(values.len() / parts) {
        let sum: f32 = part.iter().sum();
        if sum > 0.0 {
            out.extend(part.iter().map(|v| (v / sum).sqrt() * weight));
        } else {
            out.extend(std::iter::repeat_n(0.0, part.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;
    use crate::embed::cosine;

    fn pack(body: [u8; 3], band: [u8; 3], shift: u32) -> (RgbImage, GrayImage) {
        let image = RgbImage::from_fn(518, 518, |x, y| {
            let inside = (150 + shift..370 + shift).contains(&x) && (60..460).contains(&y);
            if !inside {
                Rgb([200, 200, 195])
            } else if (200..260).contains(&y) {
                Rgb(band)
            } else {
                Rgb(body)
            }
        });
        let mask = GrayImage::from_fn(518, 518, |x, y| {
            let inside = (150 + shift..370 + shift).contains(&x) && (60..460).contains(&y);
            image::Luma([if inside { 255 } else { 0 }])
        });
        (image, mask)
    }

    #[test]
    fn vectors_are_unit_and_tell_packs_apart() {
        let embedder = ClassicEmbedder::default();
        let (red, red_mask) = pack([200, 30, 30], [240, 240, 240], 0);
        let (red_moved, moved_mask) = pack([205, 35, 28], [235, 235, 240], 40);
        let (blue, blue_mask) = pack([30, 60, 200], [240, 240, 240], 0);
        let (red_band_low, low_mask) = pack([240, 240, 240], [200, 30, 30], 0);
        let vectors = embedder
            .embed(&[
                Subject {
                    image: &red,
                    mask: Some(&red_mask),
                },
                Subject {
                    image: &red_moved,
                    mask: Some(&moved_mask),
                },
                Subject {
                    image: &blue,
                    mask: Some(&blue_mask),
                },
                Subject {
                    image: &red_band_low,
                    mask: Some(&low_mask),
                },
            ])
            .unwrap();
        for v in &vectors {
            assert_eq!(v.len(), DIMS);
            let norm = cosine(v, v).sqrt();
            assert!((norm - 1.0).abs() < 1e-5);
        }
        let same = cosine(&vectors[0], &vectors[1]);
        let other_colour = cosine(&vectors[0], &vectors[2]);
        let other_layout = cosine(&vectors[0], &vectors[3]);
        assert!(same > 0.97, "the same pack moved: {same}");
        assert!(
            same > other_colour + 0.2,
            "{same} vs another colour {other_colour}"
        );
        assert!(
            same > other_layout + 0.1,
            "{same} vs another layout {other_layout}"
        );
    }

    #[test]
    fn a_photo_without_a_mask_is_found_by_the_segmenter() {
        let embedder = ClassicEmbedder::default();
        let (red, mask) = pack([200, 30, 30], [240, 240, 240], 0);
        let with_mask = embedder
            .embed(&[Subject {
                image: &red,
                mask: Some(&mask),
            }])
            .unwrap();
        let without = embedder
            .embed(&[Subject {
                image: &red,
                mask: None,
            }])
            .unwrap();
        let similarity = cosine(&with_mask[0], &without[0]);
        assert!(similarity > 0.95, "{similarity}");
    }
}
