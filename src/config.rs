//! Configuration shared by several subcommands. Every value is a clap argument
//! backed by an environment variable; the README's table lists them all.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

/// A value that must never reach a log line or `--help` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that has to send it somewhere.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Where the database is and how to reach it.
#[derive(clap::Args, Debug, Clone)]
pub struct DbArgs {
    /// PostgreSQL (>= 15, with pgvector) connection URL. Without it, the embedded
    /// cluster in the data folder is started if needed and used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Folder for local state: the embedded PostgreSQL cluster and the local object store.
    #[arg(long, env = "BUYBUDDY_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,

    /// Loopback TCP port of the embedded PostgreSQL cluster.
    #[arg(long, env = "BUYBUDDY_PG_PORT", default_value_t = 54329)]
    pub embedded_pg_port: u16,

    /// Folder holding PostgreSQL's server programs (initdb, pg_ctl) for the embedded
    /// cluster; the newest /usr/lib/postgresql/*/bin is used when unset.
    #[arg(long, env = "BUYBUDDY_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// Most database connections one process opens.
    #[arg(long, env = "BUYBUDDY_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,

    /// How long to wait for a database connection before an operation fails
    /// (a worker that fails this way restarts and tries again).
    #[arg(long, env = "BUYBUDDY_DB_ACQUIRE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub db_acquire_timeout: Duration,
}

/// Parses durations written the human way: `250ms`, `30s`, `5m`, `1h 30m`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("{e} (write e.g. 500ms, 30s or 5m)"))
}

/// Formats a duration for messages: `1.5 s`, `250 ms`, `2 min 5 s`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        format!("{millis} ms")
    } else if millis < 60_000 {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        let secs = duration.as_secs();
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret: Secret = "postgres://u:hunter2@h/db".parse().unwrap();
        assert_eq!(format!("{secret}"), "[redacted]");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "postgres://u:hunter2@h/db");
    }

    #[test]
    fn durations_read_and_print_like_a_person_writes_them() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").unwrap_err().contains("30s"));
        assert_eq!(format_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2 min 5 s");
    }
}

/// Where frames, masks and uploaded videos are stored.
#[derive(clap::Args, Debug, Clone)]
pub struct StorageArgs {
    /// Object storage: `s3://bucket[/prefix]`, or a folder (the `storage` folder in
    /// the data folder when unset). S3 credentials and region come from the usual
    /// AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ...).
    #[arg(long, env = "BUYBUDDY_STORAGE")]
    pub storage: Option<String>,

    /// URL of an S3-compatible service (MinIO, RustFS, ...); AWS when unset.
    #[arg(long, env = "BUYBUDDY_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// Address S3 buckets in the path rather than the host name (most
    /// S3-compatible services want this).
    #[arg(long, env = "BUYBUDDY_S3_PATH_STYLE")]
    pub s3_path_style: bool,
}

impl StorageArgs {
    pub fn s3_settings(&self) -> buybuddy_worker::storage::S3Settings {
        buybuddy_worker::storage::S3Settings {
            endpoint: self.s3_endpoint.clone(),
            region: None,
            path_style: self.s3_path_style,
            credentials: None,
        }
    }

    /// The storage location, defaulting to the data folder's `storage`.
    pub fn location(&self, data_dir: &std::path::Path) -> String {
        self.storage
            .clone()
            .unwrap_or_else(|| data_dir.join("storage").display().to_string())
    }

    pub async fn open(
        &self,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<buybuddy_worker::storage::Storage> {
        let location = self.location(data_dir);
        buybuddy_worker::storage::Storage::open(&location, &self.s3_settings())
            .await
            .map_err(|e| anyhow::anyhow!("opening storage {location}: {e:#}"))
    }
}

/// How videos are turned into frames.
#[derive(clap::Args, Debug, Clone)]
pub struct PipelineArgs {
    /// Frames sampled from each video, evenly spaced.
    #[arg(long, env = "BUYBUDDY_FRAMES", default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub frames: u32,

