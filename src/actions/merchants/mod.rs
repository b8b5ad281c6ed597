//! Merchants and the assignment of their product lists to the directory:
//! import a list (CSV, columns mapped to our fields, bad lines named and
//! the choice of importing the good ones or nothing), suggestions by
//! barcode, name and image, decisions line by line or in bulk, conflicts,
//! the history of every line, and the export.

pub mod csv;
mod review;
pub mod sample;
pub mod score;

pub use review::{
    Choice, LineView, SuggestionView, bulk_accept, bulk_outcome, decide, line_view, next_line,
};

use std::collections::BTreeMap;

use anyhow::anyhow;
use bytes::Bytes;
use serde::Serialize;
use uuid::Uuid;

use self::csv::{BadLine, Field, Mapping, Table};
use super::{ActionError, Ctx};
use crate::{
    db::{
        self,
        merchants::{Import, ImportFile, Merchant},
    },
    jobs::{JobSpec, merchant_images::MerchantImages, merchant_suggest::MerchantSuggest},
    keys,
    queue::{self, Enqueue},
};

/// The largest list file.
pub const MAX_LIST_BYTES: usize = 200 << 20;

/// Adds a merchant.
pub async fn create(ctx: Ctx<'_>, code: &str, name: &str) -> Result<Merchant, ActionError> {
    let (code, name) = (code.trim(), name.trim());
    let mut errors = super::FieldErrors::new();
    if code.is_empty()
        || code.len() > 40
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        errors.insert(
            "code",
            "A code is 1 to 40 letters, digits, '.', '_' or '-'.".into(),
        );
    }
    if name.is_empty() {
        errors.insert("name", "Give the merchant a name.".into());
    }
    if !errors.is_empty() {
        return Err(ActionError::Invalid(errors));
    }
    if db::merchants::find(ctx.pool, code).await?.is_some() {
        return Err(ActionError::field(
            "code",
            format!("There is a merchant {code:?} already."),
        ));
    }
    Ok(db::merchants::create(ctx.pool, code, name).await?)
}

/// A merchant by id or code.
pub async fn find(ctx: Ctx<'_>, id_or_code: &str) -> Result<Merchant, ActionError> {
    db::merchants::find(ctx.pool, id_or_code.trim())
        .await?
        .ok_or_else(|| ActionError::NotFound(format!("There is no merchant {id_or_code:?}.")))
}

/// Reads a list file, refusing what is not one.
pub fn read_list(bytes: &[u8]) -> Result<Table, ActionError> {
    if bytes.len() > MAX_LIST_BYTES {
        return Err(ActionError::field(
            "file",
            format!(
                "The file is {} MB; the most accepted is {} MB.",
                bytes.len() >> 20,
                MAX_LIST_BYTES >> 20
            ),
        ));
    }
    csv::read(bytes).map_err(|e| ActionError::field("file", format!("{}.", super::capitalised(&e))))
}

/// The mapping to offer for a file: the merchant's last one where the file
/// has those headers, the guess from the header names for the rest.
pub fn offered_mapping(merchant: &Merchant, table: &Table) -> Mapping {
    let mut mapping = csv::guess(&table.headers);
    if let Ok(remembered) = serde_json::from_value::<Mapping>(merchant.mapping.clone()) {
        for (field, header) in remembered {
            if table.headers.contains(&header) {
                mapping.retain(|_, h| *h != header);
                mapping.insert(field, header);
            }
        }
    }
    mapping
}

/// Reads a mapping from form or request fields (`field -> header`; an empty
/// header maps nothing).
pub fn mapping_from(pairs: &BTreeMap<String, String>) -> Result<Mapping, ActionError> {
    let mut mapping = Mapping::new();
    for (field, header) in pairs {
        let Some(f) = Field::parse(field) else {
            return Err(ActionError::field(
                "mapping",
                format!(
                    "{field:?} is not a field; fields are sku, name, brand, size, barcode, image_url and price."
                ),
            ));
        };
        if !header.trim().is_empty() {
            mapping.insert(f, header.trim().to_owned());
        }
    }
    Ok(mapping)
}

/// Keeps an uploaded list in storage for the mapping step; returns its key.
pub async fn keep_upload(
    ctx: Ctx<'_>,
    merchant: &Merchant,
    bytes: Bytes,
) -> Result<String, ActionError> {
    let key = keys::merchant_upload(merchant.id);
    ctx.storage
        .put(&key, bytes, "text/csv")
        .await
        .map_err(|e| ActionError::Internal(anyhow!(e).context("keeping the uploaded list")))?;
    Ok(key)
}

/// An upload kept for the mapping step, refusing keys of other merchants.
pub async fn kept_upload(
    ctx: Ctx<'_>,
    merchant: &Merchant,
    key: &str,
) -> Result<Bytes, ActionError> {
    let prefix = format!("merchants/{}/uploads/", merchant.id);
    if !key.starts_with(&prefix) || key.contains("..") {
        return Err(ActionError::field("file", "Upload the file again."));
    }
    ctx.storage
        .get(key)
        .await
        .map_err(|_| ActionError::field("file", "The uploaded file is gone: upload it again."))
}

