//! Metric learning on product frames with the DINOv2 modules of
//! [`crate::dinov2`]: the backbone (a Hugging Face folder, or a small preset
//! from scratch), an optional linear head to the embedding dimension, a loss
//! that pulls one product's frames together (sub-center ArcFace by default,
//! SupCon or batch-hard triplet), AdamW with linear warm-up and cosine decay,
//! and checkpoints that hold everything a run needs to continue exactly where
//! it stopped (weights, the loss's class centres, the optimiser's moments and
//! the step).
//!
//! The model a run leaves is a Hugging Face DINOv2 folder (`config.json`,
//! `model.safetensors` with the checkpoint's key names); the head, when there
//! is one, is `head.weight` / `head.bias` and `projection_dim` in the config,
//! which [`crate::Dinov2`] applies and `transformers` ignores.

use std::{collections::HashMap, path::Path};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};

use crate::dinov2::{Dinov2Config, Dinov2Model};

/// Which loss pulls a product's frames together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Loss {
    /// Additive angular margin against learned class centres, several per
    /// class (tolerates frames that do not look like the rest).
    SubCenterArcface {
        margin: f64,
        scale: f64,
        sub_centers: i64,
    },
    /// Supervised contrastive: every other frame of the product in the batch
    /// is a positive.
    Supcon { temperature: f64 },
    /// Batch-hard triplet on cosine distance.
    Triplet { margin: f64 },
}

impl Default for Loss {
    fn default() -> Self {
        Self::SubCenterArcface {
            margin: 0.3,
            scale: 30.0,
            sub_centers: 3,
        }
    }
}

impl Loss {
    pub fn name(&self) -> &'static str {
        match self {
            Self::SubCenterArcface { .. } => "sub-center ArcFace",
            Self::Supcon { .. } => "SupCon",
            Self::Triplet { .. } => "triplet (batch hard)",
        }
    }
}

/// The optimiser and schedule of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Optimiser {
    /// Peak learning rate, reached after the warm-up.
    pub lr: f64,
    /// Steps of linear warm-up from 0.
    pub warmup_steps: usize,
    /// Decoupled weight decay (AdamW) of matrices; biases, norms, layer
    /// scales and tokens are not decayed.
    pub weight_decay: f64,
    /// Gradients are scaled down to this global norm when above it (0: off).
    pub clip_norm: f64,
    /// The learning rate of the head and the loss's centres, as a multiple of
    /// `lr` (they start from nothing; the backbone does not).
    pub head_lr_scale: f64,
}

impl Default for Optimiser {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            warmup_steps: 20,
            weight_decay: 0.05,
            clip_norm: 1.0,
            head_lr_scale: 10.0,
        }
    }
}

const BETAS: (f64, f64) = (0.9, 0.999);
const EPS: f64 = 1e-8;

impl Optimiser {
    /// The learning rate at `step` (from 0) of `total`: linear warm-up, then
    /// cosine decay to zero at the last step.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
        let t = ((step - self.warmup_steps) as f64 / span).min(1.0);
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Small backbones for training from scratch (no pretrained folder needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// 112x112 input (8x8 patches of 14), 4 layers of 96: trains on a CPU
    /// in minutes.
    Tiny,
    /// 224x224 input, 6 layers of 192.
    Small,
    /// ViT-S/14 at 518x518 (DINOv2-small's shape), random weights: the
    /// benchmark's full-size model.
    VitS,
}

impl Preset {
    pub fn config(self) -> Dinov2Config {
        let (hidden, layers, heads, image) = match self {
            Self::Tiny => (96, 4, 3, 112),
            Self::Small => (192, 6, 3, 224),
            Self::VitS => (384, 12, 6, 518),
        };
        Dinov2Config {
            model_type: "dinov2".to_owned(),
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            mlp_ratio: 4.0,
            hidden_act: "gelu".to_owned(),
            layer_norm_eps: 1e-6,
            image_size: image,
            patch_size: 14,
            num_channels: 3,
            qkv_bias: true,
            layerscale_value: 1.0,
            use_swiglu_ffn: false,
            num_register_tokens: 0,
            projection_dim: None,
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "tiny" => Some(Self::Tiny),
            "small" => Some(Self::Small),
            "vit_s" => Some(Self::VitS),
            _ => None,
        }
    }
}

/// Where the backbone's weights come from.
#[derive(Debug, Clone)]
pub enum Base {
    /// A Hugging Face DINOv2 folder (or a model this platform trained).
    Folder(std::path::PathBuf),
    /// Random weights of a preset, drawn from the run's seed.
    Scratch(Preset),
}

/// What a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// Products in the training split (the loss's classes).
    pub classes: i64,
    pub loss: Loss,
    pub optimiser: Optimiser,
    /// The first this many transformer layers (and the patch and position
    /// embeddings) are not trained; -1 freezes the whole backbone.
    pub frozen_blocks: i64,
    /// A linear head to this dimension; 0 keeps the backbone's width.
    pub head_dim: i64,
    pub total_steps: usize,
    pub seed: u64,
}