    /// Background of the 518x518 images: `keep`, `transparent`, or a colour like `#ffffff`.
    #[arg(long, env = "BUYBUDDY_BACKGROUND", default_value = "keep")]
    pub background: buybuddy_worker::postprocess::Background,

    /// Largest video accepted, e.g. `2GiB` or `500MiB`.
    #[arg(long, env = "BUYBUDDY_MAX_VIDEO_SIZE", default_value = "2GiB", value_parser = parse_bytes)]
    pub max_video_size: u64,

    /// Longest wait for the next bytes of a video download before retrying.
    #[arg(long, env = "BUYBUDDY_DOWNLOAD_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub download_timeout: Duration,

    #[command(flatten)]
    pub gemini: GeminiArgs,

    #[command(flatten)]
    pub segmenter: SegmenterArgs,

    #[command(flatten)]
    pub embed: EmbedArgs,
}

/// Which model finds the product in the frames.
#[derive(clap::Args, Debug, Clone)]
pub struct SegmenterArgs {
    /// SAM 3 exported by vision/python/export_sam3.py: its `sam3.pt` or the folder
    /// holding it (with `sam3.json` and `tokenizer.json`). Without it the CPU
    /// segmenter for plain backgrounds is used.
    #[arg(long, env = "SAM3_MODEL_PATH")]
    pub sam3_model_path: Option<std::path::PathBuf>,

    /// Where SAM 3 runs: `auto` (the first GPU when CUDA is available, else the
    /// CPU), `cpu`, `cuda` or `cuda:N`.
    #[cfg(feature = "sam3")]
    #[arg(long, env = "DEVICE", default_value = "auto")]
    pub device: buybuddy_vision::DeviceChoice,
    /// Where SAM 3 would run (this build has no SAM 3).
    #[cfg(not(feature = "sam3"))]
    #[arg(long, env = "DEVICE", default_value = "auto")]
    pub device: String,

    /// Frames per SAM 3 forward pass.
    #[arg(long, env = "SAM3_BATCH_SIZE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub sam3_batch_size: u32,

    /// Lowest SAM 3 score (instance times presence) that counts as the product;
    /// frames where nothing reaches it are left out.
    #[arg(long, env = "SAM3_MIN_SCORE", default_value_t = 0.3)]
    pub sam3_min_score: f32,
}

impl SegmenterArgs {
    /// The configured segmenter; a configured model that cannot be loaded is an error here.
    pub fn open(&self) -> anyhow::Result<std::sync::Arc<dyn buybuddy_worker::segment::Segmenter>> {
        use buybuddy_worker::segment::ClassicSegmenter;
        let Some(path) = &self.sam3_model_path else {
            return Ok(std::sync::Arc::new(ClassicSegmenter::default()));
        };
        #[cfg(not(feature = "sam3"))]
        anyhow::bail!(
            "SAM3_MODEL_PATH={} but this buybuddy was built without SAM 3 (the `sam3` feature, \
             as in the server image): run workers from the worker image",
            path.display()
        );
        #[cfg(feature = "sam3")]
        self.open_sam3(path)
    }

    #[cfg(feature = "sam3")]
    fn open_sam3(
        &self,
        path: &std::path::Path,
    ) -> anyhow::Result<std::sync::Arc<dyn buybuddy_worker::segment::Segmenter>> {
        use anyhow::Context;
        use buybuddy_worker::segment::Sam3Segmenter;
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.sam3_min_score),
            "SAM3_MIN_SCORE must be between 0 and 1, not {}",
            self.sam3_min_score
        );
        let options = buybuddy_vision::Sam3Options {
            device: self.device,
            batch_size: self.sam3_batch_size as usize,
            select: buybuddy_vision::select::SelectParams {
                min_score: self.sam3_min_score,
                ..Default::default()
            },
        };
        let started = std::time::Instant::now();
        let segmenter = Sam3Segmenter::load(path, options)
            .with_context(|| format!("SAM3_MODEL_PATH={}", path.display()))?;
        tracing::info!(
            model = %segmenter.describe(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "segmenter loaded"
        );
        Ok(std::sync::Arc::new(segmenter))
    }
}

