//! SAM 3 through TorchScript: the image path exported by
//! `vision/python/export_sam3.py` (a `sam3.pt` with `sam3.json` and
//! `tokenizer.json` beside it).
//!
//! Per video: the grounding prompt is tokenised and encoded once; frames go
//! through in batches (resized on the device to the model's square input and
//! normalised as SAM 3's image processor does); per frame the best few instances
//! come back to the CPU at the model's mask resolution, one is chosen
//! ([`crate::select`]), and only that one is upsampled to the frame's size.
//! Longer than most files: loading an export (with its checks against the
//! reference outputs) and running it are one model's code, kept together.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::{Context, bail, ensure};
use image::{GrayImage, RgbImage};
use serde::Deserialize;
use tch::{CModule, Device, IValue, Kind, Tensor};
use tokenizers::Tokenizer;

use crate::{
    device::DeviceChoice,
    select::{Candidate, SelectParams, Tracker},
};

/// How the model runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sam3Options {
    pub device: DeviceChoice,
    /// Frames per forward pass.
    pub batch_size: usize,
    pub select: SelectParams,
}

impl Default for Sam3Options {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Auto,
            batch_size: 4,
            select: SelectParams::default(),
        }
    }
}

/// `sam3.json`: what the export recorded about the module.
#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Where the weights came from, e.g. "pretrained facebook/sam3".
    pub model: String,
    /// The device the graph was traced on; tracing bakes it in.
    pub device: String,
    pub dtype: String,
    pub image_size: i64,
    pub mean: [f64; 3],
    pub std: [f64; 3],
    pub prompt_length: usize,
    pub pad_token_id: u32,
    pub num_queries: i64,
    pub mask_size: [i64; 2],
    #[serde(default)]
    pub reference_encodings: Vec<ReferenceEncoding>,
    pub reference_output: Option<ReferenceOutput>,
}

/// What the exported module gave in Python for a generated frame (see
/// [`reference_frame`]) preprocessed by SAM 3's own image processor.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceOutput {
    pub width: u32,
    pub height: u32,
    pub prompt: String,
    /// Mean of the whole preprocessed input.
    pub pixel_mean: f64,
    /// `[channel, y, x, value]` of the preprocessed input.
    pub pixel_samples: Vec<(i64, i64, i64, f64)>,
    /// Each query's score (query times presence probability).
    pub scores: Vec<f32>,
    /// Each query's mean mask logit.
    pub mask_logit_means: Vec<f64>,
}

/// The export's reference frame: R = (7x + 3y) mod 256, G = (2x + 5y) mod 256,
/// B = (x xor y) mod 256.
pub fn reference_frame(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            ((7 * x + 3 * y) % 256) as u8,
            ((2 * x + 5 * y) % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    })
}

/// A prompt and the ids SAM 3's own tokenizer gave it at export time.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferenceEncoding {
    pub prompt: String,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
}

/// One batch's raw outputs.
pub struct Outputs {
    /// Mask logits [B, Q, h, w].
    pub masks: Tensor,
    /// Query logits [B, Q].
    pub logits: Tensor,
    /// Presence logit [B, 1].
    pub presence: Tensor,
}

/// A loaded SAM 3 image model.
pub struct Sam3 {
    module: CModule,
    tokenizer: Tokenizer,
    manifest: Manifest,
    files: PathBuf,
    device: Device,
    kind: Kind,
    options: Sam3Options,
    /// One video at a time per model: a second would only compete for the same
    /// device memory and compute.
    busy: Mutex<()>,
}

