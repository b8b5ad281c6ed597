//! Decoding and segmenting the project's own sample videos, through the real
//! `ffmpeg` encoders and Debian's FFmpeg libraries.

use std::path::PathBuf;

use buybuddy_worker::{
    media::{
        decode::{self, DecodeError},
        synthetic::{Codec, Scene},
    },
    segment::{ClassicSegmenter, Segmenter, iou},
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("buybuddy-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn small_scene() -> Scene {
    Scene {
        width: 320,
        height: 240,
        frames: 30,
        ..Scene::default()
    }
}

#[test]
fn every_container_and_codec_decodes_to_evenly_spaced_frames() {
    let scene = small_scene();
    for codec in Codec::ALL {
        let path = scratch(&format!("sample.{}", codec.extension()));
        scene.write_video(&path, codec, false).unwrap();
        let (info, frames) = decode::sample_frames(&path, 6).unwrap();
        println!("{codec:?}: {info:?}");
        assert_eq!(info.frame_count, 30, "{codec:?}");
        assert_eq!(
            (info.width, info.height, info.rotation),
            (320, 240, 0),
            "{codec:?}"
        );
        let indices: Vec<usize> = frames.iter().map(|f| f.index).collect();
        assert_eq!(indices, decode::evenly_spaced(30, 6), "{codec:?}");
        assert!(
            (info.duration_s - 29.0 / 20.0).abs() < 0.06,
            "{codec:?}: {}",
            info.duration_s
        );
        assert!(frames.iter().all(|f| f.image.dimensions() == (320, 240)));
    }
}

#[test]
fn a_portrait_video_stored_sideways_comes_out_upright() {
    let scene = Scene {
        width: 240,
        height: 320,
        frames: 10,
        ..Scene::default()
    };
    let path = scratch("portrait.mp4");
    scene.write_video(&path, Codec::H264, true).unwrap();
    let (info, frames) = decode::sample_frames(&path, 3).unwrap();
    assert_eq!((info.width, info.height, info.rotation), (240, 320, 90));
    // Upright means the masks of the upright scene fit the decoded frames.
    let masks = ClassicSegmenter::default()
        .segment(
            &frames.iter().map(|f| f.image.clone()).collect::<Vec<_>>(),
            "box",
        )
        .unwrap();
    for (frame, mask) in frames.iter().zip(&masks) {
        let (_, truth) = scene.render(frame.index);
        let overlap = iou(mask, &truth);
        assert!(overlap > 0.8, "frame {}: IoU {overlap}", frame.index);
    }
}

#[test]
fn segmentation_of_sample_videos_matches_the_ground_truth() {
    let mut all = Vec::new();
    for (seed, codec) in [(7, Codec::H264), (11, Codec::Vp9), (23, Codec::Hevc)] {
        let scene = Scene {
            seed,
            frames: 48,
            ..Scene::default()
        };
        let path = scratch(&format!("iou-{seed}.{}", codec.extension()));
        scene.write_video(&path, codec, false).unwrap();
        let (_, frames) = decode::sample_frames(&path, 16).unwrap();
        let images: Vec<_> = frames.iter().map(|f| f.image.clone()).collect();
        let masks = ClassicSegmenter::default().segment(&images, "box").unwrap();
        let scores: Vec<f64> = frames
            .iter()
            .zip(&masks)
            .map(|(frame, mask)| iou(mask, &scene.render(frame.index).1))
            .collect();
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let worst = scores.iter().copied().fold(1.0, f64::min);
        println!("{codec:?} seed {seed}: mean IoU {mean:.4}, worst frame {worst:.4}");
        all.extend(scores);
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    println!(
        "classic segmenter, {} frames of 3 sample videos: mean IoU {mean:.4}",
        all.len()
    );
    assert!(mean >= 0.85, "mean IoU {mean:.4} below 0.85");
}

#[test]
fn files_that_are_not_videos_say_what_they_are() {
    let empty = scratch("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        decode::sample_frames(&empty, 4),
        Err(DecodeError::Empty)
    ));

    let text = scratch("notes.mp4");
    std::fs::write(&text, "shopping list: milk, eggs\n".repeat(50)).unwrap();
    let error = decode::sample_frames(&text, 4).unwrap_err();
    assert!(matches!(error, DecodeError::NotAVideo(_)), "{error}");

    let audio = scratch("tone.m4a");
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .args(["sine=frequency=440:duration=1", "-c:a", "aac"])
        .arg(&audio)
        .status()
        .unwrap();
    assert!(made.success());
    let error = decode::sample_frames(&audio, 4).unwrap_err();
    assert!(error.to_string().contains("audio only"), "{error}");

    // A real video cut short, keeping its header but losing most of the data.
    let whole = scratch("whole.mkv");
    small_scene()
        .write_video(&whole, Codec::Vp9, false)
        .unwrap();
    let bytes = std::fs::read(&whole).unwrap();
    let cut = scratch("cut.mkv");
    let mut damaged = bytes[..bytes.len() / 3].to_vec();
    damaged.extend(std::iter::repeat_n(0x5a, 4096));
    std::fs::write(&cut, damaged).unwrap();
    // A truncated file still yields what it holds, or says it is damaged.
    match decode::sample_frames(&cut, 8) {
        Ok((info, frames)) => assert!(!frames.is_empty() && info.frame_count < 30),
        Err(error) => assert!(matches!(error, DecodeError::Corrupt(_)), "{error}"),
    }
    let garbage = scratch("garbage.mp4");
    let mut noise = bytes[..64].to_vec();
    noise.extend((0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&garbage, noise).unwrap();
    assert!(decode::sample_frames(&garbage, 4).is_err());
}

#[test]
fn a_variable_frame_rate_video_is_sampled_evenly_in_time() {
    let steady = scratch("steady.mp4");
    small_scene()
        .write_video(&steady, Codec::H264, false)
        .unwrap();
    // Re-time it: the first 10 frames over 2 s, the other 20 over the next second.
    let vfr = scratch("vfr.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&steady)
        .args([
            "-vf",
            "setpts='if(lt(N,10),N*0.2,2+(N-10)*0.05)/TB'",
            "-fps_mode",
            "vfr",
        ])
        .args(["-c:v", "libx264", "-preset", "veryfast"])
        .arg(&vfr)
        .status()
        .unwrap();
    assert!(made.success());
    let (info, frames) = decode::sample_frames(&vfr, 4).unwrap();
    assert_eq!(info.frame_count, 30);
    let times: Vec<f64> = frames.iter().map(|f| f.time_s).collect();
    println!("sampled at {times:?} s over {:.2} s", info.duration_s);
    // Evenly in time: two samples in the slow first part, though it holds a third
    // of the frames.
    for (time, target) in times.iter().zip([0.0, 0.983, 1.967, 2.95]) {
        assert!((time - target).abs() <= 0.11, "{times:?}");
    }
    let indices: Vec<usize> = frames.iter().map(|f| f.index).collect();
    assert!(indices[1] < 10, "{indices:?}");
}

#[test]
fn a_one_frame_video_gives_its_one_frame() {
    let scene = Scene {
        frames: 1,
        ..small_scene()
    };
    let path = scratch("single.mp4");
    scene.write_video(&path, Codec::H264, false).unwrap();
    let (info, frames) = decode::sample_frames(&path, 24).unwrap();
    assert_eq!(info.frame_count, 1);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].index, 0);
}

#[test]
fn the_classic_segmenter_finds_the_product_in_every_kind_of_scene() {
    use buybuddy_worker::{media::synthetic::KINDS, segment::measure};
    // Seeds not used while tuning; half-size pictures keep the test quick
    // (the segmenter works on a reduced copy either way).
    let segmenter = ClassicSegmenter::default();
    let mut failures = Vec::new();
    for kind in KINDS {
        for seed in [31, 32] {
            let score = measure::score(
                kind,
                seed,
                6,
                0.5,
                measure::Route::Rendered,
                &std::env::temp_dir(),
                &segmenter,
            )
            .unwrap();
            println!(
                "{:14} seed {seed}: mean IoU {:.3}, worst frame {:.3}",
                kind.name,
                score.mean(),
                score.min()
            );
            if score.mean() < 0.9 {
                failures.push(format!("{} seed {seed}: {:.3}", kind.name, score.mean()));
            }
        }
    }
    assert!(failures.is_empty(), "below 0.9 mean IoU: {failures:?}");
}

/// The frames of a sampled decode, and of decoding every frame, side by side.
fn same_frames(path: &std::path::Path, count: usize) -> usize {
    let (info, sampled) = decode::sample_frames(path, count).unwrap();
    let (reference_info, reference) = decode::sample_frames_decoding_all(path, count).unwrap();
    assert_eq!(info, reference_info);
    assert_eq!(sampled.len(), reference.len(), "{path:?}");
    for (a, b) in sampled.iter().zip(&reference) {
        assert_eq!((a.index, a.time_s), (b.index, b.time_s), "{path:?}");
        assert!(
            a.image == b.image,
            "{path:?}: frame {} differs from the full decode's",
            a.index
        );
    }
    sampled.len()
}

#[test]
fn sampled_decoding_gives_the_frames_a_full_decode_gives() {
    let scene = Scene {
        width: 320,
        height: 240,
        frames: 90,
        fps: 30,
        ..Scene::default()
    };
    // Phone-like H.264 (B-frames, a keyframe every 24 frames, open to seeking),
    // the default encode (one long group of pictures), HEVC with B-frames, VP9
    // and all-keyframe Motion JPEG.
    let cases: [(&str, Codec, &[&str]); 5] = [
        ("phone.mp4", Codec::H264, &["-g", "24", "-bf", "3"]),
        ("long-gop.mp4", Codec::H264, &[]),
        ("phone.mov", Codec::Hevc, &["-g", "24", "-bf", "3"]),
        ("sample.webm", Codec::Vp9, &["-g", "24"]),
        ("sample.avi", Codec::Mjpeg, &[]),
    ];
    for (name, codec, encoder) in cases {
        let path = scratch(name);
        scene
            .write_video_with(&path, codec, false, encoder)
            .unwrap();
        for count in [1, 7, 24, 200] {
            let got = same_frames(&path, count);
            assert_eq!(got, count.min(90), "{name}, {count} frames");
        }
    }
    // Sideways phone video: the same upright frames either way.
    let path = scratch("sideways.mp4");
    scene
        .write_video_with(&path, Codec::H264, true, &["-g", "24", "-bf", "3"])
        .unwrap();
    assert_eq!(same_frames(&path, 9), 9);
}
