//! DINOv2 (and DINOv2 with registers) written with tch's `nn` modules, loading
//! a Hugging Face model folder (`config.json` + `model.safetensors`) as saved
//! by `Dinov2Model.save_pretrained`: `facebook/dinov2-{small,base,large,giant}`
//! and the `-with-registers` variants. Every variable has exactly the name of
//! its safetensors key, so the same modules can be trained and saved back.
//!
//! The embedding of an image is the CLS token after the final layer norm (the
//! model's pooled output), L2-normalised.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{Context, bail, ensure};
use image::{RgbImage, imageops::FilterType};
use serde::Deserialize;
use tch::{Device, Kind, Tensor, nn};

use crate::device::DeviceChoice;

/// ImageNet's channel means and deviations, as DINOv2's image processor uses them.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The side of the square the pipeline's frames have, and what query images
/// are brought to: 37x37 patches of 14.
pub const INPUT_SIZE: u32 = 518;

/// `config.json` of a DINOv2 folder: the fields the architecture depends on,
/// with the defaults of transformers' `Dinov2Config`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct Dinov2Config {
    pub model_type: String,
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: i64,
    #[serde(default = "defaults::layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "defaults::heads")]
    pub num_attention_heads: i64,
    /// Written as an integer when it is one: transformers 5 checks the
    /// field's type and refuses `4.0`.
    #[serde(default = "defaults::mlp_ratio", serialize_with = "whole_as_integer")]
    pub mlp_ratio: f64,
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: String,
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "defaults::image_size")]
    pub image_size: i64,
    #[serde(default = "defaults::patch_size")]
    pub patch_size: i64,
    #[serde(default = "defaults::num_channels")]
    pub num_channels: i64,
    #[serde(default = "defaults::yes")]
    pub qkv_bias: bool,
    #[serde(default = "defaults::layerscale_value")]
    pub layerscale_value: f64,
    #[serde(default)]
    pub use_swiglu_ffn: bool,
    /// Only in `dinov2_with_registers` (4 in the published checkpoints).
    #[serde(default)]
    pub num_register_tokens: i64,
    /// A linear head from the CLS token to this dimension (`head.weight`,
    /// `head.bias`): models trained here with an embedding head. Not a
    /// transformers setting; transformers keeps it as an attribute and
    /// ignores the head's tensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_dim: Option<i64>,
}

fn whole_as_integer<S: serde::Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        s.serialize_i64(*value as i64)
    } else {
        s.serialize_f64(*value)
    }
}

mod defaults {
    pub fn hidden_size() -> i64 {
        768
    }
    pub fn layers() -> i64 {
        12
    }
    pub fn heads() -> i64 {
        12
    }
    pub fn mlp_ratio() -> f64 {
        4.0
    }
    pub fn hidden_act() -> String {
        "gelu".to_owned()
    }
    pub fn layer_norm_eps() -> f64 {
        1e-6
    }
    pub fn image_size() -> i64 {
        224
    }
    pub fn patch_size() -> i64 {
        14
    }
    pub fn num_channels() -> i64 {
        3
    }
    pub fn yes() -> bool {
        true
    }
    pub fn layerscale_value() -> f64 {
        1.0
    }
}

