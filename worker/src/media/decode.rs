//! Decoding with FFmpeg: an evenly spaced sample of a video's frames, upright.
//!
//! Two passes over the file. The first only demuxes packets to learn every
//! frame's presentation time and where the keyframes are (cheap: nothing is
//! decoded), which handles variable frame rates and missing durations alike.
//! The second decodes only what the chosen frames need: it seeks to the last
//! keyframe before a chosen frame when that lies past the stretch being
//! decoded, tells the decoder to drop frames nothing refers to (unless one is
//! chosen), converts just the chosen frames to RGB, and stops as soon as it has
//! them all. Dropping an unreferenced frame changes no other frame, and a
//! keyframe starts afresh, so the frames are those a full decode gives.
//! Longer than most files: the timing scan and the sampled decode share the
//! stream's state (rotation, time base, frame times).

use std::{collections::VecDeque, path::Path, sync::Once};

use ffmpeg::Rescale as _;
use ffmpeg::{
    codec, format,
    media::Type,
    software::scaling,
    util::{format::Pixel, frame},
};
use ffmpeg_next as ffmpeg;
use image::{RgbImage, imageops};

/// Why a file could not be decoded. All but `Io` are permanent: trying again
/// gives the same answer.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a video FFmpeg can read ({0})")]
    NotAVideo(String),
    #[error("the file has no video stream{0}")]
    NoVideoStream(&'static str),
    #[error("the video could not be decoded ({0})")]
    Corrupt(String),
    #[error("reading the video failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What a video is, as far as the pipeline cares.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VideoInfo {
    pub container: String,
    pub codec: String,
    /// Size of the upright frames (after rotation).
    pub width: u32,
    pub height: u32,
    /// Clockwise rotation applied to make frames upright: 0, 90, 180 or 270.
    pub rotation: u32,
    /// Frames in the video stream.
    pub frame_count: usize,
    /// From the first to the last frame, in seconds.
    pub duration_s: f64,
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Position in presentation order, from 0.
    pub index: usize,
    /// Presentation time in seconds from the first frame.
    pub time_s: f64,
    pub image: RgbImage,
}

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        ffmpeg::init().expect("FFmpeg initialises");
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    });
}

/// Decodes `count` frames spread evenly over the video (all of them when it
/// has fewer), upright, decoding no more than they need.
pub fn sample_frames(path: &Path, count: usize) -> Result<(VideoInfo, Vec<Frame>), DecodeError> {
    sample(path, count, Reach::Needed)
}

/// The same frames, found by decoding every frame of the video in order: the
/// reference the sampled decode is checked and measured against.
pub fn sample_frames_decoding_all(
    path: &Path,
    count: usize,
) -> Result<(VideoInfo, Vec<Frame>), DecodeError> {
    sample(path, count, Reach::Every)
}

/// How much of the video the sampled decode decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Only what the wanted frames need.
    Needed,
    /// Every frame up to the last one wanted.
    Every,
}