/// Which model turns frames and query photos into vectors.
#[derive(clap::Args, Debug, Clone)]
pub struct EmbedArgs {
    /// A DINOv2 folder in Hugging Face's layout (`config.json` and
    /// `model.safetensors`, e.g. a download of facebook/dinov2-small). Without
    /// it the classic CPU descriptor embeds. A folder that cannot be loaded
    /// stops the process at start.
    #[arg(long, env = "EMBED_MODEL_PATH")]
    pub embed_model_path: Option<std::path::PathBuf>,

    /// Where DINOv2 runs: `auto`, `cpu`, `cuda` or `cuda:N` (as for SAM 3).
    #[cfg(feature = "sam3")]
    #[arg(long, env = "EMBED_DEVICE", default_value = "auto")]
    pub embed_device: buybuddy_vision::DeviceChoice,
    /// Where DINOv2 would run (this build has no libtorch).
    #[cfg(not(feature = "sam3"))]
    #[arg(long, env = "EMBED_DEVICE", default_value = "auto")]
    pub embed_device: String,

    /// Images per DINOv2 forward pass.
    #[arg(long, env = "EMBED_BATCH_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub embed_batch_size: u32,

    /// On CUDA, run DINOv2 in full precision instead of fp16 autocast.
    #[arg(long, env = "EMBED_FULL_PRECISION")]
    pub embed_full_precision: bool,
}

impl EmbedArgs {
    /// The embedders of this process: the configured model loaded now (a
    /// broken folder is an error here), and how others are loaded on demand.
    pub fn open(&self) -> anyhow::Result<std::sync::Arc<buybuddy_worker::embed::Embedders>> {
        use buybuddy_worker::embed::{Embedders, LoadOptions};
        #[cfg(feature = "sam3")]
        let options = LoadOptions {
            dinov2: buybuddy_vision::Dinov2Options {
                device: self.embed_device,
                batch_size: self.embed_batch_size as usize,
                half: !self.embed_full_precision,
            },
        };
        #[cfg(not(feature = "sam3"))]
        let options = LoadOptions::default();
        let Some(path) = &self.embed_model_path else {
            return Ok(std::sync::Arc::new(Embedders::new(None, options)));
        };
        #[cfg(not(feature = "sam3"))]
        anyhow::bail!(
            "EMBED_MODEL_PATH={} but this buybuddy was built without libtorch (the `sam3` \
             feature, as in the server image): run workers from the worker image",
            path.display()
        );
        #[cfg(feature = "sam3")]
        {
            use anyhow::Context;
            let started = std::time::Instant::now();
            let model = buybuddy_worker::embed::Dinov2Embedder::load(path, options.dinov2)
                .with_context(|| format!("EMBED_MODEL_PATH={}", path.display()))?;
            tracing::info!(
                model = %model.describe(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "embedding model loaded"
            );
            Ok(std::sync::Arc::new(Embedders::new(
                Some(std::sync::Arc::new(model)),
                options,
            )))
        }
    }
}

/// The Gemini API, which reads a product's catalog metadata from its video.
#[derive(clap::Args, Debug, Clone)]
pub struct GeminiArgs {
    /// Gemini API key. Without it the metadata stage is skipped and the
    /// segmentation prompt falls back to the catalog name.
    #[arg(long, env = "GEMINI_API_KEY", hide_env_values = true)]
    pub gemini_api_key: Option<Secret>,

    /// Gemini model that reads the videos.
    #[arg(long, env = "GEMINI_MODEL", default_value = buybuddy_worker::gemini::DEFAULT_MODEL)]
    pub gemini_model: String,

    /// Gemini API endpoint (scheme, host and optional path prefix).
    #[arg(long, env = "GEMINI_BASE_URL", default_value = buybuddy_worker::gemini::DEFAULT_BASE_URL)]
    pub gemini_base_url: String,