impl Dinov2Config {
    /// Reads and checks `config.json`; another architecture is refused by name.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let model_type = value
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("(none)");
        ensure!(
            matches!(model_type, "dinov2" | "dinov2_with_registers"),
            "{} describes a {model_type:?} model, not DINOv2 (model_type \"dinov2\" or \
             \"dinov2_with_registers\")",
            path.display()
        );
        let config: Self = serde_json::from_value(value)
            .with_context(|| format!("reading the DINOv2 settings of {}", path.display()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        ensure!(
            self.hidden_size > 0
                && self.num_attention_heads > 0
                && self.hidden_size % self.num_attention_heads == 0,
            "hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        ensure!(
            self.num_hidden_layers > 0 && self.patch_size > 0 && self.image_size >= self.patch_size,
            "num_hidden_layers {}, patch_size {}, image_size {}: not a usable vision transformer",
            self.num_hidden_layers,
            self.patch_size,
            self.image_size
        );
        ensure!(
            self.use_swiglu_ffn || Activation::parse(&self.hidden_act).is_some(),
            "hidden_act {:?} is not one DINOv2 uses (gelu, gelu_new, gelu_pytorch_tanh, silu, relu)",
            self.hidden_act
        );
        ensure!(
            self.num_register_tokens >= 0,
            "num_register_tokens is negative"
        );
        ensure!(
            self.projection_dim.is_none_or(|d| d > 0),
            "projection_dim must be above 0"
        );
        Ok(())
    }

    pub fn with_registers(&self) -> bool {
        self.model_type == "dinov2_with_registers"
    }

    /// Patches per side of the square the position table was learned on.
    pub fn grid(&self) -> i64 {
        self.image_size / self.patch_size
    }

    /// The width of the MLP's hidden layer.
    fn mlp_hidden(&self) -> i64 {
        let hidden = (self.hidden_size as f64 * self.mlp_ratio) as i64;
        if self.use_swiglu_ffn {
            ((hidden as f64 * 2.0 / 3.0) as i64 + 7) / 8 * 8
        } else {
            hidden
        }
    }

    /// A short name of the size: ViT-S/14, ViT-B/14, ... (or the width).
    pub fn size_name(&self) -> String {
        let size = match self.hidden_size {
            384 => "S".to_owned(),
            768 => "B".to_owned(),
            1024 => "L".to_owned(),
            1536 => "g".to_owned(),
            other => format!("{other}d"),
        };
        let registers = if self.with_registers() {
            " + registers"
        } else {
            ""
        };
        format!("ViT-{size}/{}{registers}", self.patch_size)
    }
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    Gelu,
    GeluTanh,
    Silu,
    Relu,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "silu" | "swish" => Some(Self::Silu),
            "relu" => Some(Self::Relu),
            _ => None,
        }
    }

    fn apply(self, xs: &Tensor) -> Tensor {
        match self {
            Self::Gelu => xs.gelu("none"),
            Self::GeluTanh => xs.gelu("tanh"),
            Self::Silu => xs.silu(),
            Self::Relu => xs.relu(),
        }
    }
}

struct Embeddings {
    cls_token: Tensor,
    /// Not used for embedding (masked-image training only); kept so the
    /// variables are the checkpoint's.
    _mask_token: Tensor,
    register_tokens: Option<Tensor>,
    position_embeddings: Tensor,
    projection: nn::Conv2D,
    patch_size: i64,
    with_registers: bool,
}

impl Embeddings {
    fn new(p: &nn::Path, c: &Dinov2Config) -> Self {
        let d = c.hidden_size;
        let grid = c.grid();
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        Self {
            cls_token: p.var("cls_token", &[1, 1, d], init),
            _mask_token: p.var("mask_token", &[1, d], nn::Init::Const(0.0)),
            register_tokens: (c.with_registers())
                .then(|| p.var("register_tokens", &[1, c.num_register_tokens, d], init)),
            position_embeddings: p.var("position_embeddings", &[1, 1 + grid * grid, d], init),
            projection: nn::conv2d(
                p / "patch_embeddings" / "projection",
                c.num_channels,
                d,
                c.patch_size,
                nn::ConvConfig {
                    stride: c.patch_size,
                    ..Default::default()
                },
            ),
            patch_size: c.patch_size,
            with_registers: c.with_registers(),
        }
    }

    fn forward(&self, pixels: &Tensor) -> Tensor {
        let (batch, _, height, width) = pixels.size4().expect("pixels are [B, C, H, W]");
        let patches = pixels
            .to_kind(self.projection.ws.kind())
            .apply(&self.projection)
            .flatten(2, -1)
            .transpose(1, 2);
        let cls = self.cls_token.expand([batch, -1, -1], false);
        let tokens = Tensor::cat(&[cls, patches], 1);
        let tokens = &tokens + self.position_table(&tokens, height, width);
        match &self.register_tokens {
            Some(registers) => {
                let n = tokens.size()[1];
                Tensor::cat(
                    &[
                        tokens.narrow(1, 0, 1),
                        registers.expand([batch, -1, -1], false),
                        tokens.narrow(1, 1, n - 1),
                    ],
                    1,
                )
            }
            None => tokens,
        }
    }

