//! Sample product videos made here, with exact ground-truth masks: a textured
//! box turning in front of a plain background, filmed with sensor noise, a
//! lighting change and some camera shake, encoded through the `ffmpeg` program.
//! They feed the tests, the benchmarks and the first run of a new installation.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

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
            seed: 7,
        }
    }
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

const BACKGROUND: [f32; 3] = [206.0, 200.0, 188.0];

impl Scene {
    /// Frame `i` and its ground-truth product mask (255 = product).
    pub fn render(&self, i: usize) -> (RgbImage, GrayImage) {
        let (w, h) = (self.width as f32, self.height as f32);
        let short = w.min(h);
        let t = i as f32 / self.frames.max(1) as f32;
        let angle = t * self.turns * std::f32::consts::TAU + 0.35;
        // Lighting: a slow dip and recovery, as when a cloud passes a window.
        let gain = 1.0 - 0.18 * (std::f32::consts::PI * t).sin() + 0.04 * t;
        let (dx, dy) = self.shake_at(i, short);

        // The box: front and side faces of an upright carton, seen from the front.
        let box_h = short * 0.62;
        let front_w = short * 0.36;
        let side_w = short * 0.16;
        let (cos, sin) = (angle.cos(), angle.sin());
        let front = front_w * cos.abs();
        let side = side_w * sin.abs();
        let total = front + side;
        let left = w / 2.0 - total / 2.0 + dx;
        let top = h / 2.0 - box_h / 2.0 + dy + short * 0.03;
        // Which face shows on the left depends on the direction of the turn.
        let side_first = (cos >= 0.0) == (sin < 0.0);

        let noise = Noise::new(self.seed.wrapping_mul(1_000_003) ^ i as u64);
        let mut draw = noise.state;
        let mut image = RgbImage::new(self.width, self.height);
        let mut mask = GrayImage::new(self.width, self.height);
        for y in 0..self.height {
            for x in 0..self.width {
                let (fx, fy) = (x as f32 + 0.5, y as f32 + 0.5);
                let inside = fy >= top && fy < top + box_h && fx >= left && fx < left + total;
                let colour = if inside {
                    mask.put_pixel(x, y, Luma([255]));
                    let v = (fy - top) / box_h;
                    let u = fx - left;
                    let (on_side, local) = if side_first {
                        (
                            u < side,
                            if u < side {
                                u / side.max(1e-3)
                            } else {
                                (u - side) / front.max(1e-3)
                            },
                        )
                    } else {
                        (
                            u >= front,
                            if u < front {
                                u / front.max(1e-3)
                            } else {
                                (u - front) / side.max(1e-3)
                            },
                        )
                    };
                    // The label slides across the front as the box turns.
                    let shift = angle / std::f32::consts::TAU;
                    if on_side {
                        side_texture(local, v)
                    } else {
                        front_texture((local + shift).rem_euclid(1.0), v)
                    }
                } else {
                    // A plain wall with a soft vertical falloff and a darker corner.
                    let falloff = 1.0 - 0.10 * (fy / h) - 0.05 * ((fx - w) / w).powi(2);
                    BACKGROUND.map(|c| c * falloff)
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

/// The carton's front: a coloured panel with a logo, stripes, text and a white label.
fn front_texture(u: f32, v: f32) -> [f32; 3] {
    let logo = ((u - 0.5) * 1.6).hypot(v - 0.28) < 0.16;
    if logo {
        return [250.0, 204.0, 40.0];
    }
    if (0.52..0.70).contains(&v) && (0.12..0.88).contains(&u) {
        // A white label with lines of dark "text".
        let line = ((v - 0.52) * 60.0) as i32 % 3 == 1 && ((u * 23.0) as i32 % 5) != 0;
        return if line {
            [40.0, 40.0, 48.0]
        } else {
            [246.0, 246.0, 242.0]
        };
    }
    if ((v * 14.0) as i32) % 2 == 0 && v > 0.76 {
        return [30.0, 90.0, 170.0];
    }
    [190.0, 32.0, 45.0]
}

/// The carton's side: darker, with a nutrition-table block.
fn side_texture(u: f32, v: f32) -> [f32; 3] {
    if (0.45..0.85).contains(&v) && (0.15..0.85).contains(&u) {
        return if ((v * 40.0) as i32) % 2 == 0 {
            [236.0, 236.0, 230.0]
        } else {
            [70.0, 70.0, 74.0]
        };
    }
    [150.0, 24.0, 36.0]
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