/// One trainable tensor with its AdamW moments.
struct Param {
    name: String,
    tensor: Tensor,
    m: Tensor,
    v: Tensor,
    decay: bool,
    lr_scale: f64,
}

/// What one step reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub loss: f64,
    pub lr: f64,
}

/// The model being trained, its loss and optimiser state.
pub struct Trainer {
    vs: nn::VarStore,
    loss_vs: nn::VarStore,
    backbone: Dinov2Model,
    head: Option<nn::Linear>,
    centres: Option<Tensor>,
    params: Vec<Param>,
    config: Dinov2Config,
    setup: Setup,
    /// Steps taken (the next step's index).
    pub step: usize,
    device: Device,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Trainer({}, step {} of {})",
            self.config.size_name(),
            self.step,
            self.setup.total_steps
        )
    }
}

impl Trainer {
    /// Builds the model from `base`, the head and the loss from the seed.
    pub fn new(base: &Base, setup: Setup, device: Device) -> anyhow::Result<Self> {
        ensure!(
            setup.classes >= 2,
            "training needs at least 2 products, this has {}",
            setup.classes
        );
        let lr = setup.optimiser.lr;
        ensure!(
            lr.is_finite() && lr > 0.0,
            "the learning rate must be above 0 (it is {lr})"
        );
        ensure!(setup.total_steps > 0, "a run needs at least one step");
        tch::manual_seed(setup.seed as i64);
        let (mut config, weights) = match base {
            Base::Folder(folder) => {
                let config = Dinov2Config::read(&folder.join("config.json"))?;
                (config, Some(crate::dinov2::weight_files(folder)?))
            }
            Base::Scratch(preset) => (preset.config(), None),
        };
        let base_head = config.projection_dim.take();
        let vs = nn::VarStore::new(Device::Cpu);
        let backbone = Dinov2Model::new(&vs.root(), &config);
        let head_dim = if setup.head_dim > 0 {
            Some(setup.head_dim)
        } else {
            base_head
        };
        let head = head_dim.map(|dim| {
            nn::linear(
                vs.root() / "head",
                config.hidden_size,
                dim,
                Default::default(),
            )
        });
        if let Some(files) = &weights {
            crate::dinov2::load_weights(&vs, files, head.is_some() && base_head == head_dim)?;
        }
        config.projection_dim = head_dim;
        let dims = head_dim.unwrap_or(config.hidden_size);
        let loss_vs = nn::VarStore::new(Device::Cpu);
        let centres = match setup.loss {
            Loss::SubCenterArcface { sub_centers, .. } => {
                ensure!(
                    sub_centers >= 1,
                    "sub-center ArcFace needs at least 1 centre per class"
                );
                Some(loss_vs.root().var(
                    "centres",
                    &[setup.classes * sub_centers, dims],
                    nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                ))
            }
            _ => None,
        };
        let mut trainer = Self {
            vs,
            loss_vs,
            backbone,
            head,
            centres,
            params: Vec::new(),
            config,
            setup,
            step: 0,
            device,
        };
        trainer.vs.set_device(device);
        trainer.loss_vs.set_device(device);
        trainer.collect_params();
        Ok(trainer)
    }