    /// The position embeddings for an input of this size: the learned table
    /// when the grid is the table's, else its patch part interpolated
    /// bicubically in fp32 as transformers does (the registers variant with
    /// antialiasing).
    fn position_table(&self, tokens: &Tensor, height: i64, width: i64) -> Tensor {
        let patches = tokens.size()[1] - 1;
        let positions = self.position_embeddings.size()[1] - 1;
        if patches == positions && height == width {
            return self.position_embeddings.shallow_clone();
        }
        let dim = self.position_embeddings.size()[2];
        let side = (positions as f64).sqrt() as i64;
        let class = self.position_embeddings.narrow(1, 0, 1);
        let kind = self.position_embeddings.kind();
        let table = self
            .position_embeddings
            .narrow(1, 1, positions)
            .reshape([1, side, side, dim])
            .permute([0, 3, 1, 2])
            .to_kind(Kind::Float);
        let size = [height / self.patch_size, width / self.patch_size];
        let resized = if self.with_registers {
            table.internal_upsample_bicubic2d_aa(size, false, None, None)
        } else {
            table.upsample_bicubic2d(size, false, None, None)
        };
        let resized = resized
            .to_kind(kind)
            .permute([0, 2, 3, 1])
            .reshape([1, -1, dim]);
        Tensor::cat(&[class, resized], 1)
    }
}

struct Attention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    dense: nn::Linear,
    heads: i64,
}