/// What to do with a file that has bad lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadLines {
    /// Import nothing, and say which lines are bad.
    Refuse,
    /// Import the good lines; the bad ones are listed in the import's report.
    ImportGood,
}

/// An import, or the bad lines that stopped it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Imported {
    Imported {
        import: Import,
        /// Jobs queued: the images to fetch, the suggestions to make.
        jobs: Vec<Uuid>,
    },
    /// Nothing was imported: these lines are bad and the file has this many
    /// good ones.
    BadLines { bad: Vec<BadLine>, good: usize },
}

/// Imports a list under a mapping.
pub async fn import(
    ctx: Ctx<'_>,
    merchant: &Merchant,
    file_name: &str,
    table: &Table,
    mapping: &Mapping,
    bad_lines: BadLines,
    user: Option<Uuid>,
) -> Result<Imported, ActionError> {
    let (good, bad) = csv::lines(table, mapping)
        .map_err(|e| ActionError::field("mapping", format!("{}.", super::capitalised(&e))))?;
    if good.is_empty() {
        return Err(ActionError::field(
            "file",
            format!(
                "No line can be imported ({} bad lines, first: line {}: {}).",
                bad.len(),
                bad.first().map_or(0, |b| b.line),
                bad.first().map_or("", |b| b.reason.as_str())
            ),
        ));
    }
    if !bad.is_empty() && bad_lines == BadLines::Refuse {
        return Ok(Imported::BadLines {
            good: good.len(),
            bad,
        });
    }
    let mapping_json =
        serde_json::to_value(mapping).map_err(|e| ActionError::Internal(e.into()))?;
    let import = db::merchants::import(
        ctx.pool,
        merchant.id,
        &ImportFile {
            file_name,
            encoding: table.encoding,
            delimiter: table.delimiter,
            rows: table.rows.len(),
            mapping: &mapping_json,
        },
        &good,
        &bad,
        user,
    )
    .await?;
    let jobs = follow_up(ctx, merchant).await?;
    Ok(Imported::Imported { import, jobs })
}

/// Queues what a changed list needs: its images fetched (when some wait),
/// then suggestions for its waiting lines.
pub async fn follow_up(ctx: Ctx<'_>, merchant: &Merchant) -> Result<Vec<Uuid>, ActionError> {
    let progress = db::merchants::progress(ctx.pool, merchant.id).await?;
    let mut jobs = Vec::new();
    if progress.images_queued > 0 {
        jobs.push(Enqueue::from(JobSpec::MerchantImages(MerchantImages {
            merchant_id: merchant.id,
        })));
    }
    if progress.waiting > 0 {
        jobs.push(Enqueue::from(JobSpec::MerchantSuggest(MerchantSuggest {})));
    }
    Ok(queue::enqueue(ctx.pool, ctx.queue, jobs).await?)
}

/// Makes every line of a merchant wait for suggestions again (after the
/// directory or the serving model changed), and queues the job.
pub async fn suggest_again(ctx: Ctx<'_>, merchant: &Merchant) -> Result<Uuid, ActionError> {
    db::merchants::reset_suggestions(ctx.pool, merchant.id).await?;
    let ids = queue::enqueue(
        ctx.pool,
        ctx.queue,
        vec![Enqueue::from(JobSpec::MerchantSuggest(MerchantSuggest {}))],
    )
    .await?;
    Ok(ids[0])
}

/// A merchant's lines and decisions, as CSV or JSON.
pub async fn export(
    ctx: Ctx<'_>,
    merchant: &Merchant,
    format: &str,
) -> Result<(&'static str, Vec<u8>), ActionError> {
    let rows = db::merchants::export(ctx.pool, merchant.id).await?;
    match format {
        "json" => Ok((
            "application/json",
            serde_json::to_vec_pretty(&serde_json::json!({
                "merchant": {"code": merchant.code, "name": merchant.name},
                "lines": rows,
            }))
            .map_err(|e| ActionError::Internal(e.into()))?,
        )),
        "csv" => {
            let mut writer = ::csv::Writer::from_writer(Vec::new());
            let io = |e: ::csv::Error| ActionError::Internal(e.into());
            writer
                .write_record([
                    "merchant_sku",
                    "name",
                    "status",
                    "barcode",
                    "product_id",
                    "suggested",
                    "score",
                    "decided_by",
                    "decided_at",
                ])
                .map_err(io)?;
            for r in &rows {
                writer
                    .write_record([
                        r.sku.clone(),
                        r.name.clone().unwrap_or_default(),
                        r.status.clone(),
                        r.barcode.clone().unwrap_or_default(),
                        r.product_id.map(|p| p.to_string()).unwrap_or_default(),
                        r.suggested.map(|s| s.to_string()).unwrap_or_default(),
                        r.score.map(|s| format!("{s:.3}")).unwrap_or_default(),
                        r.decided_by.clone().unwrap_or_default(),
                        r.decided_at.map(|d| d.to_rfc3339()).unwrap_or_default(),
                    ])
                    .map_err(io)?;
            }
            let bytes = writer
                .into_inner()
                .map_err(|e| ActionError::Internal(anyhow!("{e}")))?;
            Ok(("text/csv; charset=utf-8", bytes))
        }
        other => Err(ActionError::field(
            "format",
            format!("{other:?} is not a format; exports are csv and json."),
        )),
    }
}