    /// Marks what is frozen and lists what is trained, in a stable order.
    fn collect_params(&mut self) {
        let layers = self.config.num_hidden_layers;
        let frozen = match self.setup.frozen_blocks {
            n if n < 0 => layers + 1,
            n => n.min(layers + 1),
        };
        let frozen_name = |name: &str| -> bool {
            if name.starts_with("head.") {
                return false;
            }
            if frozen > layers {
                return true;
            }
            if name.starts_with("embeddings.") {
                return frozen > 0;
            }
            if let Some(rest) = name.strip_prefix("encoder.layer.") {
                let index: i64 = rest
                    .split('.')
                    .next()
                    .and_then(|i| i.parse().ok())
                    .unwrap_or(i64::MAX);
                return index < frozen;
            }
            false
        };
        let mut named: Vec<(String, Tensor, f64)> = Vec::new();
        let mut backbone: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        backbone.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, tensor) in backbone {
            // Only masked-image pretraining uses the mask token.
            let unused = name == "embeddings.mask_token";
            if frozen_name(&name) || unused {
                let _ = tensor.set_requires_grad(false);
                continue;
            }
            let scale = if name.starts_with("head.") {
                self.setup.optimiser.head_lr_scale
            } else {
                1.0
            };
            named.push((name, tensor, scale));
        }
        let mut loss: Vec<(String, Tensor)> = self.loss_vs.variables().into_iter().collect();
        loss.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, tensor) in loss {
            named.push((
                format!("loss.{name}"),
                tensor,
                self.setup.optimiser.head_lr_scale,
            ));
        }
        self.params = named
            .into_iter()
            .map(|(name, tensor, lr_scale)| {
                let decay = tensor.dim() >= 2
                    && !name.starts_with("embeddings.")
                    && !name.starts_with("loss.");
                Param {
                    m: tensor.zeros_like().detach(),
                    v: tensor.zeros_like().detach(),
                    name,
                    tensor,
                    decay,
                    lr_scale,
                }
            })
            .collect();
    }

    pub fn config(&self) -> &Dinov2Config {
        &self.config
    }

    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The side of the square input images.
    pub fn input_size(&self) -> i64 {
        self.config.image_size
    }

    /// The embedding's dimension.
    pub fn dims(&self) -> i64 {
        self.config
            .projection_dim
            .unwrap_or(self.config.hidden_size)
    }

    /// Trainable values (backbone, head and loss).
    pub fn trainable_values(&self) -> i64 {
        self.params.iter().map(|p| p.tensor.numel() as i64).sum()
    }

    fn forward(&self, pixels: &Tensor) -> Tensor {
        let pooled = self.backbone.forward(pixels).pooled;
        match &self.head {
            Some(head) => pooled.apply(head),
            None => pooled,
        }
    }

    /// Unit embeddings of normalised pixels [B, 3, S, S], without gradients.
    pub fn embed(&self, pixels: &Tensor) -> Tensor {
        tch::no_grad(|| normalise(&self.forward(&pixels.to_device(self.device))))
    }

    fn loss(&self, embeddings: &Tensor, labels: &Tensor) -> Tensor {
        match self.setup.loss {
            Loss::SubCenterArcface {
                margin,
                scale,
                sub_centers,
            } => {
                let centres = self.centres.as_ref().expect("built with the loss");
                sub_center_arcface(embeddings, labels, centres, sub_centers, margin, scale)
            }
            Loss::Supcon { temperature } => supcon(embeddings, labels, temperature),
            Loss::Triplet { margin } => batch_hard_triplet(embeddings, labels, margin),
        }
    }

    /// One optimisation step on a batch of normalised pixels and their class
    /// indices (0..classes). A loss that is not finite stops the run.
    pub fn train_step(&mut self, pixels: &Tensor, labels: &Tensor) -> anyhow::Result<StepStats> {
        let lr = self
            .setup
            .optimiser
            .lr_at(self.step, self.setup.total_steps);
        let pixels = pixels.to_device(self.device);
        let labels = labels.to_device(self.device);
        let loss = self.loss(&self.forward(&pixels), &labels);
        let value = loss.double_value(&[]);
        if !value.is_finite() {
            bail!(
                "the loss became {value} at step {} (learning rate {lr:.3e}); lower the learning \
                 rate or lengthen the warm-up",
                self.step + 1
            );
        }
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
        loss.backward();
        self.update(lr);
        self.step += 1;
        Ok(StepStats { loss: value, lr })
    }

    /// AdamW, with the global gradient norm clipped first.
    fn update(&mut self, lr: f64) {
        let optimiser = self.setup.optimiser;
        let t = (self.step + 1) as i32;
        let (b1, b2) = BETAS;
        let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        tch::no_grad(|| {
            let grads: Vec<Option<Tensor>> = self
                .params
                .iter()
                .map(|p| {
                    let g = p.tensor.grad();
                    g.defined().then_some(g)
                })
                .collect();
            let mut clip = 1.0;
            if optimiser.clip_norm > 0.0 {
                let squares: Vec<Tensor> = grads
                    .iter()
                    .flatten()
                    .map(|g| g.pow_tensor_scalar(2).sum(Kind::Float))
                    .collect();
                if !squares.is_empty() {
                    let norm = Tensor::stack(&squares, 0)
                        .sum(Kind::Float)
                        .sqrt()
                        .double_value(&[]);
                    if norm > optimiser.clip_norm {
                        clip = optimiser.clip_norm / (norm + 1e-6);
                    }
                }
            }
            for (p, g) in self.params.iter_mut().zip(grads) {
                let Some(mut g) = g else { continue };
                if clip != 1.0 {
                    g *= clip;
                }
                let step_lr = lr * p.lr_scale;
                let _ = p.m.lerp_(&g, 1.0 - b1);
                let _ = p.v.g_mul_scalar_(b2);
                let _ = p.v.g_add_(&(&g * &g * (1.0 - b2)));
                if p.decay && optimiser.weight_decay > 0.0 {
                    let _ = p
                        .tensor
                        .g_mul_scalar_(1.0 - step_lr * optimiser.weight_decay);
                }
                let denom = (&p.v / bc2).sqrt() + EPS;
                let update = &p.m / denom * (step_lr / bc1);
                let _ = p.tensor.g_sub_(&update);
            }
        });
    }

    /// Everything a run needs to continue: the model's and the loss's
    /// variables and the optimiser's moments, as one safetensors file (the
    /// step is the caller's to keep beside it).
    pub fn save_checkpoint(&self, path: &Path) -> anyhow::Result<()> {
        let mut tensors: Vec<(String, Tensor)> = Vec::new();
        let mut model: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        model.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, tensor) in model {
            tensors.push((format!("model.{name}"), tensor.to_device(Device::Cpu)));
        }
        for (name, tensor) in self.loss_vs.variables() {
            tensors.push((format!("loss.{name}"), tensor.to_device(Device::Cpu)));
        }
        for p in &self.params {
            tensors.push((format!("adam_m.{}", p.name), p.m.to_device(Device::Cpu)));
            tensors.push((format!("adam_v.{}", p.name), p.v.to_device(Device::Cpu)));
        }
        Tensor::write_safetensors(&tensors, path)
            .with_context(|| format!("writing the checkpoint {}", path.display()))
    }

    /// Restores a checkpoint written by [`Self::save_checkpoint`] of the same
    /// setup, and the step it was taken at.
    pub fn load_checkpoint(&mut self, path: &Path, step: usize) -> anyhow::Result<()> {
        let saved: HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("reading the checkpoint {}", path.display()))?
            .into_iter()
            .collect();
        let copy = |name: String, target: &mut Tensor| -> anyhow::Result<()> {
            let source = saved
                .get(&name)
                .with_context(|| format!("the checkpoint has no tensor {name:?}"))?;
            ensure!(
                source.size() == target.size(),
                "tensor {name:?} of the checkpoint has shape {:?}, the run's model {:?}",
                source.size(),
                target.size()
            );
            tch::no_grad(|| target.copy_(source));
            Ok(())
        };
        for (name, mut tensor) in self.vs.variables() {
            copy(format!("model.{name}"), &mut tensor)?;
        }
        for (name, mut tensor) in self.loss_vs.variables() {
            copy(format!("loss.{name}"), &mut tensor)?;
        }
        for p in &mut self.params {
            copy(format!("adam_m.{}", p.name), &mut p.m)?;
            copy(format!("adam_v.{}", p.name), &mut p.v)?;
        }
        self.step = step;
        Ok(())
    }

    /// The trained model as a Hugging Face DINOv2 folder.
    pub fn save_model(&self, folder: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let mut config = serde_json::to_value(&self.config)?;
        config["architectures"] = serde_json::json!(["Dinov2Model"]);
        std::fs::write(
            folder.join("config.json"),
            serde_json::to_string_pretty(&config)?,
        )?;
        let mut tensors: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.to_device(Device::Cpu).contiguous()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Tensor::write_safetensors(&tensors, folder.join("model.safetensors"))
            .with_context(|| format!("writing {}", folder.display()))
    }
}