impl Attention {
    fn new(p: &nn::Path, c: &Dinov2Config) -> Self {
        let d = c.hidden_size;
        let qkv = nn::LinearConfig {
            bias: c.qkv_bias,
            ..Default::default()
        };
        let inner = p / "attention";
        Self {
            query: nn::linear(&inner / "query", d, d, qkv),
            key: nn::linear(&inner / "key", d, d, qkv),
            value: nn::linear(&inner / "value", d, d, qkv),
            dense: nn::linear(p / "output" / "dense", d, d, Default::default()),
            heads: c.num_attention_heads,
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let (b, n, d) = xs.size3().expect("tokens are [B, N, D]");
        let split = |t: Tensor| t.view([b, n, self.heads, d / self.heads]).transpose(1, 2);
        let [q, k, v] = if self.query.ws.requires_grad() {
            // Training: three products, as transformers does, so each
            // projection's gradient is its own contiguous tensor.
            [&self.query, &self.key, &self.value].map(|l| split(xs.apply(l)))
        } else {
            // Inference: one matrix product for the three projections (the
            // variables stay the checkpoint's three; joining them costs
            // little beside the product).
            let weight = Tensor::cat(&[&self.query.ws, &self.key.ws, &self.value.ws], 0);
            let bias = match (&self.query.bs, &self.key.bs, &self.value.bs) {
                (Some(q), Some(k), Some(v)) => Some(Tensor::cat(&[q, k, v], 0)),
                _ => None,
            };
            let qkv = xs.linear(&weight, bias.as_ref()).chunk(3, -1);
            [0, 1, 2].map(|i| split(qkv[i].shallow_clone()))
        };
        // Scaled by head_dim^-0.5, softmax over keys: what transformers computes.
        let attended = Tensor::scaled_dot_product_attention::<Tensor>(
            &q, &k, &v, None, 0.0, false, None, false,
        );
        attended
            .transpose(1, 2)
            .reshape([b, n, d])
            .apply(&self.dense)
    }
}

enum Mlp {
    Plain {
        fc1: nn::Linear,
        fc2: nn::Linear,
        activation: Activation,
    },
    SwiGlu {
        weights_in: nn::Linear,
        weights_out: nn::Linear,
    },
}

impl Mlp {
    fn new(p: &nn::Path, c: &Dinov2Config) -> Self {
        let (d, hidden) = (c.hidden_size, c.mlp_hidden());
        if c.use_swiglu_ffn {
            Self::SwiGlu {
                weights_in: nn::linear(p / "weights_in", d, 2 * hidden, Default::default()),
                weights_out: nn::linear(p / "weights_out", hidden, d, Default::default()),
            }
        } else {
            Self::Plain {
                fc1: nn::linear(p / "fc1", d, hidden, Default::default()),
                fc2: nn::linear(p / "fc2", hidden, d, Default::default()),
                activation: Activation::parse(&c.hidden_act).expect("checked in Dinov2Config"),
            }
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        match self {
            Self::Plain {
                fc1,
                fc2,
                activation,
            } => activation.apply(&xs.apply(fc1)).apply(fc2),
            Self::SwiGlu {
                weights_in,
                weights_out,
            } => {
                let halves = xs.apply(weights_in).chunk(2, -1);
                (halves[0].silu() * &halves[1]).apply(weights_out)
            }
        }
    }
}

struct Layer {
    norm1: nn::LayerNorm,
    attention: Attention,
    layer_scale1: Tensor,
    norm2: nn::LayerNorm,
    mlp: Mlp,
    layer_scale2: Tensor,
}

impl Layer {
    fn new(p: &nn::Path, c: &Dinov2Config) -> Self {
        let d = c.hidden_size;
        let norm = || nn::LayerNormConfig {
            eps: c.layer_norm_eps,
            ..Default::default()
        };
        Self {
            norm1: nn::layer_norm(p / "norm1", vec![d], norm()),
            attention: Attention::new(&(p / "attention"), c),
            layer_scale1: (p / "layer_scale1").var(
                "lambda1",
                &[d],
                nn::Init::Const(c.layerscale_value),
            ),
            norm2: nn::layer_norm(p / "norm2", vec![d], norm()),
            mlp: Mlp::new(&(p / "mlp"), c),
            layer_scale2: (p / "layer_scale2").var(
                "lambda1",
                &[d],
                nn::Init::Const(c.layerscale_value),
            ),
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        let xs = xs + self.attention.forward(&xs.apply(&self.norm1)) * &self.layer_scale1;
        &xs + self.mlp.forward(&xs.apply(&self.norm2)) * &self.layer_scale2
    }
}

/// What the model gives for a batch.
#[derive(Debug)]
pub struct Dinov2Output {
    /// Every token after the final layer norm: [B, 1 + registers + patches, D].
    pub last_hidden_state: Tensor,
    /// The CLS token after the final layer norm: [B, D].
    pub pooled: Tensor,
}

/// The vision transformer, its variables under `p` (the root of a VarStore
/// gives the checkpoint's names).
pub struct Dinov2Model {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    layernorm: nn::LayerNorm,
    config: Dinov2Config,
}

impl Dinov2Model {
    pub fn new(p: &nn::Path, config: &Dinov2Config) -> Self {
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(&(p / "encoder" / "layer" / i), config))
            .collect();
        Self {
            embeddings: Embeddings::new(&(p / "embeddings"), config),
            layers,
            layernorm: nn::layer_norm(
                p / "layernorm",
                vec![config.hidden_size],
                nn::LayerNormConfig {
                    eps: config.layer_norm_eps,
                    ..Default::default()
                },
            ),
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &Dinov2Config {
        &self.config
    }

    /// Normalised pixels [B, 3, H, W] (H and W multiples of the patch size).
    pub fn forward(&self, pixels: &Tensor) -> Dinov2Output {
        let mut xs = self.embeddings.forward(pixels);
        for layer in &self.layers {
            xs = layer.forward(&xs);
        }
        let last_hidden_state = xs.apply(&self.layernorm);
        let pooled = last_hidden_state.select(1, 0);
        Dinov2Output {
            last_hidden_state,
            pooled,
        }
    }
}

/// How the embedding model runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dinov2Options {
    pub device: DeviceChoice,
    /// Images per forward pass.
    pub batch_size: usize,
    /// On CUDA: run in half precision (fp16 autocast). Always fp32 on the CPU.
    pub half: bool,
}

impl Default for Dinov2Options {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Auto,
            batch_size: 8,
            half: true,
        }
    }
}

/// A DINOv2 folder loaded for embedding images.
pub struct Dinov2 {
    vs: nn::VarStore,
    /// The embedding head of a model trained with one (locked with the
    /// model, which makes its tensors shareable too).
    head: Mutex<Option<nn::Linear>>,
    /// One batch at a time (a second would only compete for the same
    /// device); the lock also makes the model's tensors shareable.
    model: Mutex<Dinov2Model>,
    config: Dinov2Config,
    folder: PathBuf,
    weights: Vec<PathBuf>,
    device: Device,
    options: Dinov2Options,
}

impl std::fmt::Debug for Dinov2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Dinov2 {
    /// Loads a Hugging Face DINOv2 folder: `config.json` and
    /// `model.safetensors` (or the shards a `model.safetensors.index.json`
    /// lists). Every tensor of the architecture must be there with its shape;
    /// a `dinov2.` prefix (classification checkpoints) is accepted.
    pub fn load(folder: &Path, options: Dinov2Options) -> anyhow::Result<Self> {
        ensure!(options.batch_size > 0, "the batch size must be at least 1");
        let folder = if folder.is_file() {
            folder.parent().unwrap_or(Path::new(".")).to_owned()
        } else {
            folder.to_owned()
        };
        ensure!(
            folder.is_dir(),
            "{} is not a folder (a DINOv2 model folder holds config.json and model.safetensors)",
            folder.display()
        );
        let config = Dinov2Config::read(&folder.join("config.json"))?;
        let weights = weight_files(&folder)?;
        let device = options.device.resolve()?;
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = Dinov2Model::new(&vs.root(), &config);
        let head = config.projection_dim.map(|dims| {
            nn::linear(
                vs.root() / "head",
                config.hidden_size,
                dims,
                Default::default(),
            )
        });
        load_weights(&vs, &weights, true)?;
        vs.set_device(device);
        vs.freeze();
        let loaded = Self {
            vs,
            head: Mutex::new(head),
            model: Mutex::new(model),
            config,
            folder,
            weights,
            device,
            options,
        };
        // One image through, so a model that cannot run fails here.
        let probe = loaded.embed(&[RgbImage::new(INPUT_SIZE, INPUT_SIZE)])?;
        ensure!(
            probe[0].iter().all(|v| v.is_finite()),
            "{} gives non-finite outputs",
            loaded.folder.display()
        );
        Ok(loaded)
    }

