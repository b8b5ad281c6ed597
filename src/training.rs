//! A training run's settings and the parts of its loop that need no database:
//! the settings as people give them (checked, with defaults that work), the
//! frames in memory at the model's input size, the batches (P products x K
//! frames, augmented from seeds derived from the step, so a resumed run draws
//! the same), and the validation figures.

use buybuddy_dataset::{
    augment::{self, Augment, Rng},
    retrieval::{self, Sample, Scores},
    sampler::PkSampler,
};
use image::{GrayImage, RgbImage, imageops::FilterType};
use serde::{Deserialize, Serialize};

/// How a run trains, as stored on the run and shown on its page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// `scratch:tiny`, `scratch:small`, `model:<registry id>` or a DINOv2
    /// folder on the worker (`folder:/models/dinov2-small`).
    pub base: String,
    pub epochs: usize,
    /// Products per batch.
    pub p: usize,
    /// Frames per product in a batch.
    pub k: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    /// Transformer layers (from the input) kept as they are; -1 freezes the
    /// whole backbone and trains the head only.
    pub frozen_blocks: i64,
    /// `arcface` (sub-center ArcFace), `supcon` or `triplet`.
    pub loss: String,
    /// The embedding's dimension after a linear head; 0 for none.
    pub head_dim: i64,
    /// `none`, `light` or `strong`.
    pub augment: String,
    pub seed: u64,
    /// A training point every this many steps.
    pub log_every: usize,
    /// Frames this close to a query in its own video are left out of its
    /// gallery when validating.
    pub window: u32,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            base: "scratch:tiny".to_owned(),
            epochs: 8,
            p: 8,
            k: 4,
            lr: 5e-4,
            warmup_steps: 10,
            weight_decay: 0.05,
            frozen_blocks: 0,
            loss: "arcface".to_owned(),
            head_dim: 128,
            augment: "light".to_owned(),
            seed: 1,
            log_every: 5,
            window: 1,
        }
    }
}

pub const LOSSES: &[(&str, &str)] = &[
    (
        "arcface",
        "sub-center ArcFace (margin 0.3, scale 30, 3 centres)",
    ),
    ("supcon", "SupCon (temperature 0.1)"),
    ("triplet", "triplet, batch hard (margin 0.2)"),
];

pub const AUGMENTS: &[(&str, &str)] = &[
    ("none", "none"),
    ("light", "light: flips, small turns, light and colour"),
    (
        "strong",
        "strong: the dataset defaults without background swaps",
    ),
];

/// Where a run's backbone comes from, read from [`RunConfig::base`].
#[derive(Debug, Clone, PartialEq)]
pub enum BaseChoice {
    Scratch(String),
    Model(i32),
    Folder(std::path::PathBuf),
}

impl RunConfig {
    /// Checks the settings; each message names the field.
    pub fn check(&self) -> Result<BaseChoice, (&'static str, String)> {
        let base = parse_base(&self.base).map_err(|m| ("base", m))?;
        let bad = |field, message: &str| Err((field, message.to_owned()));
        if self.epochs == 0 || self.epochs > 1000 {
            return bad("epochs", "Between 1 and 1000 epochs.");
        }
        if self.p < 2 || self.p > 256 {
            return bad("p", "P (products per batch) is between 2 and 256.");
        }
        if self.k < 2 || self.k > 64 {
            return bad("k", "K (frames per product) is between 2 and 64.");
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr < 1.0) {
            return bad("lr", "The learning rate is above 0 and below 1.");
        }
        if !(self.weight_decay.is_finite() && (0.0..1.0).contains(&self.weight_decay)) {
            return bad("weight_decay", "Weight decay is from 0 to below 1.");
        }
        if self.frozen_blocks < -1 {
            return bad(
                "frozen_blocks",
                "Frozen blocks is -1 (the whole backbone) or more.",
            );
        }
        if !LOSSES.iter().any(|(name, _)| *name == self.loss) {
            return bad("loss", "The loss is arcface, supcon or triplet.");
        }
        if !(0..=2048).contains(&self.head_dim) {
            return bad("head_dim", "The head's dimension is 0 (no head) to 2048.");
        }
        if !AUGMENTS.iter().any(|(name, _)| *name == self.augment) {
            return bad("augment", "Augmentation is none, light or strong.");
        }
        if self.log_every == 0 {
            return bad("log_every", "Log at least every 1 step.");
        }
        Ok(base)
    }

    #[cfg(feature = "sam3")]
    pub fn loss(&self) -> buybuddy_vision::train::Loss {
        use buybuddy_vision::train::Loss;
        match self.loss.as_str() {
            "supcon" => Loss::Supcon { temperature: 0.1 },
            "triplet" => Loss::Triplet { margin: 0.2 },
            _ => Loss::default(),
        }
    }