/// Rows scaled to unit length.
pub fn normalise(xs: &Tensor) -> Tensor {
    let norms = xs
        .norm_scalaropt_dim(2.0, [-1].as_slice(), true)
        .clamp_min(1e-12);
    xs / norms
}

fn sub_center_arcface(
    embeddings: &Tensor,
    labels: &Tensor,
    centres: &Tensor,
    sub_centers: i64,
    margin: f64,
    scale: f64,
) -> Tensor {
    let batch = embeddings.size()[0];
    let cos = normalise(embeddings)
        .matmul(&normalise(centres).tr())
        .view([batch, -1, sub_centers])
        .amax([2].as_slice(), false)
        .clamp(-1.0 + 1e-7, 1.0 - 1e-7);
    let index = labels.unsqueeze(1);
    let target = cos.gather(1, &index, false);
    let with_margin = (target.acos() + margin)
        .clamp_max(std::f64::consts::PI)
        .cos();
    let logits = cos.scatter(1, &index, &with_margin) * scale;
    logits.cross_entropy_for_logits(labels)
}

fn supcon(embeddings: &Tensor, labels: &Tensor, temperature: f64) -> Tensor {
    let z = normalise(embeddings);
    let batch = z.size()[0];
    let own = Tensor::eye(batch, (Kind::Bool, z.device()));
    let logits = (z.matmul(&z.tr()) / temperature).masked_fill(&own, f64::NEG_INFINITY);
    let log_prob = logits.log_softmax(1, Kind::Float);
    let positive = labels
        .unsqueeze(1)
        .eq_tensor(&labels.unsqueeze(0))
        .logical_and(&own.logical_not());
    let counts = positive.sum_dim_intlist([1].as_slice(), false, Kind::Float);
    let summed = log_prob
        .masked_fill(&positive.logical_not(), 0.0)
        .sum_dim_intlist([1].as_slice(), false, Kind::Float);
    -(summed / counts.clamp_min(1.0)).mean(Kind::Float)
}

