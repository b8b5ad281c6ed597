//! Sample product videos made here, with exact ground-truth masks: a product
//! (a carton, a can, a bottle or a pouch) turning in front of a plain wall or
//! standing on a table against a wall, filmed with sensor noise, lighting
//! changes, a cast shadow and camera shake, encoded through the `ffmpeg`
//! program. `KINDS` names the scenes the segmenter is measured on. They feed
//! the tests, the benchmarks and the first run of a new installation.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

mod kinds;
mod paint;

pub use kinds::{KINDS, Kind};

use anyhow::{Context, bail};
use image::{GrayImage, Luma, Rgb, RgbImage, imageops};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// How a sample video looks.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Size of the upright picture.
    pub width: u32,
    pub height: u32,
    pub frames: usize,
    pub fps: u32,
    /// Standard deviation of the sensor noise, in 8-bit levels.
    pub noise: f32,
    /// Largest camera shake, as a fraction of the picture's shorter side.
    pub shake: f32,
    /// How many turns the product makes over the video.
    pub turns: f32,
    /// Depth of the lighting change over the clip, as a fraction of the light.
    pub lighting: f32,
    /// How many times the light dims and recovers over the clip.
    pub lighting_cycles: f32,
    /// What stands behind and under the product.
    pub backdrop: Backdrop,
    /// Darkness of the soft shadow the product casts on the table beside it
    /// (0 for none, 0.5 halves the light there).
    pub shadow: f32,
    pub product: Product,
    pub seed: u64,
}

impl Default for Scene {
    fn default() -> Self {
        Self {
            width: 640,
            height: 480,
            frames: 60,
            fps: 20,
            noise: 5.0,
            shake: 0.015,
            turns: 0.5,
            lighting: 0.18,
            lighting_cycles: 1.0,
            backdrop: Backdrop::Wall(BACKGROUND),
            shadow: 0.0,
            product: Product::default(),
            seed: 7,
        }
    }
}

/// What the product is filmed against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Backdrop {
    /// A plain wall filling the picture, with a soft falloff of the light.
    Wall([f32; 3]),
    /// A wall meeting a table in a sharp edge, the product standing on the table.
    Table {
        wall: [f32; 3],
        table: [f32; 3],
        /// Height of the edge, as a fraction of the picture's height from the top.
        edge: f32,
        /// Slope of the edge across the picture (rise over run).
        tilt: f32,
        /// Depth of the table's wood grain, in 8-bit levels.
        grain: f32,
    },
}

/// The product in the scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Product {
    pub shape: Shape,
    pub look: Look,
    /// Height, as a fraction of the picture's shorter side.
    pub height: f32,
    /// Offset of its centre from the picture's centre, as a fraction of the width.
    pub offset: f32,
}

impl Default for Product {
    fn default() -> Self {
        Self {
            shape: Shape::Carton,
            look: Look::Printed,
            height: 0.62,
            offset: 0.0,
        }
    }
}

/// The product's outline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An upright box whose front and side show as it turns.
    Carton,
    /// A cylinder with rounded rims.
    Can,
    /// A bottle: body, shoulders, neck and cap.
    Bottle,
    /// A stand-up pouch: narrower at the sealed top, with bulging sides.
    Pouch,
}

/// The product's colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Strong colours, a logo, stripes and a white label.
    Printed,
    /// White packaging with faint grey print.
    White,
    /// Black packaging with a little grey and gold print.
    Black,
    /// A pale bluish bottle, as clear plastic with water looks.
    PaleBlue,
}

/// Video codecs the generator can encode with (all in Debian's FFmpeg).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// H.264 in MP4.
    H264,
    /// HEVC in MOV.
    Hevc,
    /// VP9 in WebM.
    Vp9,
    /// AV1 in Matroska.
    Av1,
    /// Motion JPEG in AVI.
    Mjpeg,
}

impl Codec {
    pub const ALL: [Codec; 5] = [
        Codec::H264,
        Codec::Hevc,
        Codec::Vp9,
        Codec::Av1,
        Codec::Mjpeg,
    ];

