//! `export`: writes one dataset version as a COCO, YOLO or recognition-folder
//! ZIP into storage. The archive is built in a scratch file while the images
//! stream through (constant memory), then stored whole under its key; only
//! then does the export row get its key, size and SHA-256, so a cancelled or
//! failed export leaves nothing that can be downloaded. The same version gives
//! the same bytes every time.

use std::{
    io::{BufWriter, Write},
    time::Duration,
};

use anyhow::anyhow;
use buybuddy_dataset::{
    export::{Exporter, Format, Item},
    plan::Task,
    split::{Rule, Split},
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Job, JobContext, JobError};
use crate::db::{
    self,
    datasets::{Dataset, ItemRow, SplitCounts, VersionState},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    pub export_id: i32,
}

/// Items read from the database per page.
const PAGE: i64 = 256;

impl Job for Export {
    const KIND: &'static str = "export";

    fn default_max_attempts(&self) -> u32 {
        3
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(6 * 3600)
    }

    async fn run(&self, ctx: &JobContext) -> Result<Value, JobError> {
        let pool = ctx.pool();
        let storage = ctx.resources.storage()?;
        let gone = |what: &str| JobError::Permanent(anyhow!("{what} is gone"));
        let export = db::datasets::export(pool, self.export_id)
            .await?
            .ok_or_else(|| gone(&format!("export #{}", self.export_id)))?;
        let state = db::datasets::version_state(pool, export.version_id)
            .await?
            .ok_or_else(|| gone("the dataset version"))?;
        let dataset = db::datasets::get(pool, state.version.dataset_id)
            .await?
            .ok_or_else(|| gone("the dataset"))?;
        if !state.ready() {
            return Err(JobError::Permanent(anyhow!(
                "version {} has {} of {} images rendered; export it once rendering is done",
                state.version.number,
                state.rendered,
                state.images
            )));
        }
        let counts = db::datasets::split_counts(pool, state.version.id).await?;
        let format = export.format();
        let task = state.version.task();
        let classes: Vec<String> = state
            .version
            .classes
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let splits: Vec<Split> = Split::ALL
            .into_iter()
            .filter(|s| counts.iter().any(|c| c.split == s.as_str()))
            .collect();
        let text = manifest(&dataset, &state, &counts, format);
        ctx.stage(
            "write",
            1,
            &format!("Writing {} images as {}", state.images, format.as_str()),
        )
        .await?;

        // The archive is written on a blocking thread fed page by page.
        let scratch = tempfile::NamedTempFile::new_in(&ctx.resources.video.scratch)
            .or_else(|_| tempfile::NamedTempFile::new())
            .map_err(|e| JobError::Transient(anyhow!(e)))?;
        let file = scratch
            .reopen()
            .map_err(|e| JobError::Transient(anyhow!(e)))?;
        let (send, mut receive) = tokio::sync::mpsc::channel::<(ItemRow, Bytes)>(64);
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
            let out = Hashing::new(BufWriter::with_capacity(1 << 20, file));
            let mut exporter = Exporter::new(out, format, classes, task == Task::Segment, &text)?;
            while let Some((row, png)) = receive.blocking_recv() {
                let objects = row
                    .objects
                    .as_ref()
                    .map(|o| o.0.clone())
                    .unwrap_or_default();
                let name = format!("{:07}", row.ordinal);
                exporter.add(&Item {
                    split: row.split(),
                    name: &name,
                    png: &png,
                    width: row.width.unwrap_or(0) as u32,
                    height: row.height.unwrap_or(0) as u32,
                    objects,
                })?;
            }
            let (out, size) = exporter.finish(&splits)?;
            let (mut inner, sha) = out.finish();
            inner.flush()?;
            Ok((size, sha))
        });
        let mut after = -1;
        let mut sent = 0i64;
        let total = state.images.max(1);
        let feed = async {
            loop {
                let rows = db::datasets::items_after(pool, state.version.id, after, PAGE).await?;
                let Some(last) = rows.last() else { break };
                after = last.ordinal;
                let pngs = futures::future::try_join_all(rows.iter().map(|r| async {
                    storage
                        .get(&r.image_key)
                        .await
                        .map_err(|e| JobError::Transient(anyhow!("reading {}: {e}", r.image_key)))
                }))
                .await?;
                for (row, png) in rows.into_iter().zip(pngs) {
                    if send.send((row, png)).await.is_err() {
                        // The writer stopped; its error says why.
                        return Ok(());
                    }
                }
                sent += PAGE;
                ctx.progress((1 + sent.min(total) * 90 / total) as u8)
                    .await?;
            }
            Ok::<(), JobError>(())
        };
        let fed = feed.await;
        drop(send);
        let written = writer
            .await
            .map_err(|e| JobError::Transient(anyhow!(e)))?
            .map_err(|e| JobError::Transient(anyhow!("writing the archive: {e}")));
        fed?;
        let (size, sha) = written?;
        ctx.stage("store", 92, &format!("Storing the archive ({size} bytes)"))
            .await?;
        let key = crate::keys::dataset_export(&state.version.prefix(), export.id, format.as_str());
        storage
            .put_file(&key, scratch.path(), "application/zip")
            .await
            .map_err(|e| JobError::Transient(anyhow!(e)))?;
        db::datasets::finish_export(pool, export.id, &key, size, &sha).await?;
        Ok(json!({
            "export_id": export.id,
            "format": format.as_str(),
            "images": state.images,
            "size": size,
            "sha256": sha,
        }))
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
        }
    }

    fn finish(self) -> (W, String) {
        let digest = self.hash.finalize();
        let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
        (self.inner, hex)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The archive's `MANIFEST.md`: what the version is, how it was split and
/// drawn, and what each split holds. Only the version's own data goes in (no
/// clock), so the same version gives the same manifest.
pub fn manifest(
    dataset: &Dataset,
    state: &VersionState,
    counts: &[SplitCounts],
    format: Format,
) -> String {
    let version = &state.version;
    let task = version.task();
    let rule = match version.rule.as_str() {
        "frame_blocks" => Rule::FrameBlocks,
        _ => Rule::ByProduct,
    };
    let mut m = String::new();
    m.push_str(&format!(
        "# {} v{}\n\nDataset `{}`, version {}, made {} UTC, exported as {}.\n\n",
        dataset.name,
        version.number,
        dataset.name,
        version.number,
        version.created_at.format("%Y-%m-%d %H:%M:%S"),
        format.as_str()
    ));
    m.push_str(&format!("- Task: {}\n", task.label()));
    m.push_str(&format!("- Split rule: {}\n", rule.describe()));
    if version.guard_frames > 0 {
        m.push_str(&format!(
            "- Guard frames left out: {}\n",
            version.guard_frames
        ));
    }
    m.push_str(&format!("- Classes: {}\n\n", version.classes.len()));
    m.push_str("| split | products | frames | augmented | composites | images | boxes |\n");
    m.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for c in counts {
        m.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            c.split, c.products, c.frames, c.augmented, c.composites, c.images, c.boxes
        ));
    }
    let pretty = |key: &str| {
        serde_json::to_string_pretty(version.config.get(key).unwrap_or(&Value::Null))
            .unwrap_or_default()
    };
    m.push_str("\n## Settings\n\nSelection and split:\n\n```json\n");
    m.push_str(&pretty("selection"));
    m.push_str("\n```\n\n```json\n");
    m.push_str(&pretty("settings"));
    m.push_str("\n```\n\nAugmentation and shelf composites:\n\n```json\n");
    m.push_str(&pretty("render"));
    m.push_str("\n```\n\n## Classes\n\n| id | name | product |\n|---:|---|---|\n");
    for (i, c) in version.classes.iter().enumerate() {
        m.push_str(&format!("| {i} | {} | {} |\n", c.name, c.label));
    }
    m
}