impl std::fmt::Debug for Sam3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Sam3 {
    /// Loads `sam3.pt` (or a folder holding it) with its `sam3.json` and
    /// `tokenizer.json`, checks that they belong together and that the device
    /// fits, and runs one frame so that a broken file fails here and not at the
    /// first job.
    pub fn load(path: &Path, options: Sam3Options) -> anyhow::Result<Self> {
        let file = if path.is_dir() {
            path.join("sam3.pt")
        } else {
            path.to_owned()
        };
        let folder = file.parent().unwrap_or(Path::new("."));
        ensure!(
            file.is_file(),
            "{} does not exist (export one with vision/python/export_sam3.py)",
            file.display()
        );
        let manifest_path = folder.join("sam3.json");
        let manifest: Manifest = serde_json::from_slice(
            &std::fs::read(&manifest_path)
                .with_context(|| format!("reading {}", manifest_path.display()))?,
        )
        .with_context(|| format!("{} is not an export manifest", manifest_path.display()))?;
        ensure!(
            manifest.format == 1,
            "{}: export format {} is not supported (expected 1)",
            manifest_path.display(),
            manifest.format
        );
        ensure!(options.batch_size >= 1, "the batch size must be at least 1");

        let device = options.device.resolve()?;
        let traced_on_cuda = manifest.device.starts_with("cuda");
        if traced_on_cuda != device.is_cuda() {
            bail!(
                "{} was exported for {} but this worker runs on {} (DEVICE={}): a traced graph keeps \
                 the device it was exported on; export again with --device {}",
                file.display(),
                manifest.device,
                device_name(device),
                options.device,
                if device.is_cuda() { "cuda" } else { "cpu" }
            );
        }
        let kind = match manifest.dtype.as_str() {
            "float32" => Kind::Float,
            "float16" => Kind::Half,
            "bfloat16" => Kind::BFloat16,
            other => bail!("{}: unknown dtype {other:?}", manifest_path.display()),
        };

        let tokenizer_path = folder.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", tokenizer_path.display()))?;
        // Padding and truncation to the fixed prompt length happen in
        // `encode_prompt`, whatever the file asks for.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| anyhow::anyhow!("{}: {e}", tokenizer_path.display()))?;

        let mut module = CModule::load_on_device(&file, device)
            .with_context(|| format!("loading the TorchScript module {}", file.display()))?;
        module.set_eval();
        let model = Self {
            module,
            tokenizer,
            manifest,
            files: folder.to_owned(),
            device,
            kind,
            options,
            busy: Mutex::new(()),
        };
        model.check_tokenizer()?;
        model
            .warm_up()
            .with_context(|| format!("running {} once", file.display()))?;
        Ok(model)
    }

    /// "SAM 3 (pretrained facebook/sam3) on cuda:0, float16, batch 8".
    pub fn describe(&self) -> String {
        format!(
            "SAM 3 ({}) from {} on {}, {}, batch {}",
            self.manifest.model,
            self.files.display(),
            device_name(self.device),
            self.manifest.dtype,
            self.options.batch_size
        )
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn options(&self) -> &Sam3Options {
        &self.options
    }

    /// Token ids and attention mask of a prompt, padded or cut to the fixed
    /// prompt length the module was traced with.
    pub fn encode_prompt(&self, prompt: &str) -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
        let encoding = self
            .tokenizer
            .encode(prompt, true)
            .map_err(|e| anyhow::anyhow!("tokenising {prompt:?}: {e}"))?;
        let length = self.manifest.prompt_length;
        let mut ids: Vec<i64> = encoding.get_ids().iter().map(|&id| id.into()).collect();
        if ids.len() > length {
            // Keep the end-of-text token last, as the tokenizer's own truncation does.
            let last = *ids.last().expect("not empty");
            ids.truncate(length);
            ids[length - 1] = last;
        }
        let used = ids.len();
        ids.resize(length, self.manifest.pad_token_id.into());
        let mask = (0..length).map(|i| i64::from(i < used)).collect();
        Ok((ids, mask))
    }

    /// The module must see the very ids SAM 3's Python tokenizer gives.
    fn check_tokenizer(&self) -> anyhow::Result<()> {
        for reference in &self.manifest.reference_encodings {
            let (ids, mask) = self.encode_prompt(&reference.prompt)?;
            ensure!(
                ids == reference.input_ids && mask == reference.attention_mask,
                "tokenizer.json does not match the export: {:?} gives {ids:?}, the export recorded {:?}",
                reference.prompt,
                reference.input_ids
            );
        }
        Ok(())
    }

    fn warm_up(&self) -> anyhow::Result<()> {
        let size = self.manifest.image_size;
        let frame = Tensor::zeros([1, 3, size, size], (self.kind, self.device));
        let (text, mask) = self.encode_text("product")?;
        let out = self.forward(&frame, &text, &mask)?;
        let (q, [h, w]) = (self.manifest.num_queries, self.manifest.mask_size);
        ensure!(
            out.masks.size() == [1, q, h, w] && out.logits.size() == [1, q],
            "unexpected output shapes {:?} and {:?} (the manifest says {q} queries of {h}x{w})",
            out.masks.size(),
            out.logits.size()
        );
        Ok(())
    }

    /// Prompt features [1, L, C] and mask [1, L] on the device.
    pub fn encode_text(&self, prompt: &str) -> anyhow::Result<(Tensor, Tensor)> {
        let (ids, mask) = self.encode_prompt(prompt)?;
        let ids = Tensor::from_slice(&ids)
            .view([1, -1])
            .to_device(self.device);
        let mask = Tensor::from_slice(&mask)
            .view([1, -1])
            .to_device(self.device);
        let features = tch::no_grad(|| self.module.method_ts("encode_text", &[&ids, &mask]))?;
        Ok((features, mask))
    }

