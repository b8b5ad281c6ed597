//! Shelf composites: several products, cut out by their masks, pasted side by
//! side on shelves over a background, at varied scales and overlapping, into
//! one image with a mask and a box per product. Multi-object training images
//! for shelf detectors, made from single-product videos.
//!
//! Later pastes cover earlier ones, so each product's mask is what is still
//! visible of it; every product with any visible pixels is labelled, so no
//! product in the image goes without a box.

use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage, imageops};
use serde::{Deserialize, Serialize};

use crate::{
    augment::{BackgroundKind, Rng, background},
    geometry::{self, BoxPx},
};

/// A product to paste: a frame and its mask.
#[derive(Debug, Clone, Copy)]
pub struct Cutout<'a> {
    pub image: &'a RgbImage,
    pub mask: &'a GrayImage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Shelf {
    pub width: u32,
    pub height: u32,
    /// Shelves (rows) per image, drawn from this range.
    pub rows: [u32; 2],
    /// Products per image at most.
    pub max_objects: u32,
    /// A product's height as a share of its shelf's height.
    pub scale: [f64; 2],
    /// How much of a product the next one may cover, as a share of its width.
    pub overlap: [f64; 2],
    pub background: BackgroundKind,
}

impl Default for Shelf {
    fn default() -> Self {
        Self {
            width: 1024,
            height: 768,
            rows: [2, 3],
            max_objects: 12,
            scale: [0.6, 0.95],
            overlap: [0.0, 0.35],
            background: BackgroundKind::Texture,
        }
    }
}

/// One pasted product.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    /// Which cutout it is.
    pub source: usize,
    /// Its visible pixels, canvas-sized.
    pub mask: GrayImage,
    pub bbox: BoxPx,
    pub area: u64,
    /// Visible pixels as a share of the pasted ones.
    pub visible: f64,
}

/// Composes one shelf image from `cutouts` over a background
/// of the configured kind (`backgrounds`: the uploaded images).
pub fn compose(
    cutouts: &[Cutout<'_>],
    config: &Shelf,
    seed: u64,
    backgrounds: &[RgbImage],
) -> (RgbImage, Vec<Placed>) {
    let mut rng = Rng::new(seed);
    let (w, h) = (config.width.max(16), config.height.max(16));
    let mut canvas = background(
        config.background,
        w,
        h,
        &mut Rng::new(rng.next_u64()),
        backgrounds,
    );
    // Who owns each pixel: 0 for the background, else the paste's number + 1.
    let mut owner = vec![0u16; (w * h) as usize];
    let mut pasted: Vec<(usize, u64)> = Vec::new();
    // Each cutout's box, found once; cutouts with empty masks are left out.
    let boxes: Vec<(usize, BoxPx)> = cutouts
        .iter()
        .enumerate()
        .filter_map(|(i, cut)| geometry::bbox(cut.mask).map(|b| (i, b)))
        .collect();
    let rows = config.rows[0].max(1)
        + (rng.next_u64() % u64::from(config.rows[1].saturating_sub(config.rows[0]) + 1)) as u32;
    let row_h = h / rows;
    'rows: for row in 0..rows {
        let floor = (row + 1) * row_h;
        let mut x = (rng.unit() * f64::from(row_h) * 0.2) as i64;
        while x < i64::from(w) {
            if pasted.len() as u32 >= config.max_objects.min(u32::from(u16::MAX) - 1) {
                break 'rows;
            }
            if boxes.is_empty() {
                break 'rows;
            }
            let (source, b) = boxes[(rng.next_u64() % boxes.len() as u64) as usize];
            let cut = &cutouts[source];
            let target_h = (f64::from(row_h) * rng.range(config.scale)).max(8.0);
            let k = target_h / f64::from(b.h);
            let (pw, ph) = (
                ((f64::from(b.w) * k).round() as u32).max(1),
                (target_h.round() as u32).max(1),
            );
            let (image, mask) = scaled_cutout(cut, b, pw, ph);
            let top = i64::from(floor) - i64::from(ph) - (rng.unit() * 4.0) as i64;
            let id = pasted.len() as u16 + 1;
            let mut pixels = 0u64;
            for (mx, my, m) in mask.enumerate_pixels() {
                let (cx, cy) = (x + i64::from(mx), top + i64::from(my));
                if m.0[0] < 128 || cx < 0 || cy < 0 || cx >= i64::from(w) || cy >= i64::from(h) {
                    continue;
                }
                let (cx, cy) = (cx as u32, cy as u32);
                canvas.put_pixel(cx, cy, *image.get_pixel(mx, my));
                owner[(cy * w + cx) as usize] = id;
                pixels += 1;
            }
            if pixels > 0 {
                pasted.push((source, pixels));
            }
            let step = f64::from(pw) * (1.0 - rng.range(config.overlap).clamp(0.0, 0.9));
            x += step.max(1.0) as i64;
        }
    }
    let placed = pasted
        .iter()
        .enumerate()
        .filter_map(|(i, (source, pixels))| {
            let id = i as u16 + 1;
            let mask = GrayImage::from_fn(w, h, |x, y| {
                Luma([if owner[(y * w + x) as usize] == id {
                    255
                } else {
                    0
                }])
            });
            let bbox = geometry::bbox(&mask)?;
            let area = geometry::area(&mask);
            Some(Placed {
                source: *source,
                mask,
                bbox,
                area,
                visible: area as f64 / *pixels as f64,
            })
        })
        .collect();
    (canvas, placed)
}

