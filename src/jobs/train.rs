//! `train`: metric learning on a dataset version's recognition split (see
//! [`crate::training`] and `buybuddy_vision::train`), on the worker through
//! libtorch (CUDA when present).
//!
//! - Every `log_every` steps a training point (mean loss, learning rate,
//!   images/s) and a progress report, which is where a cancel is noticed.
//! - Every epoch the validation figures (recall@1, recall@5, mAP@R on the
//!   version's validation products) and a checkpoint in storage.
//! - A worker that is stopping saves a checkpoint and hands the job back; an
//!   attempt that starts where checkpoints exist continues from the last one
//!   (the points logged after it are dropped and logged again, identically:
//!   batches and draws come from the step). A cancel keeps a checkpoint too.
//! - At the end the best checkpoint by validation mAP@R becomes a model of
//!   the embedding registry, stored as a Hugging Face DINOv2 folder.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Job, JobContext, JobError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Train {
    pub run_id: i32,
}

impl Job for Train {
    const KIND: &'static str = "train";

    /// Each attempt continues from the last checkpoint, so a run survives
    /// several dead or stopped workers.
    fn default_max_attempts(&self) -> u32 {
        10
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(72 * 3600)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        #[cfg(feature = "sam3")]
        {
            run::run(self.run_id, ctx).await
        }
        #[cfg(not(feature = "sam3"))]
        {
            let _ = ctx;
            Err(JobError::Permanent(anyhow::anyhow!(
                "this worker was built without libtorch (the `sam3` feature); training runs on \
                 the worker image"
            )))
        }
    }
}

#[cfg(feature = "sam3")]
mod run {
    use std::{collections::HashMap, path::Path, time::Instant};

