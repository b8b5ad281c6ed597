//! From a frame and its product mask to a training image: crop to the mask's box
//! plus a margin, pad to a square, resize to exactly 518x518 (Lanczos3), and
//! handle the background as asked. The mask goes through the same steps.

use std::io::Cursor;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{
    GrayImage, ImageBuffer, ImageEncoder, Luma, Pixel, Rgb, RgbImage, RgbaImage,
    codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder},
};

use crate::segment::{BoundingBox, area, bounding_box};

/// The side of the square images the pipeline produces.
pub const SIZE: u32 = 518;

/// What becomes of the pixels around the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode", content = "colour")]
pub enum Background {
    /// The frame as filmed (padding takes the wall's colour).
    Keep,
    /// A flat colour.
    Solid([u8; 3]),
    /// Transparent (PNG with alpha).
    Transparent,
}

impl std::str::FromStr for Background {
    type Err = String;

    /// `keep`, `transparent`, or a colour as `#rrggbb`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep" => Ok(Self::Keep),
            "transparent" => Ok(Self::Transparent),
            hex if hex.len() == 7 && hex.starts_with('#') => {
                let channel = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16);
                match (channel(1), channel(3), channel(5)) {
                    (Ok(r), Ok(g), Ok(b)) => Ok(Self::Solid([r, g, b])),
                    _ => Err(format!("{hex:?} is not a colour like #ffffff")),
                }
            }
            other => Err(format!(
                "{other:?}: expected keep, transparent or a colour like #ffffff"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Space around the product's box, as a fraction of the box's longer side.
    pub margin: f32,
    pub background: Background,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            margin: 0.08,
            background: Background::Keep,
        }
    }
}

/// One finished frame.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The 518x518 image, PNG (RGB, or RGBA for a transparent background).
    pub image: Vec<u8>,
    /// The 518x518 mask, PNG (8-bit grey, 255 = product).
    pub mask: Vec<u8>,
    /// The product's box in the source frame.
    pub bbox: BoundingBox,
    /// The product's area in the source frame, in pixels.
    pub mask_area: u64,
    /// Variance of the Laplacian over the product (higher is sharper; blur is low).
    pub sharpness: f32,
    /// Mean luma over the product, 0 to 255.
    pub brightness: f32,
    /// Where the mask sits in the source frame.
    pub placement: crate::quality::Placement,
}

