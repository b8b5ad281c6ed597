//! One planned image, drawn: a frame as filmed, an augmented draw, or a shelf
//! composite, each with its labels taken from the masks that the same
//! transform moved, so every box and polygon matches the pixels.

use std::io::Cursor;

use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};

use crate::{
    augment::{Augment, augment},
    composite::{Cutout, Shelf, compose},
    export::Object,
    geometry::{self, BoxPx},
    plan::Kind,
};

/// Parts smaller than this many pixels get no polygon of their own.
const MIN_PART: u64 = 16;
/// Polygon simplification tolerance, in pixels.
const TOLERANCE: f64 = 1.0;

/// One frame an image is made from.
pub struct Source<'a> {
    pub image: &'a RgbImage,
    /// `None` only for recognition, where the whole image is the product.
    pub mask: Option<&'a GrayImage>,
    /// Index into the version's classes.
    pub class: usize,
}

/// What a version renders with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub augment: Augment,
    pub shelf: Shelf,
    /// Uploaded background images, decoded.
    pub backgrounds: Vec<RgbImage>,
}

/// A drawn image and its labels.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub image: RgbImage,
    pub objects: Vec<Object>,
}

/// Draws one item. `sources` holds one frame for frames and draws, several for
/// composites.
pub fn render(kind: Kind, sources: &[Source<'_>], seed: u64, settings: &Settings) -> Rendered {
    match kind {
        Kind::Frame | Kind::Augmented | Kind::Real => {
            let source = &sources[0];
            let (w, h) = source.image.dimensions();
            let whole;
            let mask = match source.mask {
                Some(mask) => mask,
                None => {
                    whole = GrayImage::from_pixel(w, h, Luma([255]));
                    &whole
                }
            };
            let (image, mask) = if kind != Kind::Augmented {
                (source.image.clone(), mask.clone())
            } else {
                augment(
                    source.image,
                    mask,
                    &settings.augment,
                    seed,
                    &settings.backgrounds,
                )
            };
            let objects = object(source.class, &mask, source.mask.is_some())
                .into_iter()
                .collect();
            Rendered { image, objects }
        }
        Kind::Composite => {
            let masks: Vec<GrayImage> = sources
                .iter()
                .map(|s| {
                    s.mask.cloned().unwrap_or_else(|| {
                        GrayImage::from_pixel(s.image.width(), s.image.height(), Luma([255]))
                    })
                })
                .collect();
            let cutouts: Vec<Cutout<'_>> = sources
                .iter()
                .zip(&masks)
                .map(|(s, mask)| Cutout {
                    image: s.image,
                    mask,
                })
                .collect();
            let (image, placed) = compose(&cutouts, &settings.shelf, seed, &settings.backgrounds);
            let objects = placed
                .iter()
                .filter_map(|p| object(sources[p.source].class, &p.mask, true))
                .collect();
            Rendered { image, objects }
        }
    }
}

/// The label of one product from its mask: box, area and (when the mask is a
/// real outline) polygons. `None` when nothing of it is visible.
pub fn object(class: usize, mask: &GrayImage, outline: bool) -> Option<Object> {
    let bbox = geometry::bbox(mask)?;
    let polygons = if outline {
        geometry::polygons(mask, MIN_PART)
            .iter()
            .map(|p| geometry::simplify(p, TOLERANCE))
            .filter(|p| p.len() >= 3)
            .collect()
    } else {
        Vec::new()
    };
    Some(Object {
        class,
        bbox,
        area: geometry::area(mask),
        polygons,
    })
}

/// PNG bytes of an image (the format every export carries).
pub fn png(image: &RgbImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, ImageFormat::Png)
        .expect("encoding to memory cannot fail");
    bytes.into_inner()
}