    /// One forward pass over a batch of preprocessed frames [B, 3, S, S].
    pub fn forward(
        &self,
        pixels: &Tensor,
        text: &Tensor,
        mask: &Tensor,
    ) -> anyhow::Result<Outputs> {
        let batch = pixels.size()[0];
        let text = text.expand([batch, -1, -1], false);
        let mask = mask.expand([batch, -1], false);
        let out = tch::no_grad(|| {
            self.module.forward_is(&[
                IValue::Tensor(pixels.shallow_clone()),
                IValue::Tensor(text),
                IValue::Tensor(mask),
            ])
        })?;
        let IValue::Tuple(mut items) = out else {
            bail!("the module returned {out:?}, expected a tuple of 4 tensors");
        };
        ensure!(
            items.len() == 4,
            "the module returned {} outputs, expected 4",
            items.len()
        );
        let mut tensor = |i: usize| match std::mem::replace(&mut items[i], IValue::None) {
            IValue::Tensor(t) => Ok(t),
            other => Err(anyhow::anyhow!(
                "output {i} is {other:?}, expected a tensor"
            )),
        };
        Ok(Outputs {
            masks: tensor(0)?,
            logits: tensor(1)?,
            presence: tensor(2)?,
        })
    }

    /// Frames as the model's input: [B, 3, S, S] on the device, resized
    /// (bilinear, antialiased) and normalised like SAM 3's image processor.
    pub fn preprocess(&self, frames: &[RgbImage]) -> Tensor {
        let size = self.manifest.image_size;
        let (mean, std) = (self.manifest.mean, self.manifest.std);
        let mean = Tensor::from_slice(&mean.map(|m| m as f32))
            .view([1, 3, 1, 1])
            .to_device(self.device);
        let std = Tensor::from_slice(&std.map(|s| s as f32))
            .view([1, 3, 1, 1])
            .to_device(self.device);
        let resized: Vec<Tensor> = frames
            .iter()
            .map(|frame| {
                let (w, h) = frame.dimensions();
                Tensor::from_slice(frame.as_raw())
                    .to_device(self.device)
                    .view([1, i64::from(h), i64::from(w), 3])
                    .permute([0, 3, 1, 2])
                    .to_kind(Kind::Float)
                    .internal_upsample_bilinear2d_aa([size, size], false, None, None)
                    // The image processor resizes 8-bit images to 8-bit images.
                    .round()
                    .clamp(0.0, 255.0)
            })
            .collect();
        ((Tensor::cat(&resized, 0) / 255.0 - mean) / std).to_kind(self.kind)
    }

    /// One mask per frame, the frame's size: 255 where the product is, 0 elsewhere
    /// (all 0 where it is absent).
    pub fn segment(&self, frames: &[RgbImage], prompt: &str) -> anyhow::Result<Vec<GrayImage>> {
        let _busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let (text, text_mask) = self.encode_text(prompt)?;
        let mut tracker = Tracker::new(self.options.select);
        let mut masks = Vec::with_capacity(frames.len());
        for batch in frames.chunks(self.options.batch_size) {
            let pixels = tch::no_grad(|| self.preprocess(batch));
            let out = self.forward(&pixels, &text, &text_mask)?;
            masks.extend(self.choose(batch, &out, &mut tracker)?);
        }
        Ok(masks)
    }

