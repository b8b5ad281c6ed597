//! Segmentation: one mask of the product per frame. `Segmenter` is the seam the
//! backends plug into: `sam3` (SAM 3 through libtorch) when a model is
//! configured, `classic` on machines without one.

pub mod classic;
pub mod measure;
mod morphology;
#[cfg(feature = "sam3")]
pub mod sam3;

use image::{GrayImage, RgbImage};

pub use classic::ClassicSegmenter;
#[cfg(feature = "sam3")]
pub use sam3::Sam3Segmenter;

/// Finds the product in frames.
pub trait Segmenter: Send + Sync {
    /// A short name for logs and job events.
    fn name(&self) -> &'static str;

    /// One mask per frame, each the frame's size; 255 marks the product, 0 the
    /// rest. `prompt` names the product (backends that take text use it). A
    /// frame without the product gets an empty mask.
    fn segment(&self, frames: &[RgbImage], prompt: &str) -> anyhow::Result<Vec<GrayImage>>;

    /// Every instance of what `prompt` names in a photo (a shelf), best
    /// first; `None` when this backend cannot tell instances apart.
    fn instances(
        &self,
        _photo: &RgbImage,
        _prompt: &str,
        _min_score: f32,
    ) -> anyhow::Result<Option<Vec<Instance>>> {
        Ok(None)
    }

    /// Whether a mask spanning the frame is this backend's known way of
    /// failing (a band of wall or table) rather than a product: such frames
    /// are left out. Otherwise they are kept, with a warning for the reviewer.
    fn spanning_masks_fail(&self) -> bool {
        false
    }
}

/// One instance found in a photo.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Instance {
    pub score: f32,
    pub bbox: BoundingBox,
}

/// Where a mask's pixels are, in the mask's own coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BoundingBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The box around a mask's set pixels, if it has any.
pub fn bounding_box(mask: &GrayImage) -> Option<BoundingBox> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] >= 128 {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != u32::MAX).then(|| BoundingBox {
        x: x0,
        y: y0,
        width: x1 - x0 + 1,
        height: y1 - y0 + 1,
    })
}

/// How many pixels a mask covers.
pub fn area(mask: &GrayImage) -> u64 {
    mask.as_raw().iter().filter(|&&v| v >= 128).count() as u64
}

/// Intersection over union of two masks of the same size (1 when both are empty).
pub fn iou(a: &GrayImage, b: &GrayImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "masks of different sizes");
    let (mut both, mut either) = (0u64, 0u64);
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let (x, y) = (*x >= 128, *y >= 128);
        both += u64::from(x && y);
        either += u64::from(x || y);
    }
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn square(x: u32, y: u32, side: u32) -> GrayImage {
        GrayImage::from_fn(20, 20, |px, py| {
            let inside = (x..x + side).contains(&px) && (y..y + side).contains(&py);
            Luma([if inside { 255 } else { 0 }])
        })
    }

    #[test]
    fn boxes_areas_and_overlaps() {
        let a = square(2, 3, 4);
        assert_eq!(
            bounding_box(&a),
            Some(BoundingBox {
                x: 2,
                y: 3,
                width: 4,
                height: 4
            })
        );
        assert_eq!(area(&a), 16);
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &square(2, 5, 4)), 8.0 / 24.0);
        assert_eq!(bounding_box(&GrayImage::new(5, 5)), None);
    }
}