/// Turns a frame and its mask into the training image; `None` when the mask is
/// empty (the product is not in this frame).
pub fn process(frame: &RgbImage, mask: &GrayImage, options: &Options) -> Option<Processed> {
    let bbox = bounding_box(mask)?;
    let (left, top, side) = square_around(&bbox, options.margin);
    let wall = wall_colour(frame, mask);
    let fill = match options.background {
        Background::Solid(colour) => colour,
        Background::Keep | Background::Transparent => wall,
    };

    // The square, cut from the frame, padded where it runs off the frame's edge.
    let crop = cut(frame, (left, top, side), Rgb(fill));
    let crop_mask = cut(mask, (left, top, side), Luma([0]));
    let mut image = RgbImage::new(SIZE, SIZE);
    let mut soft = GrayImage::new(SIZE, SIZE);
    let mut resizer = Resizer::new();
    resizer
        .resize(
            &crop,
            &mut image,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .expect("same pixel types");
    resizer
        .resize(
            &crop_mask,
            &mut soft,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .expect("same pixel types");
    let binary = GrayImage::from_fn(SIZE, SIZE, |x, y| {
        Luma([if soft.get_pixel(x, y).0[0] >= 128 {
            255
        } else {
            0
        }])
    });

    let (sharpness, brightness) = quality(&image, &binary);

    // The soft mask blends the product into the new background, so edges stay smooth.
    let image_png = match options.background {
        Background::Keep => png_rgb(&image),
        Background::Solid(colour) => {
            for (pixel, alpha) in image.pixels_mut().zip(soft.pixels()) {
                let a = f32::from(alpha.0[0]) / 255.0;
                for (channel, background) in pixel.0.iter_mut().zip(colour) {
                    *channel =
                        (f32::from(*channel) * a + f32::from(background) * (1.0 - a)).round() as u8;
                }
            }
            png_rgb(&image)
        }
        Background::Transparent => {
            let rgba = RgbaImage::from_fn(SIZE, SIZE, |x, y| {
                let [r, g, b] = image.get_pixel(x, y).0;
                image::Rgba([r, g, b, soft.get_pixel(x, y).0[0]])
            });
            png(rgba.as_raw(), image::ExtendedColorType::Rgba8)
        }
    };
    Some(Processed {
        image: image_png,
        mask: png(binary.as_raw(), image::ExtendedColorType::L8),
        bbox,
        mask_area: area(mask),
        sharpness,
        brightness,
        placement: crate::quality::placement(mask),
    })
}

/// The square `(left, top, side)` cut from an image, `fill` where it runs off
/// the image's edge.
fn cut<P: Pixel<Subpixel = u8>>(
    source: &ImageBuffer<P, Vec<u8>>,
    (left, top, side): (i64, i64, u32),
    fill: P,
) -> ImageBuffer<P, Vec<u8>> {
    let mut out = ImageBuffer::from_pixel(side, side, fill);
    let (w, h) = (i64::from(source.width()), i64::from(source.height()));
    // Only the rows and columns inside the source are copied, row by row.
    let x0 = left.clamp(0, w);
    let x1 = (left + i64::from(side)).clamp(0, w);
    if x1 <= x0 {
        return out;
    }
    let channels = usize::from(P::CHANNEL_COUNT);
    for y in top.max(0)..(top + i64::from(side)).min(h) {
        let from = ((y * w + x0) as usize) * channels;
        let to = ((y * w + x1) as usize) * channels;
        let row = (y - top) as usize * side as usize;
        let at = (row + (x0 - left) as usize) * channels;
        let raw: &mut [u8] = &mut out;
        raw[at..at + (to - from)].copy_from_slice(&source.as_raw()[from..to]);
    }
    out
}

/// A box of a real photo (a product on a shelf) framed as the video job
/// frames a product: the box with `margin`, squared, padded with the mean
/// colour of the square's edge, resized to 518x518.
pub fn crop_box(photo: &RgbImage, bbox: &BoundingBox, margin: f32) -> RgbImage {
    let square = square_around(bbox, margin);
    let (left, top, side) = square;
    // The square's edge pixels that lie inside the photo.
    let (w, h) = (i64::from(photo.width()), i64::from(photo.height()));
    let (mut sum, mut n) = ([0u64; 3], 0u64);
    let last = i64::from(side) - 1;
    for i in 0..i64::from(side) {
        for (x, y) in [
            (left + i, top),
            (left + i, top + last),
            (left, top + i),
            (left + last, top + i),
        ] {
            if (0..w).contains(&x) && (0..h).contains(&y) {
                let p = photo.get_pixel(x as u32, y as u32).0;
                for c in 0..3 {
                    sum[c] += u64::from(p[c]);
                }
                n += 1;
            }
        }
    }
    let fill = if n == 0 {
        [128, 128, 128]
    } else {
        sum.map(|s| (s / n) as u8)
    };
    let crop = cut(photo, square, Rgb(fill));
    let mut image = RgbImage::new(SIZE, SIZE);
    Resizer::new()
        .resize(
            &crop,
            &mut image,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3)),
        )
        .expect("same pixel types");
    image
}

/// Where the box lies in its [`crop_box`] image: 255 inside, 0 in the margin
/// (the product's mask, as far as a box can tell).
pub fn crop_mask(bbox: &BoundingBox, margin: f32) -> GrayImage {
    let (left, top, side) = square_around(bbox, margin);
    let k = f64::from(SIZE) / f64::from(side);
    let scale = |v: i64| ((v as f64) * k).round().clamp(0.0, f64::from(SIZE)) as u32;
    let (x0, y0) = (
        scale(i64::from(bbox.x) - left),
        scale(i64::from(bbox.y) - top),
    );
    let x1 = scale(i64::from(bbox.x + bbox.width) - left);
    let y1 = scale(i64::from(bbox.y + bbox.height) - top);
    GrayImage::from_fn(SIZE, SIZE, |x, y| {
        image::Luma([if (x0..x1).contains(&x) && (y0..y1).contains(&y) {
            255
        } else {
            0
        }])
    })
}