    /// Videos up to this size are sent inside the request; larger ones through
    /// the Files API (upload, wait until processed, delete afterwards).
    #[arg(long, env = "GEMINI_INLINE_LIMIT", default_value = "14MiB", value_parser = parse_bytes)]
    pub gemini_inline_limit: u64,

    /// Longest wait for one Gemini answer.
    #[arg(long, env = "GEMINI_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    pub gemini_timeout: Duration,

    /// Tries per Gemini request for rate limits, 5xx answers and timeouts.
    #[arg(long, env = "GEMINI_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub gemini_attempts: u32,
}

impl GeminiArgs {
    /// The client, when a key is configured.
    pub fn client(&self) -> anyhow::Result<Option<buybuddy_worker::gemini::Gemini>> {
        let Some(key) = self
            .gemini_api_key
            .as_ref()
            .filter(|k| !k.expose().trim().is_empty())
        else {
            return Ok(None);
        };
        let url = self.gemini_base_url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("GEMINI_BASE_URL {url:?} is not an http(s) URL");
        }
        let settings = buybuddy_worker::gemini::Settings {
            model: self.gemini_model.trim().to_owned(),
            base_url: url.to_owned(),
            inline_limit: self.gemini_inline_limit,
            request_timeout: self.gemini_timeout,
            attempts: self.gemini_attempts,
            ..buybuddy_worker::gemini::Settings::new(key.expose().trim())
        };
        Ok(Some(buybuddy_worker::gemini::Gemini::new(settings)?))
    }
}

/// The Buybuddy legacy API, source of the product catalog.
#[derive(clap::Args, Debug, Clone)]
pub struct BuybuddyArgs {
    /// Base URL of the Buybuddy legacy API.
    #[arg(long, env = "BUYBUDDY_API_URL")]
    pub buybuddy_api_url: Option<String>,

    /// User name for the Buybuddy API.
    #[arg(long, env = "BUYBUDDY_USERNAME")]
    pub buybuddy_username: Option<String>,

    /// Password for the Buybuddy API.
    #[arg(long, env = "BUYBUDDY_PASSWORD", hide_env_values = true)]
    pub buybuddy_password: Option<Secret>,

    /// Products asked per page of the catalog.
    #[arg(long, env = "BUYBUDDY_API_PAGE_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub buybuddy_page_size: u32,
}

impl BuybuddyArgs {
    /// The client, when the API is configured; an error names what is missing.
    pub fn client(&self) -> anyhow::Result<Option<buybuddy_worker::buybuddy::Buybuddy>> {
        let Some(url) = self
            .buybuddy_api_url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        else {
            return Ok(None);
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("BUYBUDDY_API_URL {url:?} is not an http(s) URL");
        }
        let (Some(username), Some(password)) = (
            self.buybuddy_username.as_deref(),
            self.buybuddy_password.as_ref(),
        ) else {
            anyhow::bail!(
                "BUYBUDDY_API_URL is set but BUYBUDDY_USERNAME or BUYBUDDY_PASSWORD is not"
            );
        };
        let settings = buybuddy_worker::buybuddy::Settings {
            page_size: self.buybuddy_page_size,
            ..buybuddy_worker::buybuddy::Settings::new(url, username, password.expose())
        };
        Ok(Some(buybuddy_worker::buybuddy::Buybuddy::new(settings)?))
    }
}

/// Reads sizes like `2GiB`, `500MiB`, `64KiB` or a number of bytes.
pub fn parse_bytes(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{value:?} is not a size like 2GiB or 500MiB"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?}: use KiB, MiB or GiB")),
    };
    Ok(number * factor)
}

#[cfg(test)]
mod size_tests {
    use super::parse_bytes;

    #[test]
    fn sizes_read_with_their_units() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("500MiB"), Ok(500 << 20));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("3TB").is_err());
    }
}