    pub fn config(&self) -> &Dinov2Config {
        &self.config
    }

    /// The modules, for running raw tensors through (tests, training).
    pub fn model(&self) -> std::sync::MutexGuard<'_, Dinov2Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn dims(&self) -> usize {
        self.config()
            .projection_dim
            .unwrap_or(self.config().hidden_size) as usize
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The safetensors files the weights came from.
    pub fn weight_files(&self) -> &[PathBuf] {
        &self.weights
    }

    pub fn describe(&self) -> String {
        format!(
            "DINOv2 {} ({} layers, {}-d) from {} on {:?}{}",
            self.config().size_name(),
            self.config().num_hidden_layers,
            self.config().hidden_size,
            self.folder.display(),
            self.device,
            if self.device.is_cuda() && self.options.half {
                ", fp16"
            } else {
                ", fp32"
            }
        )
    }

    /// One L2-normalised embedding per image, each brought to the model's
    /// own input size first (see [`to_input`]): frames go in as the model saw
    /// them in training.
    pub fn embed(&self, images: &[RgbImage]) -> anyhow::Result<Vec<Vec<f32>>> {
        let size = u32::try_from(self.config.image_size).unwrap_or(INPUT_SIZE);
        let model = self.model();
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.options.batch_size) {
            let pixels = Tensor::stack(
                &chunk
                    .iter()
                    .map(|image| pixels(&to_input(image, size)))
                    .collect::<Vec<_>>(),
                0,
            )
            .to_device(self.device);
            let pooled = tch::no_grad(|| {
                if self.device.is_cuda() && self.options.half {
                    tch::autocast(true, || model.forward(&pixels).pooled)
                } else {
                    model.forward(&pixels).pooled
                }
            });
            let pooled = pooled.to_kind(Kind::Float);
            let head = self.head.lock().unwrap_or_else(|e| e.into_inner());
            let pooled = match head.as_ref() {
                Some(head) => tch::no_grad(|| pooled.apply(head)),
                None => pooled,
            };
            let norms = pooled
                .norm_scalaropt_dim(2.0, [-1].as_slice(), true)
                .clamp_min(1e-12);
            let unit = (pooled / norms).to_device(Device::Cpu).contiguous();
            let rows: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(&unit)
                .context("reading the embeddings back from the device")?;
            out.extend(rows);
        }
        Ok(out)
    }
}

/// The safetensors files of a folder, refusing what cannot be read here.
pub(crate) fn weight_files(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let single = folder.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = folder.join("model.safetensors.index.json");
    if index.is_file() {
        #[derive(Deserialize)]
        struct Index {
            weight_map: HashMap<String, String>,
        }
        let parsed: Index = serde_json::from_slice(
            &std::fs::read(&index).with_context(|| format!("reading {}", index.display()))?,
        )
        .with_context(|| format!("{} is not a safetensors index", index.display()))?;
        let mut files: Vec<PathBuf> = parsed
            .weight_map
            .values()
            .map(|name| folder.join(name))
            .collect();
        files.sort();
        files.dedup();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            bail!(
                "{} lists {} but it is not there",
                index.display(),
                missing.display()
            );
        }
        return Ok(files);
    }
    if folder.join("pytorch_model.bin").is_file() {
        bail!(
            "{} has only pytorch_model.bin; save the model as safetensors \
             (model.save_pretrained(folder, safe_serialization=True))",
            folder.display()
        );
    }
    bail!("{} has no model.safetensors", folder.display())
}