/// Sharpness (variance of the 4-neighbour Laplacian of luma) and brightness
/// (mean luma) over the pixels inside the mask and away from its edge.
fn quality(image: &RgbImage, mask: &GrayImage) -> (f32, f32) {
    let luma = |x: u32, y: u32| {
        let [r, g, b] = image.get_pixel(x, y).0;
        0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
    };
    let inside = |x: u32, y: u32| mask.get_pixel(x, y).0[0] >= 128;
    let (mut n, mut sum_luma, mut sum, mut sum_sq) = (0f64, 0f64, 0f64, 0f64);
    for y in 1..SIZE - 1 {
        for x in 1..SIZE - 1 {
            if !(inside(x, y)
                && inside(x - 1, y)
                && inside(x + 1, y)
                && inside(x, y - 1)
                && inside(x, y + 1))
            {
                continue;
            }
            let centre = luma(x, y);
            let laplacian =
                luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1) - 4.0 * centre;
            n += 1.0;
            sum_luma += f64::from(centre);
            sum += f64::from(laplacian);
            sum_sq += f64::from(laplacian) * f64::from(laplacian);
        }
    }
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = sum / n;
    ((sum_sq / n - mean * mean) as f32, (sum_luma / n) as f32)
}

/// The square (left, top, side) centred on the box, with the margin added.
fn square_around(bbox: &BoundingBox, margin: f32) -> (i64, i64, u32) {
    let longer = bbox.width.max(bbox.height) as f32;
    let side = (longer * (1.0 + 2.0 * margin)).ceil().max(1.0) as u32;
    let cx = bbox.x as f32 + bbox.width as f32 / 2.0;
    let cy = bbox.y as f32 + bbox.height as f32 / 2.0;
    let left = (cx - side as f32 / 2.0).round() as i64;
    let top = (cy - side as f32 / 2.0).round() as i64;
    (left, top, side)
}

/// The mean colour of the frame's border pixels outside the mask.
fn wall_colour(frame: &RgbImage, mask: &GrayImage) -> [u8; 3] {
    let (w, h) = frame.dimensions();
    let (mut sum, mut n) = ([0u64; 3], 0u64);
    let mut add = |x: u32, y: u32| {
        if mask.get_pixel(x, y).0[0] < 128 {
            let p = frame.get_pixel(x, y).0;
            for c in 0..3 {
                sum[c] += u64::from(p[c]);
            }
            n += 1;
        }
    };
    for x in 0..w {
        add(x, 0);
        add(x, h - 1);
    }
    for y in 0..h {
        add(0, y);
        add(w - 1, y);
    }
    if n == 0 {
        return [255, 255, 255];
    }
    sum.map(|s| (s / n) as u8)
}

fn png_rgb(image: &RgbImage) -> Vec<u8> {
    png(image.as_raw(), image::ExtendedColorType::Rgb8)
}