/// The product inside box `b`, scaled to `w`×`h`. Colours are weighted by the
/// mask while resampling, so the edge does not pick up the frame's old
/// background; the mask is the resampled one, thresholded.
fn scaled_cutout(cut: &Cutout<'_>, b: BoxPx, w: u32, h: u32) -> (RgbImage, GrayImage) {
    let weighted = RgbaImage::from_fn(b.w, b.h, |x, y| {
        let m = u32::from(cut.mask.get_pixel(b.x + x, b.y + y).0[0]);
        let p = cut.image.get_pixel(b.x + x, b.y + y).0;
        Rgba([
            (u32::from(p[0]) * m / 255) as u8,
            (u32::from(p[1]) * m / 255) as u8,
            (u32::from(p[2]) * m / 255) as u8,
            m as u8,
        ])
    });
    let scaled = imageops::resize(&weighted, w, h, imageops::FilterType::Triangle);
    let image = RgbImage::from_fn(w, h, |x, y| {
        let [r, g, b, a] = scaled.get_pixel(x, y).0;
        let a = u32::from(a).max(1);
        Rgb([r, g, b].map(|c| (u32::from(c) * 255 / a).min(255) as u8))
    });
    let mask = GrayImage::from_fn(w, h, |x, y| {
        Luma([if scaled.get_pixel(x, y).0[3] >= 128 {
            255
        } else {
            0
        }])
    });
    (image, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with a coloured disc (the product) on white, and its mask.
    fn product(colour: [u8; 3], radius: i32) -> (RgbImage, GrayImage) {
        let on = |x: u32, y: u32| {
            let (dx, dy) = (x as i32 - 64, y as i32 - 64);
            dx * dx + dy * dy <= radius * radius
        };
        (
            RgbImage::from_fn(128, 128, |x, y| {
                Rgb(if on(x, y) { colour } else { [255, 255, 255] })
            }),
            GrayImage::from_fn(128, 128, |x, y| Luma([if on(x, y) { 255 } else { 0 }])),
        )
    }

    #[test]
    fn every_visible_product_has_its_own_mask_and_box() {
        let products = [
            product([200, 0, 0], 40),
            product([0, 200, 0], 60),
            product([0, 0, 200], 25),
        ];
        let cutouts: Vec<Cutout<'_>> = products
            .iter()
            .map(|(image, mask)| Cutout { image, mask })
            .collect();
        let config = Shelf {
            width: 512,
            height: 384,
            overlap: [0.2, 0.4],
            ..Shelf::default()
        };
        let (image, placed) = compose(&cutouts, &config, 9, &[]);
        let again = compose(&cutouts, &config, 9, &[]);
        assert!(
            again.0 == image && again.1 == placed,
            "the same seed, the same image"
        );
        assert!(placed.len() >= 4, "{} products", placed.len());
        assert!(placed.len() <= config.max_objects as usize);
        assert!(placed.iter().any(|p| p.visible < 0.99), "some overlap");
        let mut covered = vec![0u32; (512 * 384) as usize];
        for p in &placed {
            assert_eq!(Some(p.bbox), geometry::bbox(&p.mask));
            assert!(p.bbox.x + p.bbox.w <= 512 && p.bbox.y + p.bbox.h <= 384);
            let colour = products[p.source].0.get_pixel(64, 64).0;
            for (x, y, m) in p.mask.enumerate_pixels() {
                if m.0[0] >= 128 {
                    covered[(y * 512 + x) as usize] += 1;
                    let got = image.get_pixel(x, y).0;
                    let near = got.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 12);
                    assert!(near, "pixel {x},{y} of product {} is {got:?}", p.source);
                }
            }
        }
        assert!(covered.iter().all(|c| *c <= 1), "masks never overlap");
    }

    #[test]
    fn cutouts_with_empty_masks_are_skipped_and_none_at_all_gives_a_bare_shelf() {
        let (image, _) = product([200, 0, 0], 40);
        let empty = GrayImage::new(128, 128);
        let (red, red_mask) = product([200, 0, 0], 40);
        let config = Shelf {
            width: 256,
            height: 192,
            ..Shelf::default()
        };
        let bare = compose(
            &[Cutout {
                image: &image,
                mask: &empty,
            }],
            &config,
            1,
            &[],
        );
        assert!(bare.1.is_empty());
        let mixed = [
            Cutout {
                image: &image,
                mask: &empty,
            },
            Cutout {
                image: &red,
                mask: &red_mask,
            },
        ];
        let (_, placed) = compose(&mixed, &config, 1, &[]);
        assert!(!placed.is_empty());
        assert!(
            placed.iter().all(|p| p.source == 1),
            "only the cutout with a mask"
        );
    }
}
