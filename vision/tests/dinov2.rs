//! The DINOv2 port against transformers: small random models saved by
//! `vision/python/make_dinov2.py --tiny` (scripts/setup.sh --test makes them in
//! `.data/models/dinov2-tiny`; `BUYBUDDY_DINOV2_TINY` points elsewhere) with
//! the outputs transformers computed for fixed inputs. Ours must match them.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use buybuddy_vision::{DeviceChoice, Dinov2, Dinov2Options};
use image::RgbImage;
use tch::{Kind, Tensor};

const VARIANTS: [&str; 3] = ["tiny", "tiny-registers", "tiny-swiglu"];

fn models() -> PathBuf {
    let path = std::env::var_os("BUYBUDDY_DINOV2_TINY").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.data/models/dinov2-tiny"),
        PathBuf::from,
    );
    assert!(
        path.join("tiny/reference.safetensors").is_file(),
        "{} has no tiny DINOv2 models: run scripts/setup.sh --test",
        path.display()
    );
    path
}

fn cpu() -> Dinov2Options {
    Dinov2Options {
        device: DeviceChoice::Cpu,
        batch_size: 2,
        half: false,
    }
}

fn reference(folder: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(folder.join("reference.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

#[test]
fn outputs_match_transformers_on_the_same_weights() {
    for variant in VARIANTS {
        let folder = models().join(variant);
        let model = Dinov2::load(&folder, cpu()).unwrap();
        let reference = reference(&folder);
        for size in ["518", "224x308", "280"] {
            let pixels = &reference[&format!("pixels_{size}")];
            let ours = tch::no_grad(|| model.model().forward(pixels));
            let hidden = &reference[&format!("last_hidden_state_{size}")];
            let pooled = &reference[&format!("pooled_{size}")];
            let (dh, dp) = (
                max_difference(&ours.last_hidden_state, hidden),
                max_difference(&ours.pooled, pooled),
            );
            assert!(
                dh < 1e-4 && dp < 1e-4,
                "{variant} at {size}: last hidden state differs by {dh:e}, pooled by {dp:e}"
            );
            // Not trivially equal: the outputs vary across tokens and inputs.
            assert!(hidden.std(true).double_value(&[]) > 0.1, "{variant}");
        }
    }
}

#[test]
fn embeddings_are_unit_vectors_of_the_pooled_output() {
    let folder = models().join("tiny");
    let model = Dinov2::load(&folder, cpu()).unwrap();
    assert_eq!(model.dims(), 48);
    assert!(model.describe().contains("DINOv2"), "{}", model.describe());
    let images: Vec<RgbImage> = (0..3u8)
        .map(|i| {
            RgbImage::from_fn(518, 518, |x, y| {
                image::Rgb([(x as u8) ^ i, (y as u8).wrapping_mul(3), i * 80])
            })
        })
        .collect();
    let vectors = model.embed(&images).unwrap();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        assert_eq!(v.len(), 48);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    // Batching does not change an image's vector.
    let one = model.embed(&images[1..2]).unwrap();
    let d: f32 = one[0]
        .iter()
        .zip(&vectors[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d < 1e-5, "batched and single differ by {d}");
    // The same as normalising the pooled output of the preprocessed image.
    let pixels = buybuddy_vision::dinov2::pixels(&images[0]).unsqueeze(0);
    let pooled = tch::no_grad(|| model.model().forward(&pixels).pooled).to_kind(Kind::Float);
    let norm = pooled.norm().double_value(&[]);
    let first = pooled.double_value(&[0, 0]) / norm;
    assert!((first - f64::from(vectors[0][0])).abs() < 1e-5);
    // A photo of another size is brought to 518x518 and embeds too.
    let photo = RgbImage::from_pixel(640, 360, image::Rgb([200, 40, 40]));
    assert_eq!(model.embed(&[photo]).unwrap()[0].len(), 48);
}

/// A copy of a model folder whose files a test may change.
fn copy_of(variant: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "model.safetensors"] {
        std::fs::copy(models().join(variant).join(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let path = dir.join("model.safetensors");
    let mut tensors = Tensor::read_safetensors(&path).unwrap();
    edit(&mut tensors);
    Tensor::write_safetensors(&tensors, &path).unwrap();
}

fn load_error(dir: &Path) -> String {
    format!("{:#}", Dinov2::load(dir, cpu()).unwrap_err())
}

#[test]
fn a_dinov2_prefix_is_accepted() {
    let dir = copy_of("tiny");
    rewrite_weights(dir.path(), |tensors| {
        for (name, _) in tensors.iter_mut() {
            *name = format!("dinov2.{name}");
        }
        tensors.push((
            "classifier.weight".into(),
            Tensor::zeros([10, 96], (Kind::Float, tch::Device::Cpu)),
        ));
    });
    let model = Dinov2::load(dir.path(), cpu()).unwrap();
    let original = Dinov2::load(&models().join("tiny"), cpu()).unwrap();
    let image = RgbImage::from_pixel(518, 518, image::Rgb([10, 120, 250]));
    assert_eq!(
        model.embed(std::slice::from_ref(&image)).unwrap(),
        original.embed(&[image]).unwrap()
    );
}

#[test]
fn broken_folders_are_refused_with_the_reason() {
    // A tensor missing.
    let dir = copy_of("tiny");
    rewrite_weights(dir.path(), |tensors| {
        tensors.retain(|(name, _)| name != "encoder.layer.1.mlp.fc2.weight");
    });
    let error = load_error(dir.path());
    assert!(error.contains("encoder.layer.1.mlp.fc2.weight"), "{error}");

    // A tensor of the wrong shape.
    let dir = copy_of("tiny");
    rewrite_weights(dir.path(), |tensors| {
        for (name, tensor) in tensors.iter_mut() {
            if name == "embeddings.position_embeddings" {
                *tensor = Tensor::zeros([1, 257, 48], (Kind::Float, tch::Device::Cpu));
            }
        }
    });
    let error = load_error(dir.path());
    assert!(
        error.contains("embeddings.position_embeddings") && error.contains("257"),
        "{error}"
    );

    // Another architecture's config.json.
    let dir = copy_of("tiny");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "vit", "hidden_size": 48}"#,
    )
    .unwrap();
    let error = load_error(dir.path());
    assert!(
        error.contains("\"vit\"") && error.contains("not DINOv2"),
        "{error}"
    );

    // No weights, a weights file that is not safetensors, no folder.
    let dir = copy_of("tiny");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    assert!(load_error(dir.path()).contains("no model.safetensors"));
    std::fs::write(dir.path().join("model.safetensors"), b"not tensors").unwrap();
    assert!(load_error(dir.path()).contains("model.safetensors"));
    assert!(load_error(&dir.path().join("absent")).contains("not a folder"));
}

/// A model trained here loads in transformers as a Hugging Face folder and
/// embeds as the platform does.
#[test]
fn a_trained_model_embeds_the_same_in_transformers() {
    use buybuddy_vision::train::{Base, Loss, Optimiser, Preset, Setup, Trainer};
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.data/torch/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup.sh --test",
        python.display()
    );
    let mut trainer = Trainer::new(
        &Base::Scratch(Preset::Tiny),
        Setup {
            classes: 2,
            loss: Loss::default(),
            optimiser: Optimiser::default(),
            frozen_blocks: 0,
            head_dim: 24,
            total_steps: 2,
            seed: 3,
        },
        tch::Device::Cpu,
    )
    .unwrap();
    let size = trainer.input_size();
    let pixels = Tensor::randn([4, 3, size, size], (Kind::Float, tch::Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 0, 1, 1]);
    for _ in 0..2 {
        trainer.train_step(&pixels, &labels).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("model");
    trainer.save_model(&folder).unwrap();
    let input = dir.path().join("pixels.safetensors");
    let output = dir.path().join("embeddings.safetensors");
    Tensor::write_safetensors(&[("pixels", &pixels)], &input).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/embed_trained.py");
    let run = std::process::Command::new(&python)
        .arg(&script)
        .args([&folder, &input, &output])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "embed_trained.py failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let theirs = &Tensor::read_safetensors(&output).unwrap()[0].1;
    let ours = trainer.embed(&pixels);
    assert_eq!(theirs.size(), vec![4, 24]);
    let difference = max_difference(&ours, theirs);
    assert!(difference < 1e-4, "transformers differs by {difference:e}");
}

/// A model trained here at its preset's size (112 for the tiny preset) sees
/// 518x518 frames brought to that size, as training brought them: what the
/// embed job stores for a frame is what the run validated on.
#[test]
fn a_trained_model_embeds_frames_at_its_own_size() {
    use buybuddy_vision::train::{Base, Loss, Optimiser, Preset, Setup, Trainer};
    let trainer = Trainer::new(
        &Base::Scratch(Preset::Tiny),
        Setup {
            classes: 2,
            loss: Loss::default(),
            optimiser: Optimiser::default(),
            frozen_blocks: 0,
            head_dim: 16,
            total_steps: 1,
            seed: 5,
        },
        tch::Device::Cpu,
    )
    .unwrap();
    let size = trainer.input_size();
    assert_eq!(size, 112);
    let dir = tempfile::tempdir().unwrap();
    trainer.save_model(dir.path()).unwrap();
    let model = Dinov2::load(dir.path(), cpu()).unwrap();
    let frame = RgbImage::from_fn(518, 518, |x, y| {
        image::Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x / 7 + y / 5) % 256) as u8,
        ])
    });
    let ours = Tensor::from_slice(&model.embed(std::slice::from_ref(&frame)).unwrap()[0]);
    let small = image::imageops::resize(&frame, 112, 112, image::imageops::FilterType::Triangle);
    let trained = trainer
        .embed(&buybuddy_vision::dinov2::pixels(&small).unsqueeze(0))
        .get(0);
    let difference = max_difference(&ours, &trained);
    assert!(
        difference < 1e-5,
        "the embed path differs from training by {difference:e}"
    );
}
