//! Per-image augmentation of a product frame and its mask. Geometric
//! transforms (flip, rotation, scale, shift) are composed into one affine map
//! and applied once, to the image (bilinear) and to the mask (nearest) with
//! the same map, so boxes and polygons taken from the warped mask
//! ([`crate::geometry`]) follow every geometric transform exactly. Colour
//! transforms touch the image only. The background swap puts the product, cut
//! out by its mask, on a solid colour or a generated texture.
//!
//! Every draw comes from [`Rng`] seeded by the caller, so the same seed gives
//! the same image on every machine.

use image::{GrayImage, Rgb, RgbImage};
use serde::{Deserialize, Serialize};

/// A small, fast, seedable generator (SplitMix64): stable across versions
/// and platforms, which a dataset version's reproducibility depends on.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The whole state: `Rng::new(rng.state())` continues where `rng` is,
    /// which is how a training checkpoint keeps its draws.
    pub fn state(&self) -> u64 {
        self.0
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Shuffles in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn range(&mut self, [lo, hi]: [f64; 2]) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`; always takes one draw, so a probability
    /// of 0 does not shift the draws that follow.
    pub fn chance(&mut self, p: f64) -> bool {
        let draw = self.unit();
        p > 0.0 && draw < p
    }
}

/// A transform's probability and the range it draws from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ranged {
    pub p: f64,
    pub range: [f64; 2],
}

impl Ranged {
    const fn new(p: f64, lo: f64, hi: f64) -> Self {
        Self { p, range: [lo, hi] }
    }

    fn draw(&self, rng: &mut Rng) -> Option<f64> {
        // Always draw the value, so turning one transform off does not change
        // the draws of the others.
        let on = rng.chance(self.p);
        let value = rng.range(self.range);
        on.then_some(value)
    }
}

/// What the background swap may put behind the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackgroundKind {
    Solid,
    Texture,
    /// One of the uploaded background images (a texture when there are none).
    Image,
}

/// Why an uploaded background was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackgroundError {
    #[error("the uploaded background is not a PNG or JPEG image: {0}")]
    NotAnImage(image::ImageError),
    #[error("the uploaded background is {0}x{1} pixels; it needs at least 64 on each side")]
    TooSmall(u32, u32),
}

/// Reads an uploaded background image.
pub fn decode_background(bytes: &[u8]) -> Result<RgbImage, BackgroundError> {
    let image = image::load_from_memory(bytes)
        .map_err(BackgroundError::NotAnImage)?
        .to_rgb8();
    let (w, h) = image.dimensions();
    if w < 64 || h < 64 {
        return Err(BackgroundError::TooSmall(w, h));
    }
    Ok(image)
}

/// The per-image pipeline, each transform with its probability and range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Augment {
    /// Degrees.
    pub rotate: Ranged,
    /// Scale factor about the centre.
    pub scale: Ranged,
    /// Shift as a fraction of the image side, in each direction.
    pub shift: Ranged,
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Added brightness, as a fraction of full scale.
    pub brightness: Ranged,
    /// Contrast factor.
    pub contrast: Ranged,
    /// Saturation factor.
    pub saturation: Ranged,
    /// Hue rotation in degrees.
    pub hue: Ranged,
    /// Box-blur radius in pixels (three passes approximate a Gaussian).
    pub blur: Ranged,
    /// Noise standard deviation, in 0-255 levels.
    pub noise: Ranged,
    /// JPEG quality the image is re-encoded at (compression artefacts).
    pub jpeg: Ranged,
    /// Probability of putting the product on a new background.
    pub background: f64,
    pub background_kinds: Vec<BackgroundKind>,
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            rotate: Ranged::new(0.5, -15.0, 15.0),
            scale: Ranged::new(0.5, 0.8, 1.1),
            shift: Ranged::new(0.3, -0.08, 0.08),
            flip: 0.5,
            brightness: Ranged::new(0.5, -0.15, 0.15),
            contrast: Ranged::new(0.5, 0.8, 1.2),
            saturation: Ranged::new(0.3, 0.7, 1.3),
            hue: Ranged::new(0.2, -10.0, 10.0),
            blur: Ranged::new(0.2, 1.0, 2.0),
            noise: Ranged::new(0.2, 2.0, 8.0),
            jpeg: Ranged::new(0.2, 60.0, 95.0),
            background: 0.5,
            background_kinds: vec![BackgroundKind::Solid, BackgroundKind::Texture],
        }
    }
}

impl Augment {
    /// Every transform off: the frame as it is (a starting point to turn
    /// single transforms on from).
    pub fn off() -> Self {
        let never = |lo, hi| Ranged::new(0.0, lo, hi);
        Self {
            rotate: never(0.0, 0.0),
            scale: never(1.0, 1.0),
            shift: never(0.0, 0.0),
            flip: 0.0,
            brightness: never(0.0, 0.0),
            contrast: never(1.0, 1.0),
            saturation: never(1.0, 1.0),
            hue: never(0.0, 0.0),
            blur: never(1.0, 1.0),
            noise: never(0.0, 0.0),
            jpeg: never(90.0, 90.0),
            background: 0.0,
            background_kinds: Augment::default().background_kinds,
        }
    }
}

/// An affine map from output pixel centres to source coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    pub a: [f64; 6],
}

impl Affine {
    pub const IDENTITY: Affine = Affine {
        a: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
    };

    /// The forward map (source to output) for a flip, a rotation and a scale
    /// about the image centre, then a shift in pixels.
    pub fn forward(
        width: u32,
        height: u32,
        flip: bool,
        degrees: f64,
        scale: f64,
        shift: [f64; 2],
    ) -> Self {
        let (cx, cy) = (f64::from(width) / 2.0, f64::from(height) / 2.0);
        let (s, c) = degrees.to_radians().sin_cos();
        let f = if flip { -1.0 } else { 1.0 };
        // p' = R·S·F·(p - c) + c + shift
        let (m00, m01, m10, m11) = (scale * c * f, -scale * s, scale * s * f, scale * c);
        Affine {
            a: [
                m00,
                m01,
                cx + shift[0] - m00 * cx - m01 * cy,
                m10,
                m11,
                cy + shift[1] - m10 * cx - m11 * cy,
            ],
        }
    }

    pub fn apply(&self, [x, y]: [f64; 2]) -> [f64; 2] {
        let a = &self.a;
        [a[0] * x + a[1] * y + a[2], a[3] * x + a[4] * y + a[5]]
    }

    pub fn inverse(&self) -> Affine {
        let a = &self.a;
        let det = a[0] * a[4] - a[1] * a[3];
        let (i00, i01, i10, i11) = (a[4] / det, -a[1] / det, -a[3] / det, a[0] / det);
        Affine {
            a: [
                i00,
                i01,
                -(i00 * a[2] + i01 * a[5]),
                i10,
                i11,
                -(i10 * a[2] + i11 * a[5]),
            ],
        }
    }
}

/// Warps the image (bilinear, `fill` outside) and the mask (nearest, empty
/// outside) by the forward map `forward`, both at their own size.
pub fn warp(
    image: &RgbImage,
    mask: &GrayImage,
    forward: &Affine,
    fill: Rgb<u8>,
) -> (RgbImage, GrayImage) {
    let (w, h) = image.dimensions();
    let inv = forward.inverse();
    let mut out = RgbImage::from_pixel(w, h, fill);
    let mut out_mask = GrayImage::new(w, h);
    let (wu, hu) = (w as usize, h as usize);
    let (src, src_mask) = (image.as_raw().as_slice(), mask.as_raw().as_slice());
    let (dst, dst_mask): (&mut [u8], &mut [u8]) = (&mut out, &mut out_mask);
    // Source coordinates in 16.16 fixed point: along a row the source point
    // moves by (a0, a3) per pixel, added without float conversions.
    const ONE: i64 = 1 << 16;
    let fixed = |v: f64| (v * ONE as f64).round() as i64;
    let [a0, _, _, a3, _, _] = inv.a;
    let (step_x, step_y) = (fixed(a0), fixed(a3));
    let (limit_x, limit_y) = (i64::from(w) * ONE, i64::from(h) * ONE);
    let (last_x, last_y) = (wu - 1, hu - 1);
    for y in 0..hu {
        // Pixel centres: the output centre maps to a source point.
        let [sx, sy] = inv.apply([0.5, y as f64 + 0.5]);
        let (mut qx, mut qy) = (fixed(sx), fixed(sy));
        let row = y * wu;
        for x in 0..wu {
            let (px, py) = (qx, qy);
            qx += step_x;
            qy += step_y;
            if px < 0 || py < 0 || px >= limit_x || py >= limit_y {
                continue;
            }
            let o = row + x;
            let (mx, my) = (
                ((px >> 16) as usize).min(last_x),
                ((py >> 16) as usize).min(last_y),
            );
            dst_mask[o] = src_mask[my * wu + mx];
            // The four neighbours around the point (pixel centres at +0.5).
            let (fx, fy) = ((px - ONE / 2).max(0), (py - ONE / 2).max(0));
            let (x0, y0) = (
                ((fx >> 16) as usize).min(last_x),
                ((fy >> 16) as usize).min(last_y),
            );
            let (x1, y1) = ((x0 + 1).min(last_x), (y0 + 1).min(last_y));
            // Bilinear weights in 1/256ths.
            let tx = ((fx >> 8) & 255) as u32;
            let ty = ((fy >> 8) & 255) as u32;
            let (i00, i01) = ((y0 * wu + x0) * 3, (y0 * wu + x1) * 3);
            let (i10, i11) = ((y1 * wu + x0) * 3, (y1 * wu + x1) * 3);
            let (p00, p01) = (&src[i00..i00 + 3], &src[i01..i01 + 3]);
            let (p10, p11) = (&src[i10..i10 + 3], &src[i11..i11 + 3]);
            let out_px = &mut dst[o * 3..o * 3 + 3];
            for ch in 0..3 {
                let top = u32::from(p00[ch]) * (256 - tx) + u32::from(p01[ch]) * tx;
                let bottom = u32::from(p10[ch]) * (256 - tx) + u32::from(p11[ch]) * tx;
                out_px[ch] = ((top * (256 - ty) + bottom * ty + (1 << 15)) >> 16) as u8;
            }
        }
    }
    (out, out_mask)
}

/// What [`warp`] gives for a flip and a whole-pixel shift, by copying rows.
pub fn flip_shift(
    image: &RgbImage,
    mask: &GrayImage,
    flip: bool,
    [dx, dy]: [i64; 2],
    fill: Rgb<u8>,
) -> (RgbImage, GrayImage) {
    let (w, h) = image.dimensions();
    let (wi, hi) = (i64::from(w), i64::from(h));
    let mut out = RgbImage::from_pixel(w, h, fill);
    let mut out_mask = GrayImage::new(w, h);
    let (src, src_mask) = (image.as_raw().as_slice(), mask.as_raw().as_slice());
    let (dst, dst_mask): (&mut [u8], &mut [u8]) = (&mut out, &mut out_mask);
    // Output columns x0..x1 read source columns x - dx (or, flipped, w-1-(x-dx)).
    let (x0, x1) = (dx.clamp(0, wi), (wi + dx).clamp(0, wi));
    for y in 0..hi {
        let sy = y - dy;
        if !(0..hi).contains(&sy) || x0 >= x1 {
            continue;
        }
        let (row, src_row) = ((y * wi) as usize, (sy * wi) as usize);
        let (x0, x1) = (x0 as usize, x1 as usize);
        let count = x1 - x0;
        let out_px = &mut dst[(row + x0) * 3..(row + x1) * 3];
        let out_m = &mut dst_mask[row + x0..row + x1];
        if flip {
            // Output column x reads source column w-1-(x-dx): a reversed run.
            let first = (wi - 1 - (x1 as i64 - 1 - dx)) as usize;
            let in_px = &src[(src_row + first) * 3..(src_row + first + count) * 3];
            let in_m = &src_mask[src_row + first..src_row + first + count];
            for (o, i) in out_px.chunks_exact_mut(3).zip(in_px.chunks_exact(3).rev()) {
                o.copy_from_slice(i);
            }
            for (o, i) in out_m.iter_mut().zip(in_m.iter().rev()) {
                *o = *i;
            }
        } else {
            let first = (x0 as i64 - dx) as usize;
            out_px.copy_from_slice(&src[(src_row + first) * 3..(src_row + first + count) * 3]);
            out_m.copy_from_slice(&src_mask[src_row + first..src_row + first + count]);
        }
    }
    (out, out_mask)
}

/// A background the size of `width`×`height`: for [`BackgroundKind::Image`],
/// a random crop of one of `uploaded` (with the target's shape), scaled.
pub fn background(
    kind: BackgroundKind,
    width: u32,
    height: u32,
    rng: &mut Rng,
    uploaded: &[RgbImage],
) -> RgbImage {
    if kind == BackgroundKind::Image && !uploaded.is_empty() {
        let source = &uploaded[(rng.next_u64() % uploaded.len() as u64) as usize];
        let (sw, sh) = source.dimensions();
        let aspect = f64::from(width) / f64::from(height);
        let (cw, ch) = if f64::from(sw) / f64::from(sh) > aspect {
            (((f64::from(sh) * aspect) as u32).clamp(1, sw), sh)
        } else {
            (sw, ((f64::from(sw) / aspect) as u32).clamp(1, sh))
        };
        let x = (rng.next_u64() % u64::from(sw - cw + 1)) as u32;
        let y = (rng.next_u64() % u64::from(sh - ch + 1)) as u32;
        let crop = image::imageops::crop_imm(source, x, y, cw, ch).to_image();
        return image::imageops::resize(
            &crop,
            width,
            height,
            image::imageops::FilterType::Triangle,
        );
    }
    let base = random_colour(rng);
    match kind {
        BackgroundKind::Solid => RgbImage::from_pixel(width, height, Rgb(base)),
        BackgroundKind::Texture | BackgroundKind::Image => {
            // Shelf-like stripes of two colours with soft per-pixel grain.
            let other = random_colour(rng);
            let period = 16 + (rng.next_u64() % 64) as u32;
            let horizontal = rng.chance(0.5);
            let mut grain = Rng::new(rng.next_u64());
            RgbImage::from_fn(width, height, |x, y| {
                let t = if horizontal { y } else { x };
                let pick = if (t / period).is_multiple_of(2) {
                    base
                } else {
                    other
                };
                let g = (grain.next_u64() % 17) as i32 - 8;
                Rgb(pick.map(|c| (i32::from(c) + g).clamp(0, 255) as u8))
            })
        }
    }
}

fn random_colour(rng: &mut Rng) -> [u8; 3] {
    [(); 3].map(|_| (rng.next_u64() % 256) as u8)
}

/// Puts the masked product on `back` (same size).
pub fn composite_onto(image: &RgbImage, mask: &GrayImage, back: &mut RgbImage) {
    for ((p, m), b) in image.pixels().zip(mask.pixels()).zip(back.pixels_mut()) {
        if m.0[0] >= 128 {
            *b = *p;
        }
    }
}

/// One augmented draw of `image` and its `mask` (same size); `backgrounds`
/// are the uploaded images the background swap may use.
pub fn augment(
    image: &RgbImage,
    mask: &GrayImage,
    config: &Augment,
    seed: u64,
    backgrounds: &[RgbImage],
) -> (RgbImage, GrayImage) {
    let mut rng = Rng::new(seed);
    let (w, h) = image.dimensions();
    let flip = rng.chance(config.flip);
    let degrees = config.rotate.draw(&mut rng).unwrap_or(0.0);
    let scale = config.scale.draw(&mut rng).unwrap_or(1.0);
    let shift_on = config.shift.draw(&mut rng).is_some();
    let shift = [rng.range(config.shift.range), rng.range(config.shift.range)];
    let shift = if shift_on {
        [shift[0] * f64::from(w), shift[1] * f64::from(h)]
    } else {
        [0.0, 0.0]
    };
    let swap = rng.chance(config.background);
    let pick = rng.next_u64() as usize;
    let kinds = &config.background_kinds;
    let kind = kinds.get(pick % kinds.len().max(1)).copied();
    let back_seed = rng.next_u64();
    let fill = *image.get_pixel(0, 0);
    let (mut out, out_mask) = if degrees == 0.0 && scale == 1.0 {
        // No resampling needed: whole-pixel shifts and a flip move rows.
        let shift = [shift[0].round() as i64, shift[1].round() as i64];
        if !flip && shift == [0, 0] {
            (image.clone(), mask.clone())
        } else {
            flip_shift(image, mask, flip, shift, fill)
        }
    } else {
        warp(
            image,
            mask,
            &Affine::forward(w, h, flip, degrees, scale, shift),
            fill,
        )
    };
    if let (true, Some(kind)) = (swap, kind) {
        let mut back = background(kind, w, h, &mut Rng::new(back_seed), backgrounds);
        composite_onto(&out, &out_mask, &mut back);
        out = back;
    }
    let brightness = config.brightness.draw(&mut rng);
    let contrast = config.contrast.draw(&mut rng);
    if brightness.is_some() || contrast.is_some() {
        let (b, c) = (brightness.unwrap_or(0.0) * 255.0, contrast.unwrap_or(1.0));
        let lut: Vec<u8> = (0..256)
            .map(|v| {
                ((f64::from(v) - 128.0) * c + 128.0 + b)
                    .round()
                    .clamp(0.0, 255.0) as u8
            })
            .collect();
        for v in out.iter_mut() {
            *v = lut[usize::from(*v)];
        }
    }
    let saturation = config.saturation.draw(&mut rng);
    let hue = config.hue.draw(&mut rng);
    if saturation.is_some() || hue.is_some() {
        colour(&mut out, saturation.unwrap_or(1.0), hue.unwrap_or(0.0));
    }
    if let Some(radius) = config.blur.draw(&mut rng) {
        let r = radius.round().max(1.0) as u32;
        for _ in 0..3 {
            box_blur(&mut out, r);
        }
    }
    if let Some(sigma) = config.noise.draw(&mut rng) {
        let mut noise = Rng::new(rng.next_u64());
        // A table of near-Gaussian values (the sum of four uniforms, scaled
        // to unit variance), read at random offsets: one draw per 8 values.
        let table: Vec<i16> = (0..4096)
            .map(|_| {
                let sum: f64 = (0..4)
                    .map(|_| (noise.next_u64() >> 40) as f64 / (1u64 << 24) as f64)
                    .sum();
                ((sum - 2.0) * 3.0f64.sqrt() * sigma).round() as i16
            })
            .collect();
        for chunk in out.chunks_mut(8) {
            let start = (noise.next_u64() % (4096 - 8)) as usize;
            for (v, n) in chunk.iter_mut().zip(&table[start..]) {
                *v = (i16::from(*v) + n).clamp(0, 255) as u8;
            }
        }
    }
    if let Some(quality) = config.jpeg.draw(&mut rng) {
        out = jpeg_round_trip(&out, quality.round().clamp(1.0, 100.0) as u8);
    }
    (out, out_mask)
}

/// The image after encoding as JPEG at `quality` and decoding again.
fn jpeg_round_trip(image: &RgbImage, quality: u8) -> RgbImage {
    // jpeg-encoder (SIMD) encodes several times faster than the image crate's
    // encoder; decoding goes through the image crate (zune-jpeg).
    let mut encoded = Vec::new();
    let (w, h) = image.dimensions();
    let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
        return image.clone();
    };
    let encoder = jpeg_encoder::Encoder::new(&mut encoded, quality.clamp(1, 100));
    if encoder
        .encode(image.as_raw(), w16, h16, jpeg_encoder::ColorType::Rgb)
        .is_err()
    {
        return image.clone();
    }
    image::load_from_memory_with_format(&encoded, image::ImageFormat::Jpeg)
        .map(|decoded| decoded.to_rgb8())
        .unwrap_or_else(|_| image.clone())
}

/// Scales saturation about each pixel's grey and rotates hue (in RGB, as a
/// rotation about the grey axis).
fn colour(image: &mut RgbImage, saturation: f64, degrees: f64) {
    let (s, c) = degrees.to_radians().sin_cos();
    let k: f64 = 1.0 / 3.0;
    let r3 = k.sqrt();
    // Rodrigues' rotation about (1,1,1)/sqrt(3).
    let m = [
        [
            c + (1.0 - c) * k,
            (1.0 - c) * k - r3 * s,
            (1.0 - c) * k + r3 * s,
        ],
        [
            (1.0 - c) * k + r3 * s,
            c + (1.0 - c) * k,
            (1.0 - c) * k - r3 * s,
        ],
        [
            (1.0 - c) * k - r3 * s,
            (1.0 - c) * k + r3 * s,
            c + (1.0 - c) * k,
        ],
    ];
    // Saturation is linear too (v -> grey + s·(v - grey)), so both fold into
    // one matrix, applied in fixed point (1/4096ths).
    let luma = [0.299, 0.587, 0.114];
    let mut fixed = [[0i32; 3]; 3];
    for (i, row) in fixed.iter_mut().enumerate() {
        for (j, out) in row.iter_mut().enumerate() {
            let value: f64 = (0..3)
                .map(|k| {
                    let sat =
                        f64::from(u8::from(k == j)) * saturation + (1.0 - saturation) * luma[j];
                    m[i][k] * sat
                })
                .sum();
            *out = (value * 4096.0).round() as i32;
        }
    }
    for p in image.chunks_exact_mut(3) {
        let [r, g, b] = [p[0], p[1], p[2]].map(i32::from);
        for (out, row) in p.iter_mut().zip(&fixed) {
            *out = ((row[0] * r + row[1] * g + row[2] * b + 2048) >> 12).clamp(0, 255) as u8;
        }
    }
}

/// One horizontal and one vertical box-filter pass of radius `r` (running
/// sums, so the cost does not grow with the radius).
fn box_blur(image: &mut RgbImage, r: u32) {
    let (w, h) = (image.width() as usize, image.height() as usize);
    let r = r as usize;
    let stride = w * 3;
    let data: &mut [u8] = image;
    if w == 0 || h == 0 {
        return;
    }
    // Rounded means of full windows by table (a division per value is most
    // of the time otherwise); windows cut by an edge divide.
    let full = (2 * r + 1) as u32;
    let table: Vec<u8> = (0..=255 * full)
        .map(|s| ((s + full / 2) / full) as u8)
        .collect();
    let mean = |sum: u32, n: u32| {
        if n == full {
            table[sum as usize]
        } else {
            ((sum + n / 2) / n) as u8
        }
    };
    // Along each row, from prefix sums over the interleaved values: the
    // window of value i runs from i - 3r to i + 3r in steps of 3 (its channel).
    let mut prefix = vec![0u32; stride + 3];
    for line in data.chunks_exact_mut(stride) {
        for i in 0..stride {
            prefix[i + 3] = prefix[i] + u32::from(line[i]);
        }
        let window = |x: usize| (x.saturating_sub(r), (x + r).min(w - 1));
        for x in (0..w.min(r)).chain(w.saturating_sub(r).max(r.min(w))..w) {
            let (lo, hi) = window(x);
            let n = (hi - lo + 1) as u32;
            for ch in 0..3 {
                line[x * 3 + ch] = mean(prefix[(hi + 1) * 3 + ch] - prefix[lo * 3 + ch], n);
            }
        }
        if w > 2 * r {
            let (back, ahead) = (3 * r, 3 * r + 3);
            for i in back..stride - back {
                line[i] = table[(prefix[i + ahead] - prefix[i - back]) as usize];
            }
        }
    }
    // Down the columns, all at once a row at a time (memory in order).
    let source = data.to_vec();
    let mut sums = vec![0u32; stride];
    for y in 0..=r.min(h - 1) {
        for (sum, v) in sums.iter_mut().zip(&source[y * stride..(y + 1) * stride]) {
            *sum += u32::from(*v);
        }
    }
    for (y, line) in data.chunks_exact_mut(stride).enumerate() {
        let n = ((y + r).min(h - 1) - y.saturating_sub(r) + 1) as u32;
        for (out, sum) in line.iter_mut().zip(&sums) {
            *out = mean(*sum, n);
        }
        if y + r + 1 < h {
            let add = &source[(y + r + 1) * stride..(y + r + 2) * stride];
            for (sum, v) in sums.iter_mut().zip(add) {
                *sum += u32::from(*v);
            }
        }
        if y >= r {
            let drop = &source[(y - r) * stride..(y - r + 1) * stride];
            for (sum, v) in sums.iter_mut().zip(drop) {
                *sum -= u32::from(*v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{BoxPx, bbox};
    use image::Luma;

    /// A box blur by its definition: each value the rounded mean of the
    /// window cut at the edges, rows first, then columns.
    fn naive_blur(image: &RgbImage, r: u32) -> RgbImage {
        let (w, h) = image.dimensions();
        let pass = |src: &RgbImage, horizontal: bool| {
            RgbImage::from_fn(w, h, |x, y| {
                let (at, len) = if horizontal { (x, w) } else { (y, h) };
                let (lo, hi) = (at.saturating_sub(r), (at + r).min(len - 1));
                let mut px = [0u8; 3];
                for (ch, v) in px.iter_mut().enumerate() {
                    let sum: u32 = (lo..=hi)
                        .map(|i| {
                            let (sx, sy) = if horizontal { (i, y) } else { (x, i) };
                            u32::from(src.get_pixel(sx, sy).0[ch])
                        })
                        .sum();
                    let n = hi - lo + 1;
                    *v = ((sum + n / 2) / n) as u8;
                }
                Rgb(px)
            })
        };
        pass(&pass(image, true), false)
    }

    #[test]
    fn the_fast_box_blur_is_the_box_blur() {
        let mut rng = Rng::new(11);
        for (w, h, r) in [(37, 23, 1), (37, 23, 2), (9, 40, 5), (3, 3, 4), (64, 1, 2)] {
            let image = RgbImage::from_fn(w, h, |_, _| {
                let v = rng.next_u64();
                Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
            });
            let mut fast = image.clone();
            box_blur(&mut fast, r);
            assert_eq!(fast, naive_blur(&image, r), "{w}x{h}, radius {r}");
        }
    }

    fn px(x: u32, y: u32, w: u32, h: u32) -> BoxPx {
        BoxPx { x, y, w, h }
    }

    /// The box of the mask after a flip, a turn and a shift.
    fn moved_box(
        (image, mask): &(RgbImage, GrayImage),
        flip: bool,
        degrees: f64,
        shift: [f64; 2],
    ) -> Option<BoxPx> {
        let (w, h) = image.dimensions();
        let forward = Affine::forward(w, h, flip, degrees, 1.0, shift);
        bbox(&warp(image, mask, &forward, Rgb([0; 3])).1)
    }

    /// A red rectangle on grey, and its mask.
    fn sample(w: u32, h: u32, rect: BoxPx) -> (RgbImage, GrayImage) {
        let inside = |x: u32, y: u32| {
            (rect.x..rect.x + rect.w).contains(&x) && (rect.y..rect.y + rect.h).contains(&y)
        };
        let image = RgbImage::from_fn(w, h, |x, y| {
            if inside(x, y) {
                Rgb([220, 20, 20])
            } else {
                Rgb([128, 128, 128])
            }
        });
        let mask = GrayImage::from_fn(
            w,
            h,
            |x, y| if inside(x, y) { Luma([255]) } else { Luma([0]) },
        );
        (image, mask)
    }

    #[test]
    fn turning_a_transform_off_leaves_the_other_draws_as_they_were() {
        let (mut off, mut on) = (Rng::new(5), Rng::new(5));
        assert_eq!(Ranged::new(0.0, 1.0, 2.0).draw(&mut off), None);
        assert!(Ranged::new(1.0, 1.0, 2.0).draw(&mut on).is_some());
        assert!(!off.chance(0.0));
        assert!(on.chance(1.0));
        assert_eq!(off.next_u64(), on.next_u64());
    }

    #[test]
    fn flips_and_quarter_turns_move_the_box_exactly() {
        let frame = sample(100, 80, px(10, 20, 30, 12));
        assert_eq!(
            moved_box(&frame, true, 0.0, [0.0, 0.0]),
            Some(px(60, 20, 30, 12))
        );
        assert_eq!(
            moved_box(&frame, false, 0.0, [5.0, -3.0]),
            Some(px(15, 17, 30, 12))
        );
        // A square image turned by 90 degrees about its centre.
        let square = sample(64, 64, px(4, 10, 20, 6));
        // (x, y) -> (64 - y, x) with y down: the box spans x 48..54, y 4..24.
        assert_eq!(
            moved_box(&square, false, 90.0, [0.0, 0.0]),
            Some(px(48, 4, 6, 20))
        );
    }

    #[test]
    fn the_row_copy_path_matches_the_warp_for_flips_and_whole_pixel_shifts() {
        let image = RgbImage::from_fn(40, 30, |x, y| Rgb([(x * 6) as u8, (y * 8) as u8, 7]));
        let mask = GrayImage::from_fn(40, 30, |x, y| Luma([if x > y { 255 } else { 0 }]));
        for flip in [false, true] {
            for shift in [[0, 0], [3, -2], [-5, 4], [45, 0]] {
                let forward = Affine::forward(40, 30, flip, 0.0, 1.0, shift.map(|s| s as f64));
                let fill = Rgb([1, 2, 3]);
                assert_eq!(
                    flip_shift(&image, &mask, flip, shift, fill),
                    warp(&image, &mask, &forward, fill),
                    "flip {flip}, shift {shift:?}"
                );
            }
        }
    }

    #[test]
    fn the_warped_mask_box_is_the_transformed_box_and_the_pixels_stay_under_the_mask() {
        let rect = px(150, 120, 200, 260);
        let (image, mask) = sample(518, 518, rect);
        let config = Augment {
            rotate: Ranged::new(1.0, -30.0, 30.0),
            scale: Ranged::new(1.0, 0.7, 1.2),
            shift: Ranged::new(1.0, -0.1, 0.1),
            flip: 0.5,
            ..Augment::off()
        };
        for seed in 0..12 {
            let (out, out_mask) = augment(&image, &mask, &config, seed, &[]);
            // Recompute the draw's map and move the rectangle's corners by it.
            let mut rng = Rng::new(seed);
            let flip = rng.chance(config.flip);
            let degrees = config.rotate.draw(&mut rng).unwrap();
            let scale = config.scale.draw(&mut rng).unwrap();
            config.shift.draw(&mut rng).unwrap();
            let shift = [
                rng.range(config.shift.range) * 518.0,
                rng.range(config.shift.range) * 518.0,
            ];
            let forward = Affine::forward(518, 518, flip, degrees, scale, shift);
            let corners = [
                [150.0, 120.0],
                [350.0, 120.0],
                [350.0, 380.0],
                [150.0, 380.0],
            ]
            .map(|p| forward.apply(p));
            let xs = corners.map(|c| c[0]);
            let ys = corners.map(|c| c[1]);
            let lo = |v: [f64; 4]| v.into_iter().fold(f64::MAX, f64::min).max(0.0);
            let hi = |v: [f64; 4]| v.into_iter().fold(f64::MIN, f64::max).min(518.0);
            let got = bbox(&out_mask).unwrap();
            let want = [lo(xs), lo(ys), hi(xs), hi(ys)];
            let have = [got.x, got.y, got.x + got.w, got.y + got.h].map(f64::from);
            for (h, w) in have.iter().zip(want) {
                assert!(
                    (h - w).abs() <= 1.0,
                    "seed {seed}: box {have:?}, transformed {want:?}"
                );
            }
            // Image and mask were warped together: under the mask it is red.
            let (mut red, mut under) = (0, 0);
            for (p, m) in out.pixels().zip(out_mask.pixels()) {
                if m.0[0] >= 128 {
                    under += 1;
                    red += usize::from(p.0[0] > 150 && p.0[1] < 90);
                }
            }
            assert!(
                red * 100 >= under * 97,
                "seed {seed}: {red} of {under} masked pixels are red"
            );
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_image_and_colour_leaves_the_mask() {
        let (image, mask) = sample(96, 96, px(20, 30, 40, 30));
        let config = Augment {
            rotate: Ranged::new(0.0, 0.0, 0.0),
            scale: Ranged::new(0.0, 1.0, 1.0),
            shift: Ranged::new(0.0, 0.0, 0.0),
            flip: 0.0,
            brightness: Ranged::new(1.0, 0.1, 0.2),
            noise: Ranged::new(1.0, 5.0, 5.0),
            blur: Ranged::new(1.0, 1.0, 1.0),
            background: 1.0,
            ..Augment::default()
        };
        let a = augment(&image, &mask, &config, 42, &[]);
        assert_eq!(a, augment(&image, &mask, &config, 42, &[]));
        assert_ne!(a.0, augment(&image, &mask, &config, 43, &[]).0);
        assert_eq!(
            a.1, mask,
            "colour transforms and the background swap keep the mask"
        );
        assert_ne!(a.0, image);
    }

    #[test]
    fn uploaded_backgrounds_fill_the_swap_and_bad_uploads_are_refused() {
        let (image, mask) = sample(96, 96, px(20, 30, 40, 30));
        let upload = RgbImage::from_pixel(300, 120, Rgb([0, 0, 250]));
        let mut png = Vec::new();
        upload
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let backgrounds = [decode_background(&png).unwrap()];
        let config = Augment {
            background: 1.0,
            background_kinds: vec![BackgroundKind::Image],
            ..Augment::off()
        };
        let (out, _) = augment(&image, &mask, &config, 3, &backgrounds);
        assert_eq!(out.get_pixel(2, 2).0, [0, 0, 250], "the upload is behind");
        assert_eq!(out.get_pixel(30, 40).0, [220, 20, 20], "the product stays");
        let text = decode_background(b"GIF89a not really").unwrap_err();
        assert!(text.to_string().contains("not a PNG or JPEG"), "{text}");
        let mut tiny = Vec::new();
        RgbImage::new(10, 10)
            .write_to(
                &mut std::io::Cursor::new(&mut tiny),
                image::ImageFormat::Png,
            )
            .unwrap();
        assert!(matches!(
            decode_background(&tiny),
            Err(BackgroundError::TooSmall(10, 10))
        ));
    }

    #[test]
    fn saturation_and_hue_keep_greys_and_zero_saturation_makes_grey() {
        let mut image = RgbImage::from_fn(16, 16, |x, y| Rgb([(x * 16) as u8, (y * 16) as u8, 90]));
        let original = image.clone();
        colour(&mut image, 1.0, 0.0);
        assert_eq!(image, original, "identity");
        colour(&mut image, 0.0, 0.0);
        for (p, o) in image.pixels().zip(original.pixels()) {
            let grey =
                0.299 * f64::from(o.0[0]) + 0.587 * f64::from(o.0[1]) + 0.114 * f64::from(o.0[2]);
            for c in p.0 {
                assert!((f64::from(c) - grey).abs() <= 1.0, "{p:?} from {o:?}");
            }
        }
        let mut grey = RgbImage::from_pixel(4, 4, Rgb([100, 100, 100]));
        colour(&mut grey, 1.4, 30.0);
        assert!(
            grey.pixels()
                .all(|p| p.0.iter().all(|c| c.abs_diff(100) <= 1)),
            "grey stays grey"
        );
    }

    #[test]
    fn jpeg_quality_leaves_artefacts_that_grow_as_quality_falls() {
        let image = RgbImage::from_fn(128, 128, |x, y| {
            Rgb([(x * 2) as u8, (y * 2) as u8, ((x ^ y) * 4) as u8])
        });
        let error = |q| {
            let out = jpeg_round_trip(&image, q);
            image
                .iter()
                .zip(out.iter())
                .map(|(a, b)| u64::from(a.abs_diff(*b)))
                .sum::<u64>()
        };
        let (high, low) = (error(95), error(20));
        assert!(
            high > 0 && low > high * 2,
            "error at 95: {high}, at 20: {low}"
        );
    }
}