fn sample(path: &Path, count: usize, reach: Reach) -> Result<(VideoInfo, Vec<Frame>), DecodeError> {
    init();
    let times = frame_times(path)?;
    let wanted = evenly_spaced_in_time(&times.timestamps, count.max(1));
    let targets: VecDeque<(usize, i64)> = wanted
        .into_iter()
        .map(|i| (i, times.timestamps[i]))
        .collect();

    let mut input = open(path)?;
    let (stream_index, mut decoder, rotation, time_base) = video_decoder(&input)?;
    let mut sampler = Sampler {
        targets,
        scaler: None,
        frames: Vec::new(),
        rotation,
        first: times.first,
        time_base: f64::from(time_base),
    };
    let mut decoded = frame::Video::empty();
    let mut rejected = 0;
    // The keyframe the decoder last started from.
    let mut stretch: Option<i64> = None;
    let mut ended = false;
    while let Some(&(_, target)) = sampler.targets.front() {
        if reach == Reach::Needed {
            let key = times
                .keyframes
                .iter()
                .rev()
                .find(|&&k| k <= target)
                .copied();
            if let Some(key) = key
                && stretch.is_none_or(|s| key > s)
            {
                // A later keyframe than the one being decoded from: everything
                // between is of no use. Frames still in the decoder were not
                // wanted (the ones wanted so far have all come out).
                decoder.flush();
                let at =
                    key.rescale_with(time_base, ffmpeg::rescale::TIME_BASE, ffmpeg::Rounding::Up);
                input
                    .seek(at, ..at + 1)
                    .map_err(|e| DecodeError::Corrupt(format!("seeking failed: {e}")))?;
                stretch = Some(key);
                ended = false;
            }
        }
        if ended {
            break;
        }
        let wanted_before = sampler.targets.len();
        let mut read_any = false;
        for (stream, packet) in input.packets() {
            if stream.index() != stream_index {
                continue;
            }
            read_any = true;
            if reach == Reach::Needed {
                if packet.is_key()
                    && let Some(pts) = packet.pts()
                {
                    stretch = Some(stretch.map_or(pts, |s| s.max(pts)));
                }
                // A wanted frame is decoded whatever it is; others only when
                // later frames may refer to them.
                let wanted = packet
                    .pts()
                    .is_none_or(|pts| sampler.targets.iter().any(|&(_, t)| t == pts));
                decoder.skip_frame(if wanted {
                    ffmpeg::Discard::Default
                } else {
                    ffmpeg::Discard::NonReference
                });
            }
            if decoder.send_packet(&packet).is_err() {
                rejected += 1;
                continue;
            }
            while decoder.receive_frame(&mut decoded).is_ok() {
                sampler.offer(&decoded)?;
            }
            if sampler.targets.len() < wanted_before {
                break;
            }
        }
        if sampler.targets.len() == wanted_before {
            // The packets ran out with frames still wanted: drain the decoder.
            let _ = decoder.send_eof();
            while decoder.receive_frame(&mut decoded).is_ok() {
                sampler.offer(&decoded)?;
            }
            ended = true;
            if !read_any || sampler.targets.len() == wanted_before {
                break;
            }
        }
    }
    let frames = sampler.frames;
    if frames.is_empty() {
        return Err(DecodeError::Corrupt(format!(
            "no frame decoded ({rejected} packets rejected)"
        )));
    }

    let (width, height) = (frames[0].image.width(), frames[0].image.height());
    let info = VideoInfo {
        container: times.container,
        codec: times.codec,
        width,
        height,
        rotation,
        frame_count: times.timestamps.len(),
        duration_s: (times.timestamps.last().copied().unwrap_or(times.first) - times.first) as f64
            * f64::from(time_base),
    };
    Ok((info, frames))
}

/// Collects the wanted frames as the decoder hands frames out.
struct Sampler {
    /// (index, timestamp) of the frames still wanted, in presentation order.
    targets: VecDeque<(usize, i64)>,
    scaler: Option<scaling::Context>,
    frames: Vec<Frame>,
    rotation: u32,
    first: i64,
    time_base: f64,
}