    /// Every instance of what `prompt` names in one image that scores at
    /// least `min_score`, best first: (score, [x, y, width, height] in the
    /// image's pixels). Boxes are taken on the model's mask grid (each
    /// query's mask where its logit is above 0, i.e. probability 0.5) and
    /// scaled to the image.
    pub fn instances(
        &self,
        image: &RgbImage,
        prompt: &str,
        min_score: f32,
    ) -> anyhow::Result<Vec<(f32, [u32; 4])>> {
        let _busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let (text, text_mask) = self.encode_text(prompt)?;
        let pixels = tch::no_grad(|| self.preprocess(std::slice::from_ref(image)));
        let out = self.forward(&pixels, &text, &text_mask)?;
        let (iw, ih) = image.dimensions();
        tch::no_grad(|| {
            let [_, q, h, w] = out.masks.size()[..] else {
                bail!("mask output of shape {:?}", out.masks.size());
            };
            let scores = (out.logits.to_kind(Kind::Float).sigmoid()
                * out.presence.to_kind(Kind::Float).sigmoid())
            .to_device(Device::Cpu)
            .flatten(0, -1);
            let scores = Vec::<f32>::try_from(scores)?;
            let inside = Vec::<u8>::try_from(
                out.masks
                    .gt(0.0)
                    .to_kind(Kind::Uint8)
                    .to_device(Device::Cpu)
                    .flatten(0, -1),
            )?;
            let (gw, gh) = (w as usize, h as usize);
            let mut found = Vec::new();
            for j in 0..q as usize {
                let score = scores[j];
                if score < min_score {
                    continue;
                }
                let grid = &inside[j * gw * gh..(j + 1) * gw * gh];
                let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
                for (at, &v) in grid.iter().enumerate() {
                    if v != 0 {
                        let (x, y) = (at % gw, at / gw);
                        x0 = x0.min(x);
                        y0 = y0.min(y);
                        x1 = x1.max(x + 1);
                        y1 = y1.max(y + 1);
                    }
                }
                if x0 == usize::MAX {
                    continue;
                }
                let scale = |v: usize, grid: usize, size: u32| {
                    ((v as f64 * f64::from(size) / grid as f64).round() as u32).min(size)
                };
                let (left, top) = (scale(x0, gw, iw), scale(y0, gh, ih));
                let (right, bottom) = (scale(x1, gw, iw), scale(y1, gh, ih));
                if right > left && bottom > top {
                    found.push((score, [left, top, right - left, bottom - top]));
                }
            }
            found.sort_by(|a, b| b.0.total_cmp(&a.0));
            Ok(found)
        })
    }

    /// Picks each frame's product mask from a batch's outputs and brings it to
    /// the frame's size.
    fn choose(
        &self,
        frames: &[RgbImage],
        out: &Outputs,
        tracker: &mut Tracker,
    ) -> anyhow::Result<Vec<GrayImage>> {
        tch::no_grad(|| {
            let [b, q, h, w] = out.masks.size()[..] else {
                bail!("mask output of shape {:?}", out.masks.size());
            };
            let k = (self.options.select.top_k as i64).clamp(1, q);
            let scores = out.logits.to_kind(Kind::Float).sigmoid()
                * out.presence.to_kind(Kind::Float).sigmoid();
            let (top_scores, top) = scores.topk(k, 1, true, true);
            let probabilities = out
                .masks
                .gather(
                    1,
                    &top.view([b, k, 1, 1]).expand([b, k, h, w], false),
                    false,
                )
                .to_kind(Kind::Float)
                .sigmoid();
            // The candidates at the model's resolution, for choosing on the CPU.
            let inside: Vec<bool> = Vec::<u8>::try_from(
                probabilities
                    .gt(0.5)
                    .to_kind(Kind::Uint8)
                    .to_device(Device::Cpu)
                    .flatten(0, -1),
            )?
            .into_iter()
            .map(|v| v != 0)
            .collect();
            let top_scores =
                Vec::<f32>::try_from(top_scores.to_device(Device::Cpu).flatten(0, -1))?;
            let grid = (h * w) as usize;
            let mut masks = Vec::with_capacity(frames.len());
            for (i, frame) in frames.iter().enumerate() {
                let (fw, fh) = frame.dimensions();
                let candidates: Vec<Candidate<'_>> = (0..k as usize)
                    .map(|j| {
                        let at = i * k as usize + j;
                        Candidate {
                            score: top_scores[at],
                            mask: &inside[at * grid..(at + 1) * grid],
                        }
                    })
                    .collect();
                let Some(choice) = tracker.choose(&candidates) else {
                    masks.push(GrayImage::new(fw, fh));
                    continue;
                };
                // As SAM 3's post-processing: probabilities upsampled, then > 0.5.
                let full = probabilities
                    .get(i as i64)
                    .get(choice as i64)
                    .view([1, 1, h, w])
                    .upsample_bilinear2d([i64::from(fh), i64::from(fw)], false, None, None)
                    .gt(0.5)
                    .to_kind(Kind::Uint8)
                    * 255;
                let pixels = Vec::<u8>::try_from(full.to_device(Device::Cpu).flatten(0, -1))?;
                masks.push(GrayImage::from_raw(fw, fh, pixels).context("mask of the wrong size")?);
            }
            Ok(masks)
        })
    }
}

/// `cpu` or `cuda:N`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => format!("cuda:{n}"),
        Device::Cpu => "cpu".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}