/// Outlines each object's box on the image (previews), two pixels wide, in a
/// colour per class.
pub fn draw_boxes(image: &mut RgbImage, objects: &[Object]) {
    const COLOURS: [[u8; 3]; 6] = [
        [255, 64, 64],
        [64, 200, 64],
        [64, 128, 255],
        [255, 200, 0],
        [220, 64, 220],
        [0, 210, 210],
    ];
    let (w, h) = image.dimensions();
    for o in objects {
        let colour = Rgb(COLOURS[o.class % COLOURS.len()]);
        let BoxPx { x, y, w: bw, h: bh } = o.bbox;
        let (x1, y1) = ((x + bw).min(w) - 1, (y + bh).min(h) - 1);
        for t in 0..2u32 {
            for px in x..=x1 {
                for py in [y.saturating_add(t).min(y1), y1.saturating_sub(t).max(y)] {
                    image.put_pixel(px, py, colour);
                }
            }
            for py in y..=y1 {
                for px in [x.saturating_add(t).min(x1), x1.saturating_sub(t).max(x)] {
                    image.put_pixel(px, py, colour);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(w: u32, h: u32, bx: BoxPx) -> (RgbImage, GrayImage) {
        let mut image = RgbImage::from_pixel(w, h, Rgb([240, 240, 240]));
        let mut mask = GrayImage::new(w, h);
        for y in bx.y..bx.y + bx.h {
            for x in bx.x..bx.x + bx.w {
                image.put_pixel(x, y, Rgb([200, 30, 30]));
                mask.put_pixel(x, y, Luma([255]));
            }
        }
        (image, mask)
    }

    #[test]
    fn a_frame_is_labelled_by_its_mask_and_a_draw_by_its_moved_mask() {
        let bx = BoxPx {
            x: 20,
            y: 30,
            w: 40,
            h: 50,
        };
        let (image, mask) = product(128, 128, bx);
        let sources = [Source {
            image: &image,
            mask: Some(&mask),
            class: 3,
        }];
        let frame = render(Kind::Frame, &sources, 0, &Settings::default());
        assert_eq!(frame.image, image);
        assert_eq!(frame.objects.len(), 1);
        let o = &frame.objects[0];
        assert_eq!((o.class, o.bbox, o.area), (3, bx, 2000));
        assert_eq!(
            o.polygons,
            vec![vec![[20, 30], [60, 30], [60, 80], [20, 80]]]
        );

        let settings = Settings {
            augment: Augment {
                flip: 1.0,
                ..Augment::off()
            },
            ..Settings::default()
        };
        let flipped = render(Kind::Augmented, &sources, 9, &settings);
        assert_eq!(flipped.objects[0].bbox, BoxPx { x: 128 - 60, ..bx });
        // The same seed draws the same image.
        let again = render(Kind::Augmented, &sources, 9, &Settings::default());
        let other = render(Kind::Augmented, &sources, 9, &Settings::default());
        assert_eq!(again.image, other.image);
        assert_eq!(again.objects, other.objects);
    }

    #[test]
    fn recognition_frames_without_masks_are_whole_image_boxes() {
        let image = RgbImage::new(64, 48);
        let sources = [Source {
            image: &image,
            mask: None,
            class: 0,
        }];
        let r = render(Kind::Frame, &sources, 0, &Settings::default());
        assert_eq!(
            r.objects[0].bbox,
            BoxPx {
                x: 0,
                y: 0,
                w: 64,
                h: 48
            }
        );
        assert!(r.objects[0].polygons.is_empty());
    }

    #[test]
    fn composites_label_each_visible_product_with_its_own_class() {
        let (a, am) = product(
            96,
            160,
            BoxPx {
                x: 10,
                y: 10,
                w: 70,
                h: 140,
            },
        );
        let (b, bm) = product(
            96,
            160,
            BoxPx {
                x: 20,
                y: 5,
                w: 50,
                h: 150,
            },
        );
        let sources = [
            Source {
                image: &a,
                mask: Some(&am),
                class: 0,
            },
            Source {
                image: &b,
                mask: Some(&bm),
                class: 1,
            },
        ];
        let settings = Settings {
            shelf: Shelf {
                width: 400,
                height: 300,
                ..Shelf::default()
            },
            ..Settings::default()
        };
        let r = render(Kind::Composite, &sources, 5, &settings);
        assert_eq!(r.image.dimensions(), (400, 300));
        assert!(r.objects.len() >= 2, "{}", r.objects.len());
        let classes: Vec<usize> = r.objects.iter().map(|o| o.class).collect();
        assert!(classes.contains(&0) && classes.contains(&1), "{classes:?}");
        for o in &r.objects {
            assert!(o.bbox.x + o.bbox.w <= 400 && o.bbox.y + o.bbox.h <= 300);
            assert!(!o.polygons.is_empty());
        }
    }

    #[test]
    fn boxes_are_drawn_on_their_edges() {
        let mut image = RgbImage::new(32, 32);
        let o = Object {
            class: 0,
            bbox: BoxPx {
                x: 4,
                y: 4,
                w: 10,
                h: 10,
            },
            area: 100,
            polygons: vec![],
        };
        draw_boxes(&mut image, &[o]);
        assert_eq!(image.get_pixel(4, 4).0, [255, 64, 64]);
        assert_eq!(image.get_pixel(13, 13).0, [255, 64, 64]);
        assert_eq!(image.get_pixel(8, 8).0, [0, 0, 0]);
        assert_eq!(image.get_pixel(14, 14).0, [0, 0, 0]);
        let _ = png(&image);
    }
}