    /// What the trainer is built with, for `classes` training products and
    /// `total_steps` steps.
    #[cfg(feature = "sam3")]
    pub fn setup(&self, classes: usize, total_steps: usize) -> buybuddy_vision::train::Setup {
        buybuddy_vision::train::Setup {
            classes: classes as i64,
            loss: self.loss(),
            optimiser: self.optimiser(),
            frozen_blocks: self.frozen_blocks,
            head_dim: self.head_dim,
            total_steps,
            seed: self.seed,
        }
    }

    #[cfg(feature = "sam3")]
    pub fn optimiser(&self) -> buybuddy_vision::train::Optimiser {
        buybuddy_vision::train::Optimiser {
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            weight_decay: self.weight_decay,
            ..Default::default()
        }
    }

    /// The per-draw augmentation of training frames, if any.
    pub fn augmentation(&self) -> Option<Augment> {
        match self.augment.as_str() {
            "light" => Some(Augment {
                blur: augment::Ranged {
                    p: 0.0,
                    ..Augment::default().blur
                },
                noise: augment::Ranged {
                    p: 0.0,
                    ..Augment::default().noise
                },
                jpeg: augment::Ranged {
                    p: 0.0,
                    ..Augment::default().jpeg
                },
                background: 0.0,
                ..Augment::default()
            }),
            "strong" => Some(Augment {
                background: 0.0,
                ..Augment::default()
            }),
            _ => None,
        }
    }
}

fn parse_base(base: &str) -> Result<BaseChoice, String> {
    let base = base.trim();
    match base.split_once(':') {
        Some(("scratch", preset)) if matches!(preset, "tiny" | "small" | "vit_s") => {
            Ok(BaseChoice::Scratch(preset.to_owned()))
        }
        Some(("model", id)) => id
            .parse()
            .map(BaseChoice::Model)
            .map_err(|_| format!("{id:?} is not a model number.")),
        Some(("folder", path)) if !path.is_empty() => {
            Ok(BaseChoice::Folder(std::path::PathBuf::from(path)))
        }
        _ => Err(format!(
            "{base:?} is not a base model: scratch:tiny, scratch:small, scratch:vit_s, \
             model:<number> or folder:<path of a DINOv2 folder on the worker>."
        )),
    }
}

/// Frames held for a run: brought to the input size once.
#[derive(Debug, Default)]
pub struct Examples {
    pub images: Vec<RgbImage>,
    pub labels: Vec<u32>,
    pub samples: Vec<Sample>,
}

impl Examples {
    pub fn push(&mut self, image: &RgbImage, size: u32, sample: Sample) {
        let image = if image.dimensions() == (size, size) {
            image.clone()
        } else {
            image::imageops::resize(image, size, size, FilterType::Triangle)
        };
        self.images.push(image);
        self.labels.push(sample.label);
        self.samples.push(sample);
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// Distinct labels.
    pub fn classes(&self) -> usize {
        let mut labels = self.labels.clone();
        labels.sort_unstable();
        labels.dedup();
        labels.len()
    }
}

/// The seed of one draw: the run's seed, the step and the slot in the batch.
fn draw_seed(seed: u64, step: usize, slot: usize) -> u64 {
    let mut rng = Rng::new(seed ^ ((step as u64) << 20) ^ slot as u64);
    rng.next_u64()
}

/// The images of a batch, augmented for `step`.
pub fn batch_images(
    examples: &Examples,
    indices: &[usize],
    augmentation: Option<&Augment>,
    seed: u64,
    step: usize,
) -> Vec<RgbImage> {
    indices
        .iter()
        .enumerate()
        .map(|(slot, &i)| {
            let image = &examples.images[i];
            match augmentation {
                Some(config) => {
                    let (w, h) = image.dimensions();
                    let mask = GrayImage::from_pixel(w, h, image::Luma([255]));
                    augment::augment(image, &mask, config, draw_seed(seed, step, slot), &[]).0
                }
                None => image.clone(),
            }
        })
        .collect()
}

/// A run's batches, epoch by epoch: the sampler and the generator state at
/// the start of the current epoch (what a checkpoint keeps).
#[derive(Debug, Clone)]
pub struct Schedule {
    pub sampler: PkSampler,
    pub epochs: usize,
}

impl Schedule {
    pub fn steps_per_epoch(&self) -> usize {
        self.sampler.batches_per_epoch()
    }

    pub fn total_steps(&self) -> usize {
        self.steps_per_epoch() * self.epochs
    }