/// Copies the checkpoint's tensors into the model's variables one at a time
/// (so that loading holds the file and the model, not a third copy), naming
/// the first tensor that is missing or has the wrong shape. A `dinov2.`
/// prefix on the keys is accepted. Without `with_head`, an embedding head's
/// tensors are neither read nor required (a run that trains a new head).
pub(crate) fn load_weights(
    vs: &nn::VarStore,
    files: &[PathBuf],
    with_head: bool,
) -> anyhow::Result<()> {
    let mut variables: HashMap<String, Tensor> = vs.variables();
    let mut seen = std::collections::HashSet::new();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let tensors = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| anyhow::anyhow!("{} is not a safetensors file: {e:?}", file.display()))?;
        for (key, view) in tensors.tensors() {
            let name = key.strip_prefix("dinov2.").unwrap_or(&key);
            if !with_head && name.starts_with("head.") {
                continue;
            }
            let Some(variable) = variables.get_mut(name) else {
                continue;
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            ensure!(
                shape == variable.size(),
                "tensor {name:?} has shape {shape:?}; this config.json needs {:?}",
                variable.size()
            );
            let kind = match view.dtype() {
                safetensors::Dtype::F32 => Kind::Float,
                safetensors::Dtype::F16 => Kind::Half,
                safetensors::Dtype::BF16 => Kind::BFloat16,
                safetensors::Dtype::F64 => Kind::Double,
                other => bail!("tensor {name:?} is {other:?}, not floating point"),
            };
            let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)
                .with_context(|| format!("reading tensor {name:?}"))?;
            tch::no_grad(|| variable.copy_(&tensor));
            seen.insert(name.to_owned());
        }
    }
    let mut missing: Vec<&String> = variables
        .keys()
        // Only masked-image training uses the mask token.
        .filter(|name| !seen.contains(*name) && *name != "embeddings.mask_token")
        .filter(|name| with_head || !name.starts_with("head."))
        .collect();
    missing.sort();
    if let Some(name) = missing.first() {
        bail!("the weights have no tensor {name:?}");
    }
    Ok(())
}

/// A square image of `size` pixels a side (the model's own `image_size`: 518
/// for the published checkpoints, the preset's size for a model trained
/// here): as it is when it already is one; else resized so the short side is
/// `size` (a triangle filter when shrinking, as training brings frames to its
/// size; bicubic when enlarging) and cropped around the centre.
pub fn to_input(image: &RgbImage, size: u32) -> std::borrow::Cow<'_, RgbImage> {
    let (w, h) = image.dimensions();
    if (w, h) == (size, size) {
        return std::borrow::Cow::Borrowed(image);
    }
    let short = w.min(h).max(1) as f64;
    let scale = f64::from(size) / short;
    let (nw, nh) = (
        ((w as f64 * scale).round() as u32).max(size),
        ((h as f64 * scale).round() as u32).max(size),
    );
    let filter = if scale < 1.0 {
        FilterType::Triangle
    } else {
        FilterType::CatmullRom
    };
    let resized = image::imageops::resize(image, nw, nh, filter);
    if (nw, nh) == (size, size) {
        return std::borrow::Cow::Owned(resized);
    }
    let (x, y) = ((nw - size) / 2, (nh - size) / 2);
    std::borrow::Cow::Owned(image::imageops::crop_imm(&resized, x, y, size, size).to_image())
}

/// An RGB image as the model's input: [3, H, W], scaled to [0, 1] and
/// normalised with ImageNet's mean and deviation.
pub fn pixels(image: &RgbImage) -> Tensor {
    let (w, h) = image.dimensions();
    let plane = (w * h) as usize;
    let mut data = vec![0f32; 3 * plane];
    for (i, p) in image.pixels().enumerate() {
        for c in 0..3 {
            data[c * plane + i] = (f32::from(p.0[c]) / 255.0 - MEAN[c]) / STD[c];
        }
    }
    Tensor::from_slice(&data).view([3, h as i64, w as i64])
}
