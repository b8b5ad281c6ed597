//! What a reviewer needs to trust a crop: where the mask sits in its frame
//! (its share of the frame, how much of the frame's border it touches, how
//! much of the width and height it spans), how sharp the product is, and
//! warnings where a frame looks wrong, judged against the video's other frames.

use image::GrayImage;
use serde::{Deserialize, Serialize};

/// A mask's place in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Mask area over frame area.
    pub area_share: f32,
    /// Share of the frame's border pixels the mask covers.
    pub border_share: f32,
    /// The mask's box width over the frame's width, and height over height.
    pub width_share: f32,
    pub height_share: f32,
}

/// Where a mask sits in its frame (all zero for an empty mask).
pub fn placement(mask: &GrayImage) -> Placement {
    let (w, h) = mask.dimensions();
    let set = |x: u32, y: u32| mask.get_pixel(x, y).0[0] >= 128;
    let area = crate::segment::area(mask) as f32;
    let mut border = 0u32;
    for x in 0..w {
        border += u32::from(set(x, 0)) + u32::from(h > 1 && set(x, h - 1));
    }
    for y in 1..h.saturating_sub(1) {
        border += u32::from(set(0, y)) + u32::from(w > 1 && set(w - 1, y));
    }
    let perimeter = (2 * w + 2 * h.saturating_sub(2)).max(1) as f32;
    let (width_share, height_share) = crate::segment::bounding_box(mask).map_or((0.0, 0.0), |b| {
        (b.width as f32 / w as f32, b.height as f32 / h as f32)
    });
    Placement {
        area_share: area / (w * h).max(1) as f32,
        border_share: border as f32 / perimeter,
        width_share,
        height_share,
    }
}

/// Something wrong with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warning {
    /// The mask spans the frame's whole width: a band of wall or table, not a
    /// product standing in the picture.
    SpansWidth,
    /// The mask covers most of the frame.
    FillsFrame,
    /// The mask runs along the frame's border: the product may be cut off.
    TouchesBorder,
    /// The mask is far larger or smaller than in the video's other frames.
    OddSize,
    /// Much blurrier than the video's other frames.
    Blurred,
}

impl Warning {
    /// Whether the frame is unusable (left out rather than saved with a
    /// warning) when the segmenter fails this way (`spanning_masks_fail`).
    pub fn rejects(self) -> bool {
        matches!(self, Self::SpansWidth | Self::FillsFrame)
    }

    /// For a reviewer.
    pub fn describe(self) -> &'static str {
        match self {
            Self::SpansWidth => "the mask spans the frame's whole width",
            Self::FillsFrame => "the mask covers most of the frame",
            Self::TouchesBorder => "the mask runs along the frame's border (cut off?)",
            Self::OddSize => "the mask is much larger or smaller than in the other frames",
            Self::Blurred => "much blurrier than the other frames",
        }
    }
}

/// One frame's figures, as the video job measured them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub placement: Placement,
    pub sharpness: f32,
}

/// The warnings of each frame of one video, judged against the others.
pub fn review(frames: &[Measured]) -> Vec<Vec<Warning>> {
    let median = |values: Vec<f32>| -> f32 {
        let mut values = values;
        if values.is_empty() {
            return 0.0;
        }
        let mid = values.len() / 2;
        *values.select_nth_unstable_by(mid, f32::total_cmp).1
    };
    let typical_area = median(frames.iter().map(|f| f.placement.area_share).collect());
    let typical_sharpness = median(frames.iter().map(|f| f.sharpness).collect());
    frames
        .iter()
        .map(|f| {
            let p = &f.placement;
            let mut warnings = Vec::new();
            if p.width_share >= 0.97 {
                warnings.push(Warning::SpansWidth);
            }
            if p.area_share >= 0.75 {
                warnings.push(Warning::FillsFrame);
            }
            if p.border_share >= 0.05 {
                warnings.push(Warning::TouchesBorder);
            }
            if frames.len() >= 3
                && typical_area > 0.0
                && !(0.4..=2.5).contains(&(p.area_share / typical_area))
            {
                warnings.push(Warning::OddSize);
            }
            if frames.len() >= 3 && f.sharpness < typical_sharpness * 0.25 {
                warnings.push(Warning::Blurred);
            }
            warnings
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn mask(w: u32, h: u32, inside: impl Fn(u32, u32) -> bool) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]))
    }

    #[test]
    fn a_product_in_the_middle_is_fine_and_a_band_is_rejected() {
        let product = placement(&mask(100, 80, |x, y| {
            (40..60).contains(&x) && (20..60).contains(&y)
        }));
        assert_eq!(product.border_share, 0.0);
        assert!((product.area_share - 0.1).abs() < 1e-6);
        assert!((product.width_share - 0.2).abs() < 1e-6);
        let band = placement(&mask(100, 80, |_, y| (40..70).contains(&y)));
        assert_eq!(band.width_share, 1.0);

        let fine = Measured {
            placement: product,
            sharpness: 50.0,
        };
        let warnings = review(&[
            fine,
            fine,
            fine,
            Measured {
                placement: band,
                sharpness: 50.0,
            },
        ]);
        assert!(warnings[..3].iter().all(Vec::is_empty), "{warnings:?}");
        assert!(warnings[3].contains(&Warning::SpansWidth));
        assert!(warnings[3].contains(&Warning::TouchesBorder));
        assert!(warnings[3].contains(&Warning::OddSize));
        assert!(warnings[3].iter().any(|w| w.rejects()));
    }

    #[test]
    fn a_blurred_frame_is_told_from_the_others() {
        let product = placement(&mask(50, 50, |x, y| {
            (10..30).contains(&x) && (10..40).contains(&y)
        }));
        let sharp = Measured {
            placement: product,
            sharpness: 80.0,
        };
        let blurred = Measured {
            placement: product,
            sharpness: 5.0,
        };
        let warnings = review(&[sharp, sharp, blurred]);
        assert_eq!(warnings[2], vec![Warning::Blurred]);
        assert!(!Warning::Blurred.rejects());
    }
}