    /// The generator state at the start of `epoch`, from the run's seed.
    pub fn epoch_state(&self, seed: u64, epoch: usize) -> u64 {
        let mut rng = Rng::new(seed);
        for _ in 0..epoch {
            self.sampler.epoch(&mut rng);
        }
        rng.state()
    }
}

/// The validation figures of vectors of `examples`.
pub fn score(vectors: &[Vec<f32>], examples: &Examples, window: u32) -> Scores {
    retrieval::evaluate(vectors, &examples.samples, window)
}

/// The model-independent part of a run's plan: P x K refusals name the
/// product and the shape.
pub fn schedule(train: &Examples, config: &RunConfig) -> Result<Schedule, String> {
    let sampler = PkSampler::new(&train.labels, config.p, config.k).map_err(|e| e.to_string())?;
    Ok(Schedule {
        sampler,
        epochs: config.epochs,
    })
}

/// The model's input for images of one size: a [B, 3, S, S] tensor.
#[cfg(feature = "sam3")]
pub fn pixels_of(images: &[RgbImage]) -> buybuddy_vision::tch::Tensor {
    buybuddy_vision::tch::Tensor::stack(
        &images
            .iter()
            .map(buybuddy_vision::dinov2::pixels)
            .collect::<Vec<_>>(),
        0,
    )
}

/// One optimisation step on the batch `indices` of `examples`. A failure
/// inside libtorch (out of memory) comes back as a message naming the batch.
#[cfg(feature = "sam3")]
pub fn step(
    trainer: &mut buybuddy_vision::train::Trainer,
    examples: &Examples,
    indices: &[usize],
    augmentation: Option<&Augment>,
    seed: u64,
) -> anyhow::Result<buybuddy_vision::train::StepStats> {
    let at = trainer.step;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let images = batch_images(examples, indices, augmentation, seed, at);
        let labels: Vec<i64> = indices
            .iter()
            .map(|&i| i64::from(examples.labels[i]))
            .collect();
        trainer.train_step(
            &pixels_of(&images),
            &buybuddy_vision::tch::Tensor::from_slice(&labels),
        )
    }));
    outcome.unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        if text.to_lowercase().contains("out of memory") {
            anyhow::bail!(
                "out of memory with a batch of {} images; lower P or K (products or frames per \
                 batch), or freeze more blocks",
                indices.len()
            )
        }
        anyhow::bail!("training failed inside libtorch: {text}")
    })
}

/// Unit embeddings of every example, in order.
#[cfg(feature = "sam3")]
pub fn embed_all(
    trainer: &buybuddy_vision::train::Trainer,
    examples: &Examples,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut vectors = Vec::with_capacity(examples.len());
    for chunk in examples.images.chunks(32) {
        let unit = trainer
            .embed(&pixels_of(chunk))
            .to_device(buybuddy_vision::tch::Device::Cpu);
        vectors.extend(Vec::<Vec<f32>>::try_from(&unit)?);
    }
    Ok(vectors)
}

/// The validation figures of the model as it is.
#[cfg(feature = "sam3")]
pub fn scores(
    trainer: &buybuddy_vision::train::Trainer,
    examples: &Examples,
    window: u32,
) -> anyhow::Result<Scores> {
    Ok(score(&embed_all(trainer, examples)?, examples, window))
}

/// The classic descriptor's figures on the same frames.
pub fn classic_scores(examples: &Examples, window: u32) -> anyhow::Result<Scores> {
    use buybuddy_worker::embed::{ClassicEmbedder, Embedder, Subject};
    let subjects: Vec<Subject<'_>> = examples
        .images
        .iter()
        .map(|image| Subject { image, mask: None })
        .collect();
    let vectors = ClassicEmbedder::default().embed(&subjects)?;
    Ok(score(&vectors, examples, window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_bad_fields_are_named() {
        assert_eq!(
            RunConfig::default().check(),
            Ok(BaseChoice::Scratch("tiny".to_owned()))
        );
        let field = |config: RunConfig| config.check().unwrap_err().0;
        assert_eq!(
            field(RunConfig {
                lr: 0.0,
                ..Default::default()
            }),
            "lr"
        );
        assert_eq!(
            field(RunConfig {
                lr: f64::NAN,
                ..Default::default()
            }),
            "lr"
        );
        assert_eq!(
            field(RunConfig {
                base: "huggingface".to_owned(),
                ..Default::default()
            }),
            "base"
        );
        assert_eq!(
            field(RunConfig {
                k: 1,
                ..Default::default()
            }),
            "k"
        );
        assert_eq!(
            RunConfig {
                base: "model:12".to_owned(),
                ..Default::default()
            }
            .check(),
            Ok(BaseChoice::Model(12))
        );
    }

    #[test]
    fn the_epoch_state_replays_the_sampler() {
        let mut train = Examples::default();
        for label in 0..4u32 {
            for position in 0..5 {
                train.push(
                    &RgbImage::new(8, 8),
                    8,
                    Sample {
                        label,
                        video: label,
                        position,
                    },
                );
            }
        }
        let schedule = schedule(&train, &RunConfig::default()).unwrap();
        let mut rng = Rng::new(3);
        let first = schedule.sampler.epoch(&mut rng);
        let second = schedule.sampler.epoch(&mut rng);
        assert_eq!(schedule.epoch_state(3, 2), rng.state());
        let mut replay = Rng::new(schedule.epoch_state(3, 1));
        assert_eq!(schedule.sampler.epoch(&mut replay), second);
        assert_ne!(first, second);
    }
}