impl Sampler {
    /// Frames leave the decoder in presentation order: the next target takes the
    /// first frame at or after its time.
    fn offer(&mut self, decoded: &frame::Video) -> Result<(), DecodeError> {
        let Some(ts) = decoded.timestamp() else {
            return Ok(());
        };
        match self.targets.front() {
            Some(&(index, target)) if ts >= target => {
                self.targets.pop_front();
                let image = to_rgb(decoded, &mut self.scaler)?;
                self.frames.push(Frame {
                    index,
                    time_s: (target - self.first) as f64 * self.time_base,
                    image: upright(image, self.rotation),
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Decodes every frame without converting it, like `ffmpeg -i clip -f null -`;
/// returns how many frames came out. For measuring the decoder.
pub fn decode_all(path: &Path) -> Result<usize, DecodeError> {
    init();
    let mut input = open(path)?;
    let (stream_index, mut decoder, _, _) = video_decoder(&input)?;
    let mut decoded = frame::Video::empty();
    let mut count = 0;
    for (stream, packet) in input.packets() {
        if stream.index() == stream_index && decoder.send_packet(&packet).is_ok() {
            while decoder.receive_frame(&mut decoded).is_ok() {
                count += 1;
            }
        }
    }
    let _ = decoder.send_eof();
    while decoder.receive_frame(&mut decoded).is_ok() {
        count += 1;
    }
    Ok(count)
}

/// The version of the libavcodec this binary runs with.
pub fn libavcodec_version() -> (u32, u32, u32) {
    init();
    let v = ffmpeg::codec::version();
    (v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// Indices of the frames nearest to `count` instants spread evenly from the
/// first frame's time to the last one's (fewer when frames are too sparse to
/// give distinct ones). With a variable frame rate this samples time, not the
/// stretches where frames happen to be dense.
pub fn evenly_spaced_in_time(timestamps: &[i64], count: usize) -> Vec<usize> {
    let total = timestamps.len();
    if count >= total || total <= 1 {
        return (0..total).collect();
    }
    let (first, last) = (timestamps[0] as i128, timestamps[total - 1] as i128);
    // Instant i is `at / steps`, kept as a fraction so that ties round up as
    // `evenly_spaced` does and a steady rate samples exactly like it.
    let steps = count.saturating_sub(1).max(1) as i128;
    let mut picks: Vec<usize> = Vec::with_capacity(count);
    for i in 0..count {
        let at = if count == 1 {
            (first + last) * steps / 2
        } else {
            first * steps + (last - first) * i as i128
        };
        let after = timestamps
            .partition_point(|&t| (t as i128) * steps < at)
            .min(total - 1);
        let nearest = if after > 0
            && at - timestamps[after - 1] as i128 * steps < timestamps[after] as i128 * steps - at
        {
            after - 1
        } else {
            after
        };
        if picks.last() != Some(&nearest) {
            picks.push(nearest);
        }
    }
    picks
}

/// Indices of `count` items spread evenly over `total`, first and last included.
pub fn evenly_spaced(total: usize, count: usize) -> Vec<usize> {
    if total == 0 {
        return Vec::new();
    }
    if count >= total {
        return (0..total).collect();
    }
    if count == 1 {
        return vec![total / 2];
    }
    (0..count)
        .map(|i| (i * (total - 1) + (count - 1) / 2) / (count - 1))
        .collect()
}

struct FrameTimes {
    container: String,
    codec: String,
    /// Presentation timestamps of all frames, ascending, in the stream's time base.
    timestamps: Vec<i64>,
    first: i64,
    /// Presentation times of the keyframes, ascending; empty when the packets
    /// lack times of their own (then nothing is skipped by seeking).
    keyframes: Vec<i64>,
}

/// First pass: the presentation time of every frame, from the packets alone.
fn frame_times(path: &Path) -> Result<FrameTimes, DecodeError> {
    let mut input = open(path)?;
    let container = input.format().name().to_owned();
    let stream = input
        .streams()
        .best(Type::Video)
        .ok_or_else(|| no_video_stream(&input))?;
    let index = stream.index();
    let codec = codec::context::Context::from_parameters(stream.parameters())
        .map(|c| c.id().name().to_owned())
        .unwrap_or_default();
    let mut timestamps = Vec::new();
    let mut keyframes = Vec::new();
    let mut timed = true;
    for (stream, packet) in input.packets() {
        if stream.index() != index {
            continue;
        }
        timed &= packet.pts().is_some();
        // Packets without a timestamp (raw streams) follow the previous one.
        let ts = packet
            .pts()
            .or(packet.dts())
            .unwrap_or_else(|| timestamps.last().map_or(0, |t| t + 1));
        timestamps.push(ts);
        if packet.is_key() {
            keyframes.push(ts);
        }
    }
    keyframes.sort_unstable();
    if timestamps.is_empty() {
        return Err(DecodeError::Corrupt(
            "the video stream holds no frames".into(),
        ));
    }
    timestamps.sort_unstable();
    timestamps.dedup();
    let first = timestamps[0];
    Ok(FrameTimes {
        container,
        codec,
        timestamps,
        first,
        // Seeking needs every packet's own time, and a keyframe to land on.
        keyframes: if timed { keyframes } else { Vec::new() },
    })
}

fn open(path: &Path) -> Result<format::context::Input, DecodeError> {
    let size = std::fs::metadata(path)?.len();
    if size == 0 {
        return Err(DecodeError::Empty);
    }
    format::input(&path).map_err(|e| DecodeError::NotAVideo(e.to_string()))
}

fn no_video_stream(input: &format::context::Input) -> DecodeError {
    if input.streams().best(Type::Audio).is_some() {
        DecodeError::NoVideoStream(" (it holds audio only)")
    } else {
        DecodeError::NoVideoStream("")
    }
}

/// The video stream's index, a threaded decoder for it, its clockwise rotation
/// and its time base.
fn video_decoder(
    input: &format::context::Input,
) -> Result<(usize, ffmpeg::decoder::Video, u32, ffmpeg::Rational), DecodeError> {
    let stream = input
        .streams()
        .best(Type::Video)
        .ok_or_else(|| no_video_stream(input))?;
    let mut context = codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    context.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: 0,
        ..Default::default()
    });
    let decoder = context
        .decoder()
        .video()
        .map_err(|e| DecodeError::Corrupt(format!("no decoder for this codec: {e}")))?;
    Ok((
        stream.index(),
        decoder,
        rotation(&stream),
        stream.time_base(),
    ))
}

/// Clockwise degrees to turn the decoded picture to show it as meant, from the
/// display matrix (or the older `rotate` tag), rounded to a quarter turn.
fn rotation(stream: &ffmpeg::format::stream::Stream) -> u32 {
    let from_matrix = stream.side_data().find_map(|side| {
        (side.kind() == codec::packet::side_data::Type::DisplayMatrix)
            .then(|| display_matrix_rotation(side.data()))
            .flatten()
    });
    let degrees = from_matrix.or_else(|| {
        stream
            .metadata()
            .get("rotate")
            .and_then(|r| r.parse::<f64>().ok())
    });
    quarter_turns(degrees.unwrap_or(0.0))
}

/// The clockwise rotation a display matrix asks for, in degrees.
fn display_matrix_rotation(data: &[u8]) -> Option<f64> {
    if data.len() < 36 {
        return None;
    }
    let m: Vec<f64> = data[..36]
        .chunks_exact(4)
        .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 65536.0)
        .collect();
    let scale0 = m[0].hypot(m[3]);
    let scale1 = m[1].hypot(m[4]);
    if scale0 == 0.0 || scale1 == 0.0 {
        return None;
    }
    // As FFmpeg's av_display_rotation_get, negated: clockwise degrees.
    Some((m[1] / scale1).atan2(m[0] / scale0).to_degrees())
}

fn quarter_turns(degrees: f64) -> u32 {
    let normalised = degrees.round().rem_euclid(360.0);
    (((normalised + 45.0) / 90.0).floor() as u32 % 4) * 90
}

fn upright(image: RgbImage, rotation: u32) -> RgbImage {
    match rotation {
        90 => imageops::rotate90(&image),
        180 => imageops::rotate180(&image),
        270 => imageops::rotate270(&image),
        _ => image,
    }
}

fn to_rgb(
    decoded: &frame::Video,
    scaler: &mut Option<scaling::Context>,
) -> Result<RgbImage, DecodeError> {
    let (width, height) = (decoded.width(), decoded.height());
    let fits = scaler.as_ref().is_some_and(|s| {
        s.input().format == decoded.format()
            && s.input().width == width
            && s.input().height == height
    });
    if !fits {
        *scaler = Some(
            scaling::Context::get(
                decoded.format(),
                width,
                height,
                Pixel::RGB24,
                width,
                height,
                scaling::Flags::BILINEAR,
            )
            .map_err(|e| DecodeError::Corrupt(format!("cannot convert its pixels: {e}")))?,
        );
    }
    let mut rgb = frame::Video::empty();
    scaler
        .as_mut()
        .expect("set above")
        .run(decoded, &mut rgb)
        .map_err(|e| DecodeError::Corrupt(format!("cannot convert its pixels: {e}")))?;
    // Rows of the converted frame may be padded: copy them tight.
    let stride = rgb.stride(0);
    let row = width as usize * 3;
    let data = rgb.data(0);
    let mut pixels = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    Ok(RgbImage::from_raw(width, height, pixels).expect("sized to fit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_spread_over_the_whole_video() {
        assert_eq!(evenly_spaced(100, 5), vec![0, 25, 50, 74, 99]);
        assert_eq!(evenly_spaced(3, 5), vec![0, 1, 2]);
        assert_eq!(evenly_spaced(10, 1), vec![5]);
        assert_eq!(evenly_spaced(0, 4), Vec::<usize>::new());
        let picks = evenly_spaced(301, 24);
        assert_eq!(picks.len(), 24);
        assert!(picks.windows(2).all(|w| w[0] < w[1]));
        assert_eq!((picks[0], picks[23]), (0, 300));
    }

    #[test]
    fn samples_spread_over_time_when_the_frame_rate_varies() {
        // 10 frames a second for a second, then 50 a second for a second.
        let mut times: Vec<i64> = (0..10).map(|i| i * 100).collect();
        times.extend((0..50).map(|i| 1000 + i * 20));
        // The instants are 0, 495, 990, 1485 and 1980 ms; each takes its
        // nearest frame, however dense the frames around it.
        let picks = evenly_spaced_in_time(&times, 5);
        let at: Vec<i64> = picks.iter().map(|&i| times[i]).collect();
        assert_eq!(at, vec![0, 500, 1000, 1480, 1980]);
        // A constant rate samples like the index does.
        let steady: Vec<i64> = (0..100).collect();
        assert_eq!(evenly_spaced_in_time(&steady, 5), evenly_spaced(100, 5));
        assert_eq!(evenly_spaced_in_time(&[5, 6], 4), vec![0, 1]);
    }

    #[test]
    fn rotations_round_to_quarter_turns() {
        assert_eq!(quarter_turns(0.0), 0);
        assert_eq!(quarter_turns(90.0), 90);
        assert_eq!(quarter_turns(-90.0), 270);
        assert_eq!(quarter_turns(179.6), 180);
        assert_eq!(quarter_turns(-270.0), 90);
        assert_eq!(quarter_turns(359.0), 0);
    }

    #[test]
    fn a_display_matrix_for_a_quarter_turn_reads_as_one() {
        // The matrix FFmpeg writes for `-metadata:s:v rotate=90`.
        let fixed = |v: f64| ((v * 65536.0) as i32).to_le_bytes();
        let matrix = [0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let data: Vec<u8> = matrix.iter().flat_map(|v| fixed(*v)).collect();
        assert_eq!(quarter_turns(display_matrix_rotation(&data).unwrap()), 90);
    }
}