    /// The file extension of the container this codec is written in.
    pub fn extension(self) -> &'static str {
        match self {
            Codec::H264 => "mp4",
            Codec::Hevc => "mov",
            Codec::Vp9 => "webm",
            Codec::Av1 => "mkv",
            Codec::Mjpeg => "avi",
        }
    }

    fn ffmpeg_args(self) -> &'static [&'static str] {
        match self {
            Codec::H264 => &[
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            ],
            Codec::Hevc => &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-crf",
                "20",
                "-pix_fmt",
                "yuv420p",
                "-tag:v",
                "hvc1",
                "-x265-params",
                "log-level=error",
            ],
            Codec::Vp9 => &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-crf",
                "24",
                "-b:v",
                "0",
                "-pix_fmt",
                "yuv420p",
            ],
            Codec::Av1 => &[
                "-c:v",
                "libaom-av1",
                "-cpu-used",
                "8",
                "-usage",
                "realtime",
                "-crf",
                "30",
                "-pix_fmt",
                "yuv420p",
            ],
            Codec::Mjpeg => &["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"],
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "h264" => Ok(Codec::H264),
            "hevc" => Ok(Codec::Hevc),
            "vp9" => Ok(Codec::Vp9),
            "av1" => Ok(Codec::Av1),
            "mjpeg" => Ok(Codec::Mjpeg),
            other => Err(format!(
                "unknown codec {other:?}: h264, hevc, vp9, av1 or mjpeg"
            )),
        }
    }
}

/// The plain wall of the original sample videos.
pub const BACKGROUND: [f32; 3] = [206.0, 200.0, 188.0];

impl Scene {
    /// Frame `i` and its ground-truth product mask (255 = product).
    pub fn render(&self, i: usize) -> (RgbImage, GrayImage) {
        let (w, h) = (self.width as f32, self.height as f32);
        let t = i as f32 / self.frames.max(1) as f32;
        let angle = t * self.turns * std::f32::consts::TAU + 0.35;
        // Lighting: slow dips and recoveries, as when clouds pass a window.
        let gain = 1.0 - self.lighting * (std::f32::consts::PI * t * self.lighting_cycles).sin()
            + 0.04 * t;
        let (dx, dy) = self.shake_at(i, w.min(h));
        let placed = paint::Placed::new(self, angle, dx, dy);

        let noise = Noise::new(self.seed.wrapping_mul(1_000_003) ^ i as u64);
        let mut draw = noise.state;
        let mut image = RgbImage::new(self.width, self.height);
        let mut mask = GrayImage::new(self.width, self.height);
        for y in 0..self.height {
            let fy = y as f32 + 0.5;
            let span = placed.span(fy);
            for x in 0..self.width {
                let fx = x as f32 + 0.5;
                let product = span
                    .filter(|(left, right)| fx >= *left && fx < *right)
                    .map(|(left, right)| placed.colour(fx, fy, left, right));
                let colour = match product {
                    Some(colour) => {
                        mask.put_pixel(x, y, Luma([255]));
                        colour
                    }
                    None => placed.background(fx, fy),
                };
                let pixel = colour.map(|c| {
                    (c * gain + noise.sample(&mut draw) * self.noise).clamp(0.0, 255.0) as u8
                });
                image.put_pixel(x, y, Rgb(pixel));
            }
        }
        (image, mask)
    }

    /// A smooth, repeatable wander of the camera, in pixels.
    fn shake_at(&self, i: usize, short: f32) -> (f32, f32) {
        let amplitude = self.shake * short;
        let s = self.seed as f32;
        let t = i as f32;
        (
            amplitude * ((t * 0.9 + s).sin() * 0.6 + (t * 2.3 + s * 1.7).sin() * 0.4),
            amplitude * ((t * 1.3 + s * 0.5).cos() * 0.6 + (t * 3.1 + s).sin() * 0.4),
        )
    }

    /// Encodes the scene with `ffmpeg`. `rotate` stores the picture turned a
    /// quarter turn counter-clockwise and tags it to be shown turned back
    /// clockwise, as phones record portrait video, so a correct reader sees it
    /// upright.
    pub fn write_video(&self, path: &Path, codec: Codec, rotate: bool) -> anyhow::Result<()> {
        self.write_video_with(path, codec, rotate, &[])
    }