fn batch_hard_triplet(embeddings: &Tensor, labels: &Tensor, margin: f64) -> Tensor {
    let z = normalise(embeddings);
    let batch = z.size()[0];
    let distance = -z.matmul(&z.tr()) + 1.0;
    let own = Tensor::eye(batch, (Kind::Bool, z.device()));
    let same = labels.unsqueeze(1).eq_tensor(&labels.unsqueeze(0));
    let positive = same.logical_and(&own.logical_not());
    let hardest_positive = distance
        .masked_fill(&positive.logical_not(), -1.0)
        .amax([1].as_slice(), false);
    let hardest_negative = distance.masked_fill(&same, 3.0).amin([1].as_slice(), false);
    (hardest_positive - hardest_negative + margin)
        .relu()
        .mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(loss: Loss, total_steps: usize) -> Setup {
        Setup {
            classes: 4,
            loss,
            optimiser: Optimiser {
                lr: 1e-3,
                warmup_steps: 2,
                ..Default::default()
            },
            frozen_blocks: 0,
            head_dim: 16,
            total_steps,
            seed: 5,
        }
    }

    /// A fixed batch: 4 products x 2 frames, each product its own pattern.
    fn batch() -> (Tensor, Tensor) {
        let size = Preset::Tiny.config().image_size;
        let base = Tensor::arange(3 * size * size, (Kind::Float, Device::Cpu))
            .view([3, size, size])
            / (size * size) as f64;
        let images: Vec<Tensor> = (0..8)
            .map(|i| {
                let product = (i / 2) as f64;
                (&base * (product + 1.0) * 3.0).sin() + 0.05 * (i % 2) as f64
            })
            .collect();
        (
            Tensor::stack(&images, 0),
            Tensor::from_slice(&[0i64, 0, 1, 1, 2, 2, 3, 3]),
        )
    }

    fn trainer(loss: Loss, total: usize) -> Trainer {
        Trainer::new(
            &Base::Scratch(Preset::Tiny),
            setup(loss, total),
            Device::Cpu,
        )
        .unwrap()
    }

    fn train(trainer: &mut Trainer, steps: usize) -> Vec<f64> {
        let (pixels, labels) = batch();
        (0..steps)
            .map(|_| trainer.train_step(&pixels, &labels).unwrap().loss)
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_curve_and_a_resumed_run_continues_it() {
        let mut whole = trainer(Loss::default(), 6);
        let straight = train(&mut whole, 6);
        assert!(
            straight[5] < straight[0],
            "the loss does not fall: {straight:?}"
        );

        let again = train(&mut trainer(Loss::default(), 6), 6);
        assert_eq!(again, straight, "two runs with one seed differ");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let mut first = trainer(Loss::default(), 6);
        let mut resumed = train(&mut first, 3);
        first.save_checkpoint(&path).unwrap();
        drop(first);
        // A new process: another seed's random weights, then the checkpoint.
        let mut other = Trainer::new(
            &Base::Scratch(Preset::Tiny),
            Setup {
                seed: 77,
                ..setup(Loss::default(), 6)
            },
            Device::Cpu,
        )
        .unwrap();
        other.load_checkpoint(&path, 3).unwrap();
        resumed.extend(train(&mut other, 3));
        assert_eq!(resumed, straight, "the resumed run left the curve");
    }

    #[test]
    fn every_loss_pulls_a_products_frames_together() {
        for loss in [
            Loss::default(),
            Loss::Supcon { temperature: 0.1 },
            Loss::Triplet { margin: 0.2 },
        ] {
            let mut t = trainer(loss, 12);
            let curve = train(&mut t, 12);
            assert!(curve.iter().all(|l| l.is_finite()), "{loss:?}: {curve:?}");
            assert!(curve[11] < curve[0], "{loss:?} does not fall: {curve:?}");
        }
    }

    #[test]
    fn frozen_blocks_keep_their_weights() {
        let mut t = Trainer::new(
            &Base::Scratch(Preset::Tiny),
            Setup {
                frozen_blocks: 2,
                ..setup(Loss::default(), 3)
            },
            Device::Cpu,
        )
        .unwrap();
        let variables = t.vs.variables();
        let frozen = variables["encoder.layer.1.mlp.fc1.weight"].copy();
        let trained = variables["encoder.layer.2.mlp.fc1.weight"].copy();
        let patches = variables["embeddings.patch_embeddings.projection.weight"].copy();
        train(&mut t, 3);
        let after = t.vs.variables();
        assert!(after["encoder.layer.1.mlp.fc1.weight"].equal(&frozen));
        assert!(after["embeddings.patch_embeddings.projection.weight"].equal(&patches));
        assert!(!after["encoder.layer.2.mlp.fc1.weight"].equal(&trained));
    }

    #[test]
    fn the_saved_model_embeds_as_the_trainer_does() {
        let mut t = trainer(Loss::default(), 4);
        train(&mut t, 4);
        let dir = tempfile::tempdir().unwrap();
        t.save_model(dir.path()).unwrap();
        let loaded = crate::Dinov2::load(
            dir.path(),
            crate::Dinov2Options {
                device: crate::DeviceChoice::Cpu,
                batch_size: 4,
                half: false,
            },
        )
        .unwrap();
        assert_eq!(loaded.dims(), 16);
        let size = t.input_size() as u32;
        let images: Vec<image::RgbImage> = (0..3u8)
            .map(|i| {
                image::RgbImage::from_fn(size, size, |x, y| {
                    image::Rgb([x as u8 * i, y as u8, 40 * i])
                })
            })
            .collect();
        // The folder's embedder takes 518x518 inputs (the frames) and
        // brings others there; feed it the trainer's input size directly.
        let pixels = Tensor::stack(
            &images.iter().map(crate::dinov2::pixels).collect::<Vec<_>>(),
            0,
        );
        let ours = t.embed(&pixels);
        let model = loaded.model();
        let pooled = tch::no_grad(|| model.forward(&pixels).pooled);
        drop(model);
        let head = loaded.var_store().variables();
        let projected = pooled.matmul(&head["head.weight"].tr()) + &head["head.bias"];
        let theirs = normalise(&projected);
        let difference = (ours - theirs).abs().max().double_value(&[]);
        assert!(difference < 1e-5, "the saved model differs by {difference}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let refuse = |setup: Setup| {
            Trainer::new(&Base::Scratch(Preset::Tiny), setup, Device::Cpu)
                .unwrap_err()
                .to_string()
        };
        let mut zero = setup(Loss::default(), 3);
        zero.optimiser.lr = 0.0;
        assert!(refuse(zero).contains("learning rate"));
        let one = Setup {
            classes: 1,
            ..setup(Loss::default(), 3)
        };
        assert!(refuse(one).contains("at least 2 products"));
    }

    #[test]
    fn the_schedule_warms_up_then_decays_to_zero() {
        let o = Optimiser {
            lr: 1.0,
            warmup_steps: 4,
            ..Default::default()
        };
        assert_eq!(o.lr_at(0, 20), 0.25);
        assert_eq!(o.lr_at(3, 20), 1.0);
        assert_eq!(o.lr_at(4, 20), 1.0);
        assert!((o.lr_at(12, 20) - 0.5).abs() < 1e-9);
        assert!(o.lr_at(19, 20) < 0.01);
    }
}