    use anyhow::anyhow;
    use buybuddy_dataset::{
        augment::Rng,
        plan::Task,
        retrieval::{Sample, Scores},
    };
    use buybuddy_vision::tch;
    use buybuddy_vision::{
        DeviceChoice,
        train::{Base, Preset, StepStats, Trainer},
    };
    use buybuddy_worker::storage::Storage;
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};
    use uuid::Uuid;

    use super::{JobContext, JobError};
    use crate::{
        db::{self, training::Checkpoint},
        jobs::context::Level,
        training::{self, BaseChoice, Examples, RunConfig},
    };

    fn permanent(message: impl std::fmt::Display) -> JobError {
        JobError::Permanent(anyhow!("{message}"))
    }

    fn blocking_failed(e: tokio::task::JoinError) -> JobError {
        JobError::Transient(anyhow!(e))
    }

    pub(super) async fn run(run_id: i32, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = ctx.pool();
        let storage = ctx.resources.storage()?;
        let run = db::training::get(pool, run_id)
            .await?
            .ok_or_else(|| permanent(format!("training run #{run_id} is gone")))?;
        let config: RunConfig = serde_json::from_value(run.config.clone())
            .map_err(|e| permanent(format!("the run's settings cannot be read: {e}")))?;
        let base_choice = config
            .check()
            .map_err(|(field, message)| permanent(format!("{field}: {message}")))?;
        let version = db::datasets::version(pool, run.version_id)
            .await?
            .ok_or_else(|| permanent("the run's dataset version is gone"))?;
        if version.task() != Task::Recognition {
            return Err(permanent(format!(
                "dataset version #{} is a {} version; training needs a recognition version (one \
                 product per image, split by product)",
                version.id,
                version.task().as_str()
            )));
        }
        let base = resolve_base(ctx, storage, &base_choice).await?;
        let size = input_size(&base)? as u32;
        let (train, val) = load_examples(ctx, storage, run.version_id, size).await?;
        let val = std::sync::Arc::new(val);
        if val.classes() < 2 {
            return Err(permanent(format!(
                "the version's validation split has {} products; validation needs at least 2 \
                 (raise the val ratio, or add products)",
                val.classes()
            )));
        }
        let schedule = training::schedule(&train, &config).map_err(permanent)?;
        let (spe, total) = (schedule.steps_per_epoch(), schedule.total_steps());
        let data = json!({
            "train_products": train.classes(),
            "train_images": train.len(),
            "val_products": val.classes(),
            "val_images": val.len(),
            "input_size": size,
            "batch": schedule.sampler.batch_size(),
            "window": config.window,
        });
        db::training::set_plan(pool, run_id, spe, total, &data).await?;
        let setup = config.setup(train.classes(), total);
        let device = DeviceChoice::Auto.resolve().map_err(permanent)?;
        let build_base = base.clone();
        let mut trainer =
            tokio::task::spawn_blocking(move || Trainer::new(&build_base, setup, device))
                .await
                .map_err(blocking_failed)?
                .map_err(|e| JobError::Permanent(e.context("building the model")))?;
        let checkpoints = db::training::checkpoints(pool, run_id).await?;
        let mut rng_state;
        if let Some(last) = checkpoints.first() {
            trainer = restore(storage, trainer, last).await?;
            let dropped = db::training::forget_after(pool, run_id, last.step).await?;
            rng_state = last.rng_state as u64;
            ctx.stage(
                "train",
                progress(last.step as usize, total),
                &format!(
                    "Resumed from the checkpoint at step {} of {total} (epoch {}, taken at {} \
                     for a {}); {dropped} points logged after it will be logged again",
                    last.step,
                    last.epoch,
                    last.created_at.format("%H:%M:%S"),
                    last.reason
                ),
            )
            .await?;
        } else {
            db::training::forget_after(pool, run_id, -1).await?;
            ctx.stage(
                "baseline",
                2,
                &format!(
                    "Scoring the base model and the classic descriptor on {} validation images \
                     of {} products",
                    val.len(),
                    val.classes()
                ),
            )
            .await?;
            let (back, base_scores) = evaluate(trainer, &val, config.window).await?;
            trainer = back;
            let classic = classic_scores(&val, config.window).await?;
            db::training::set_baseline(
                pool,
                run_id,
                &json!({"base": base_scores, "classic": classic}),
            )
            .await?;
            record_val(pool, run_id, 0, 0, &base_scores).await?;
            rng_state = config.seed;
            ctx.stage(
                "train",
                3,
                &format!(
                    "Training {} on {} images of {} products: {} epochs of {spe} steps, batches \
                     of {} x {}, {} on {device:?}; before training recall@1 {:.3} (classic \
                     descriptor {:.3})",
                    trainer.config().size_name(),
                    train.len(),
                    train.classes(),
                    config.epochs,
                    schedule.sampler.batch_size() / config.k,
                    config.k,
                    setup.loss.name(),
                    base_scores.recall_at_1,
                    classic.recall_at_1
                ),
            )
            .await?;
        }
        let augmentation = config.augmentation();
        let examples = std::sync::Arc::new(train);
        while trainer.step < total {
            let epoch = trainer.step / spe;
            let mut rng = Rng::new(rng_state);
            let batches = std::sync::Arc::new(schedule.sampler.epoch(&mut rng));
            let next_state = rng.state();
            while trainer.step < (epoch + 1) * spe {
                let end = ((trainer.step / config.log_every + 1) * config.log_every)
                    .min((epoch + 1) * spe);
                let (back, stats, seconds) = steps(
                    trainer,
                    &examples,
                    &batches,
                    epoch * spe,
                    end,
                    augmentation.clone(),
                    config.seed,
                )
                .await?;
                trainer = back;
                let mean = stats.iter().map(|s| s.loss).sum::<f64>() / stats.len() as f64;
                let images = (stats.len() * schedule.sampler.batch_size()) as f64;
                db::training::record(
                    pool,
                    run_id,
                    &db::training::Metric {
                        kind: "train".to_owned(),
                        step: trainer.step as i32,
                        epoch: epoch as i32,
                        loss: Some(mean),
                        lr: stats.last().map(|s| s.lr),
                        images_per_s: Some(images / seconds.max(1e-9)),
                        recall_at_1: None,
                        recall_at_5: None,
                        map_at_r: None,
                        at: chrono::Utc::now(),
                    },
                )
                .await?;
                let at_epoch_end = trainer.step == (epoch + 1) * spe;
                if at_epoch_end {
                    break;
                }
                if let Err(JobError::Cancelled) = ctx.progress(progress(trainer.step, total)).await
                {
                    let written = write_checkpoint(&trainer)?;
                    save(
                        ctx, storage, run_id, written, spe, rng_state, "cancel", None,
                    )
                    .await?;
                    return Err(JobError::Cancelled);
                }
                if ctx.is_stopping() {
                    let written = write_checkpoint(&trainer)?;
                    save(
                        ctx, storage, run_id, written, spe, rng_state, "shutdown", None,
                    )
                    .await?;
                    return Err(JobError::Transient(anyhow!(
                        "the worker is stopping; the run continues from step {} on the next worker",
                        trainer.step
                    )));
                }
            }
            let (back, scores) = evaluate(trainer, &val, config.window).await?;
            trainer = back;
            record_val(pool, run_id, trainer.step, epoch + 1, &scores).await?;
            rng_state = next_state;
            let written = write_checkpoint(&trainer)?;
            save(
                ctx,
                storage,
                run_id,
                written,
                spe,
                rng_state,
                "epoch",
                Some(scores.map_at_r),
            )
            .await?;
            let message = format!(
                "Epoch {} of {}: recall@1 {:.3}, recall@5 {:.3}, mAP@R {:.3}",
                epoch + 1,
                config.epochs,
                scores.recall_at_1,
                scores.recall_at_5,
                scores.map_at_r
            );
            db::job_events::insert_in_current_stage(pool, ctx.job_id, "info", &message).await?;
            if let Err(JobError::Cancelled) = ctx.progress(progress(trainer.step, total)).await {
                return Err(JobError::Cancelled);
            }
            if ctx.is_stopping() && trainer.step < total {
                return Err(JobError::Transient(anyhow!(
                    "the worker is stopping; the run continues from step {} on the next worker",
                    trainer.step
                )));
            }
        }
        register(ctx, storage, &run, trainer).await
    }

    fn progress(step: usize, total: usize) -> u8 {
        (3 + step * 94 / total.max(1)) as u8
    }

    async fn resolve_base(
        ctx: &JobContext,
        storage: &Storage,
        choice: &BaseChoice,
    ) -> Result<Base, JobError> {
        match choice {
            BaseChoice::Scratch(name) => Preset::parse(name)
                .map(Base::Scratch)
                .ok_or_else(|| permanent(format!("no preset {name:?}"))),
            BaseChoice::Folder(path) => {
                buybuddy_vision::Dinov2Config::read(&path.join("config.json")).map_err(|e| {
                    permanent(format!(
                        "{} is not a DINOv2 folder on this worker: {e:#}",
                        path.display()
                    ))
                })?;
                Ok(Base::Folder(path.clone()))
            }
            BaseChoice::Model(id) => {
                let model = db::embeddings::get(ctx.pool(), *id)
                    .await?
                    .ok_or_else(|| permanent(format!("there is no model #{id}")))?;
                if model.kind != "dinov2" {
                    return Err(permanent(format!(
                        "{} is not a DINOv2 model and cannot be trained further",
                        model.label()
                    )));
                }
                let wanted = crate::models::wanted(Some(storage), &model)
                    .await
                    .map_err(JobError::Permanent)?;
                let folder = wanted
                    .path
                    .ok_or_else(|| permanent(format!("{} has no folder", model.label())))?;
                if !folder.is_dir() {
                    return Err(permanent(format!(
                        "{} is at {}, which this worker lacks",
                        model.label(),
                        folder.display()
                    )));
                }
                Ok(Base::Folder(folder))
            }
        }
    }

    fn input_size(base: &Base) -> Result<i64, JobError> {
        match base {
            Base::Scratch(preset) => Ok(preset.config().image_size),
            Base::Folder(folder) => {
                buybuddy_vision::Dinov2Config::read(&folder.join("config.json"))
                    .map(|c| c.image_size)
                    .map_err(JobError::Permanent)
            }
        }
    }

    /// The version's train and validation images at the input size, with
    /// their products as labels (0.. in order of first appearance).
    async fn load_examples(
        ctx: &JobContext,
        storage: &Storage,
        version_id: i32,
        size: u32,
    ) -> Result<(Examples, Examples), JobError> {
        let items = db::training::items(ctx.pool(), version_id).await?;
        if let Some(item) = items.iter().find(|i| !i.rendered) {
            return Err(permanent(format!(
                "the dataset version is still rendering (image {} is not ready); start the run \
                 when it is done",
                item.ordinal
            )));
        }
        let count = |split: &str| items.iter().filter(|i| i.split == split).count();
        if count("train") == 0 {
            return Err(permanent(
                "the dataset version has no training images (a recognition split needs a train share)",
            ));
        }
        ctx.stage(
            "load",
            1,
            &format!(
                "Loading {} training and {} validation images at {size}x{size}",
                count("train"),
                count("val")
            ),
        )
        .await?;
        let mut train = Examples::default();
        let mut val = Examples::default();
        let mut labels: [HashMap<Uuid, u32>; 2] = [HashMap::new(), HashMap::new()];
        for chunk in items.chunks(32) {
            let images = futures::future::try_join_all(chunk.iter().map(|item| async move {
                let bytes = storage.get(&item.image_key).await.map_err(|e| {
                    permanent(format!("image {} of the version: {e}", item.image_key))
                })?;
                Ok::<_, JobError>(bytes)
            }))
            .await?;
            let decoded = tokio::task::spawn_blocking(move || {
                images
                    .iter()
                    .map(|b| image::load_from_memory(b).map(|i| i.to_rgb8()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(blocking_failed)?
            .map_err(|e| permanent(format!("an image of the version cannot be read: {e}")))?;
            for (item, image) in chunk.iter().zip(decoded) {
                let which = usize::from(item.split == "val");
                let product = item.product_id.unwrap_or_default();
                let next = labels[which].len() as u32;
                let label = *labels[which].entry(product).or_insert(next);
                let sample = Sample {
                    label,
                    video: label,
                    position: item.position.max(0) as u32,
                };
                if which == 1 {
                    // Validation scores the frames as filmed.
                    if item.kind == "frame" {
                        val.push(&image, size, sample);
                    }
                } else {
                    train.push(&image, size, sample);
                }
            }
        }
        Ok((train, val))
    }

    /// Runs steps `trainer.step..end` of the epoch whose first step is
    /// `first` on a blocking thread.
    async fn steps(
        trainer: Trainer,
        examples: &std::sync::Arc<Examples>,
        batches: &std::sync::Arc<Vec<Vec<usize>>>,
        first: usize,
        end: usize,
        augmentation: Option<buybuddy_dataset::augment::Augment>,
        seed: u64,
    ) -> Result<(Trainer, Vec<StepStats>, f64), JobError> {
        let examples = examples.clone();
        let batches = batches.clone();
        tokio::task::spawn_blocking(move || {
            let mut trainer = trainer;
            let started = Instant::now();
            let mut stats = Vec::new();
            while trainer.step < end {
                let batch = &batches[trainer.step - first];
                let step =
                    training::step(&mut trainer, &examples, batch, augmentation.as_ref(), seed)
                        .map_err(JobError::Permanent)?;
                stats.push(step);
            }
            Ok((trainer, stats, started.elapsed().as_secs_f64()))
        })
        .await
        .map_err(blocking_failed)?
    }

    /// The validation figures of the model as it is.
    async fn evaluate(
        trainer: Trainer,
        val: &std::sync::Arc<Examples>,
        window: u32,
    ) -> Result<(Trainer, Scores), JobError> {
        let val = val.clone();
        tokio::task::spawn_blocking(move || {
            let scores = training::scores(&trainer, &val, window).map_err(JobError::Permanent)?;
            Ok((trainer, scores))
        })
        .await
        .map_err(blocking_failed)?
    }

    /// The classic descriptor's figures on the same frames.
    async fn classic_scores(
        val: &std::sync::Arc<Examples>,
        window: u32,
    ) -> Result<Scores, JobError> {
        let val = val.clone();
        tokio::task::spawn_blocking(move || {
            training::classic_scores(&val, window).map_err(JobError::Permanent)
        })
        .await
        .map_err(blocking_failed)?
    }

    async fn record_val(
        pool: &sqlx::PgPool,
        run_id: i32,
        step: usize,
        epoch: usize,
        scores: &Scores,
    ) -> Result<(), JobError> {
        db::training::record(
            pool,
            run_id,
            &db::training::Metric {
                kind: "val".to_owned(),
                step: step as i32,
                epoch: epoch as i32,
                loss: None,
                lr: None,
                images_per_s: None,
                recall_at_1: Some(scores.recall_at_1),
                recall_at_5: Some(scores.recall_at_5),
                map_at_r: Some(scores.map_at_r),
                at: chrono::Utc::now(),
            },
        )
        .await?;
        Ok(())
    }

    /// A checkpoint written to a scratch file, before it goes to storage.
    struct Written {
        _scratch: tempfile::TempDir,
        path: std::path::PathBuf,
        size: u64,
        step: usize,
    }

    fn write_checkpoint(trainer: &Trainer) -> Result<Written, JobError> {
        let scratch = tempfile::tempdir().map_err(|e| JobError::Transient(e.into()))?;
        let path = scratch.path().join("checkpoint.safetensors");
        tch::no_grad(|| trainer.save_checkpoint(&path)).map_err(JobError::Transient)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| JobError::Transient(e.into()))?
            .len();
        Ok(Written {
            _scratch: scratch,
            path,
            size,
            step: trainer.step,
        })
    }

    /// Stores a written checkpoint and records it.
    #[allow(clippy::too_many_arguments)]
    async fn save(
        ctx: &JobContext,
        storage: &Storage,
        run_id: i32,
        written: Written,
        spe: usize,
        rng_state: u64,
        reason: &str,
        map_at_r: Option<f64>,
    ) -> Result<(), JobError> {
        let Written {
            path, size, step, ..
        } = &written;
        let (size, step) = (*size, *step);
        let key = crate::keys::training_checkpoint(run_id, step);
        storage
            .put_file(&key, path, "application/octet-stream")
            .await
            .map_err(|e| JobError::Transient(anyhow!(e)))?;
        db::training::add_checkpoint(
            ctx.pool(),
            run_id,
            &Checkpoint {
                step: step as i32,
                epoch: (step / spe) as i32,
                rng_state: rng_state as i64,
                storage_key: key,
                size: size as i64,
                reason: reason.to_owned(),
                map_at_r,
                created_at: chrono::Utc::now(),
            },
        )
        .await?;
        ctx.event(
            Level::Info,
            &format!(
                "Checkpoint at step {step} ({reason}, {:.1} MB)",
                size as f64 / 1e6
            ),
        )
        .await
    }

    async fn restore(
        storage: &Storage,
        trainer: Trainer,
        checkpoint: &Checkpoint,
    ) -> Result<Trainer, JobError> {
        let bytes = storage.get(&checkpoint.storage_key).await.map_err(|e| {
            permanent(format!(
                "checkpoint {} cannot be read: {e}",
                checkpoint.storage_key
            ))
        })?;
        let step = checkpoint.step as usize;
        tokio::task::spawn_blocking(move || {
            let scratch = tempfile::tempdir()?;
            let path = scratch.path().join("checkpoint.safetensors");
            std::fs::write(&path, &bytes)?;
            let mut trainer = trainer;
            trainer.load_checkpoint(&path, step)?;
            Ok::<_, anyhow::Error>(trainer)
        })
        .await
        .map_err(blocking_failed)?
        .map_err(JobError::Permanent)
    }

    /// Registers the best checkpoint (by validation mAP@R, the earliest of
    /// equals) as a model, stored as a DINOv2 folder.
    async fn register(
        ctx: &JobContext,
        storage: &Storage,
        run: &db::training::Run,
        trainer: Trainer,
    ) -> Result<Value, JobError> {
        let pool = ctx.pool();
        let checkpoints = db::training::checkpoints(pool, run.id).await?;
        let best = checkpoints
            .iter()
            .filter(|c| c.reason == "epoch" && c.map_at_r.is_some())
            .min_by(|a, b| {
                b.map_at_r
                    .unwrap_or(0.0)
                    .total_cmp(&a.map_at_r.unwrap_or(0.0))
                    .then(a.step.cmp(&b.step))
            })
            .cloned()
            .ok_or_else(|| permanent("the run has no epoch checkpoint to register"))?;
        ctx.stage(
            "register",
            98,
            &format!(
                "Registering the checkpoint of step {} (validation mAP@R {:.3})",
                best.step,
                best.map_at_r.unwrap_or(0.0)
            ),
        )
        .await?;
        let trainer = restore(storage, trainer, &best).await?;
        let scratch = tempfile::tempdir().map_err(|e| JobError::Transient(e.into()))?;
        let folder = scratch.path().to_owned();
        let (trainer, weights_hash) = tokio::task::spawn_blocking(move || {
            trainer.save_model(&folder)?;
            let hash = sha256_file(&folder.join("model.safetensors"))?;
            Ok::<_, anyhow::Error>((trainer, hash))
        })
        .await
        .map_err(blocking_failed)?
        .map_err(JobError::Transient)?;
        let prefix = crate::keys::trained_model(run.id);
        crate::models::store_folder(storage, &prefix, scratch.path())
            .await
            .map_err(JobError::Transient)?;
        let metrics = db::training::metrics(pool, run.id)
            .await?
            .into_iter()
            .find(|m| m.kind == "val" && m.step == best.step);
        let info = buybuddy_worker::embed::ModelInfo {
            kind: "dinov2",
            name: format!("train-{}", run.id),
            dims: trainer.dims() as usize,
            config: json!({
                "storage": prefix,
                "run_id": run.id,
                "run": run.name,
                "version_id": run.version_id,
                "step": best.step,
                "architecture": trainer.config().size_name(),
                "config": trainer.config(),
                "metrics": metrics,
                "baseline": run.baseline,
            }),
            weights_hash,
        };
        let model = db::embeddings::register(pool, &info, false).await?;
        db::training::finish(pool, run.id, Some(model.id)).await?;
        ctx.stage("done", 100, &format!("Registered as {}", model.label()))
            .await?;
        Ok(json!({
            "run_id": run.id,
            "model_id": model.id,
            "best_step": best.step,
            "map_at_r": best.map_at_r,
            "steps": trainer.step,
        }))
    }

    fn sha256_file(path: &Path) -> anyhow::Result<String> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        Ok(format!("{:x}", hasher.finalize()))
    }
}