    /// The same, with more encoder options (`-g 60 -bf 3`: a keyframe every
    /// 60 frames and up to 3 B-frames, as phones encode).
    pub fn write_video_with(
        &self,
        path: &Path,
        codec: Codec,
        rotate: bool,
        encoder: &[&str],
    ) -> anyhow::Result<()> {
        let (w, h) = if rotate {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        };
        let encoded = if rotate {
            path.with_extension(format!("sideways.{}", codec.extension()))
        } else {
            path.to_owned()
        };
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24"])
            .args([
                "-s",
                &format!("{w}x{h}"),
                "-r",
                &self.fps.to_string(),
                "-i",
                "-",
            ])
            .args(codec.ffmpeg_args())
            .args(encoder)
            .arg(&encoded)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running ffmpeg (install it with scripts/setup.sh)")?;
        {
            let mut stdin = child.stdin.take().expect("piped");
            for i in 0..self.frames {
                let (frame, _) = self.render(i);
                let frame = if rotate {
                    imageops::rotate270(&frame)
                } else {
                    frame
                };
                if stdin.write_all(frame.as_raw()).is_err() {
                    break;
                }
            }
        }
        finish(child.wait_with_output()?, "encode")?;
        if rotate {
            // FFmpeg 5.1 writes the tag as a display matrix only when copying a
            // stream, and reads `rotate=270` as "show turned clockwise" (what
            // phones record: ffprobe reports rotation=-90).
            let output = Command::new("ffmpeg")
                .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
                .arg(&encoded)
                .args(["-c", "copy", "-metadata:s:v:0", "rotate=270"])
                .arg(path)
                .output()?;
            let _ = std::fs::remove_file(&encoded);
            finish(output, "tag")?;
        }
        Ok(())
    }
}

fn finish(output: std::process::Output, step: &str) -> anyhow::Result<()> {
    if !output.status.success() {
        bail!(
            "ffmpeg could not {step} the sample video: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Sensor noise: standard normal samples drawn from a table with a cheap
/// generator, fast enough for full-HD frames.
struct Noise {
    table: std::sync::Arc<Vec<f32>>,
    state: u64,
}

impl Noise {
    fn new(seed: u64) -> Self {
        static TABLE: std::sync::OnceLock<std::sync::Arc<Vec<f32>>> = std::sync::OnceLock::new();
        let table = TABLE
            .get_or_init(|| {
                let mut rng = StdRng::seed_from_u64(42);
                std::sync::Arc::new(
                    (0..1 << 16)
                        .map(|_| {
                            // Box-Muller.
                            let u1: f32 = rng.random_range(f32::EPSILON..1.0);
                            let u2: f32 = rng.random_range(0.0..1.0);
                            (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                        })
                        .collect(),
                )
            })
            .clone();
        Self {
            table,
            state: seed | 1,
        }
    }

    fn sample(&self, state: &mut u64) -> f32 {
        // xorshift64
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        self.table[(*state >> 48) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_masks_agree_and_repeat() {
        let scene = Scene {
            width: 160,
            height: 120,
            frames: 10,
            ..Scene::default()
        };
        let (a, mask) = scene.render(3);
        let (b, _) = scene.render(3);
        assert_eq!(a, b, "the same frame renders the same");
        let area = mask.pixels().filter(|p| p.0[0] == 255).count();
        let fraction = area as f64 / (160.0 * 120.0);
        assert!((0.05..0.5).contains(&fraction), "product covers {fraction}");
        // The product's pixels differ from the wall's.
        let inside = a.get_pixel(80, 60);
        let wall = a.get_pixel(3, 3);
        assert!(inside.0.iter().zip(wall.0).any(|(x, y)| x.abs_diff(y) > 40));
    }

    #[test]
    fn the_box_turns() {
        let scene = Scene::default();
        let width = |i| {
            let (_, mask) = scene.render(i);
            (0..scene.width)
                .filter(|&x| mask.get_pixel(x, scene.height / 2).0[0] == 255)
                .count()
        };
        assert_ne!(width(0), width(30));
    }
}