fn png(raw: &[u8], colour: image::ExtendedColorType) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive)
        .write_image(raw, SIZE, SIZE, colour)
        .expect("encoding to memory");
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    fn scene(product: (u32, u32, u32, u32)) -> (RgbImage, GrayImage) {
        let (x0, y0, w, h) = product;
        let inside = |x: u32, y: u32| (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y);
        let frame = RgbImage::from_fn(640, 480, |x, y| {
            Rgb(if inside(x, y) {
                [200, 30, 40]
            } else {
                [210, 205, 195]
            })
        });
        let mask = GrayImage::from_fn(640, 480, |x, y| Luma([if inside(x, y) { 255 } else { 0 }]));
        (frame, mask)
    }

    fn decode(png: &[u8]) -> image::DynamicImage {
        image::load_from_memory(png).unwrap()
    }

    #[test]
    fn output_is_518_square_with_the_product_centred() {
        let (frame, mask) = scene((250, 100, 100, 260));
        let out = process(&frame, &mask, &Options::default()).unwrap();
        let image = decode(&out.image).to_rgb8();
        assert_eq!(image.dimensions(), (SIZE, SIZE));
        assert_eq!(image.get_pixel(259, 259).0, [200, 30, 40]);
        let mask = decode(&out.mask).to_luma8();
        assert_eq!(mask.dimensions(), (SIZE, SIZE));
        // 260 px tall plus 8 % margins each side fills the square's height.
        let rows: Vec<u32> = (0..SIZE)
            .filter(|&y| mask.get_pixel(259, y).0[0] == 255)
            .collect();
        let span = rows.len() as f32 / SIZE as f32;
        assert!(
            (0.82..0.88).contains(&span),
            "product spans {span} of the height"
        );
        assert_eq!(
            out.bbox,
            BoundingBox {
                x: 250,
                y: 100,
                width: 100,
                height: 260
            }
        );
        assert_eq!(out.mask_area, 100 * 260);
    }

    #[test]
    fn a_product_at_the_edge_is_padded_with_the_wall_colour() {
        let (frame, mask) = scene((0, 150, 120, 200));
        let out = process(&frame, &mask, &Options::default()).unwrap();
        let image = decode(&out.image).to_rgb8();
        assert_eq!(image.get_pixel(2, 259).0, [210, 205, 195]);
    }

    #[test]
    fn solid_and_transparent_backgrounds_replace_the_wall() {
        let (frame, mask) = scene((250, 100, 100, 260));
        let white = Options {
            background: Background::Solid([255, 255, 255]),
            ..Options::default()
        };
        let image = decode(&process(&frame, &mask, &white).unwrap().image).to_rgb8();
        assert_eq!(image.get_pixel(5, 5).0, [255, 255, 255]);
        assert_eq!(image.get_pixel(259, 259).0, [200, 30, 40]);

        let clear = Options {
            background: Background::Transparent,
            ..Options::default()
        };
        let image = decode(&process(&frame, &mask, &clear).unwrap().image);
        assert!(image.color().has_alpha());
        let image = image.to_rgba8();
        assert_eq!(image.get_pixel(5, 5).0[3], 0);
        assert_eq!(image.get_pixel(259, 259).0[3], 255);
    }

    #[test]
    fn blur_lowers_the_sharpness_figure() {
        let (mut frame, mask) = scene((200, 100, 200, 260));
        for (x, y, pixel) in frame.enumerate_pixels_mut() {
            if (200..400).contains(&x) && (100..360).contains(&y) && (x / 4 + y / 4) % 2 == 0 {
                *pixel = Rgb([30, 30, 30]);
            }
        }
        let sharp = process(&frame, &mask, &Options::default()).unwrap();
        let blurred = image::imageops::blur(&frame, 4.0);
        let soft = process(&blurred, &mask, &Options::default()).unwrap();
        assert!(
            sharp.sharpness > 10.0 * soft.sharpness,
            "{} vs {}",
            sharp.sharpness,
            soft.sharpness
        );
        assert!(sharp.brightness > 50.0 && sharp.brightness < 200.0);
    }

    #[test]
    fn a_shelf_box_is_framed_like_a_product_and_its_mask_is_the_box() {
        let (photo, mask) = scene((250, 100, 100, 260));
        let bbox = BoundingBox {
            x: 250,
            y: 100,
            width: 100,
            height: 260,
        };
        let crop = crop_box(&photo, &bbox, 0.08);
        assert_eq!(crop.dimensions(), (SIZE, SIZE));
        // The same framing as a frame of the same product.
        let frame = decode(&process(&photo, &mask, &Options::default()).unwrap().image).to_rgb8();
        assert_eq!(crop.get_pixel(259, 259), frame.get_pixel(259, 259));
        assert_eq!(crop.get_pixel(10, 259), frame.get_pixel(10, 259));
        let inside = crop_mask(&bbox, 0.08);
        for (x, y) in [(259, 259), (250, 50), (250, 470)] {
            assert_eq!(inside.get_pixel(x, y).0[0], 255, "({x}, {y})");
            assert_eq!(crop.get_pixel(x, y).0, [200, 30, 40], "({x}, {y})");
        }
        for (x, y) in [(150, 259), (370, 259), (259, 10)] {
            assert_eq!(inside.get_pixel(x, y).0[0], 0, "({x}, {y})");
            assert_eq!(crop.get_pixel(x, y).0, [210, 205, 195], "({x}, {y})");
        }
        // A box at the photo's corner is padded with the colour around it.
        let corner = crop_box(
            &photo,
            &BoundingBox {
                x: 0,
                y: 0,
                width: 40,
                height: 40,
            },
            0.2,
        );
        assert_eq!(corner.get_pixel(1, 1).0, [210, 205, 195]);
    }

    #[test]
    fn no_product_no_image() {
        let (frame, _) = scene((0, 0, 1, 1));
        assert!(process(&frame, &GrayImage::new(640, 480), &Options::default()).is_none());
    }

    #[test]
    fn backgrounds_read_from_the_command_line() {
        assert_eq!("keep".parse(), Ok(Background::Keep));
        assert_eq!("#ff8000".parse(), Ok(Background::Solid([255, 128, 0])));
        assert!("#ff80".parse::<Background>().is_err());
        assert!("purple".parse::<Background>().is_err());
    }
}
