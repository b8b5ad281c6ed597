//! Queries on merchants, their product lists (lines), imports, the
//! suggestions made for each line, and the decisions people make about them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Row, types::Json};
use uuid::Uuid;

use crate::actions::merchants::{
    csv::{BadLine, LineInput},
    score::{Part, Signals},
};

/// A row of `merchants`, with how far its list is.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Merchant {
    pub id: i32,
    pub code: String,
    pub name: String,
    pub mapping: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

const MERCHANT_COLUMNS: &str = "id, code, name, mapping, created_at";

pub async fn create(pool: &PgPool, code: &str, name: &str) -> sqlx::Result<Merchant> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO merchants (code, name) VALUES ($1, $2) RETURNING {MERCHANT_COLUMNS}"
    )))
    .bind(code)
    .bind(name)
    .fetch_one(pool)
    .await
}

/// A merchant by id or code.
pub async fn find(db: impl PgExecutor<'_>, id_or_code: &str) -> sqlx::Result<Option<Merchant>> {
    let id = id_or_code.parse::<i32>().ok();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchants
         WHERE ($1::int IS NOT NULL AND id = $1) OR code = $2
         ORDER BY (id = $1) DESC NULLS LAST LIMIT 1"
    )))
    .bind(id)
    .bind(id_or_code)
    .fetch_optional(db)
    .await
}

/// How far a merchant's list is.
#[derive(Debug, Clone, Copy, Default, Serialize, sqlx::FromRow)]
pub struct Progress {
    /// Lines in the list (removed ones left out).
    pub lines: i64,
    pub assigned: i64,
    pub absent: i64,
    pub undecided: i64,
    /// Lines waiting for their suggestions.
    pub waiting: i64,
    /// Images still to fetch, and those that failed.
    pub images_queued: i64,
    pub images_failed: i64,
    /// Products that two or more lines are assigned to.
    pub conflicts: i64,
}

pub async fn progress(db: impl PgExecutor<'_>, merchant: i32) -> sqlx::Result<Progress> {
    sqlx::query_as(
        "SELECT count(*) AS lines,
                count(*) FILTER (WHERE a.status = 'assigned') AS assigned,
                count(*) FILTER (WHERE a.status = 'absent') AS absent,
                count(*) FILTER (WHERE a.status IS NULL OR a.status = 'cleared') AS undecided,
                count(*) FILTER (WHERE l.suggested_at IS NULL) AS waiting,
                count(*) FILTER (WHERE l.image_state = 'queued') AS images_queued,
                count(*) FILTER (WHERE l.image_state = 'failed') AS images_failed,
                (SELECT count(*) FROM (
                    SELECT a2.product_id FROM merchant_lines l2
                    JOIN merchant_assignments a2 ON a2.id = l2.assignment_id
                    WHERE l2.merchant_id = $1 AND l2.removed_at IS NULL AND a2.status = 'assigned'
                    GROUP BY a2.product_id HAVING count(*) > 1) c) AS conflicts
         FROM merchant_lines l
         LEFT JOIN merchant_assignments a ON a.id = l.assignment_id
         WHERE l.merchant_id = $1 AND l.removed_at IS NULL",
    )
    .bind(merchant)
    .fetch_one(db)
    .await
}

/// Every merchant with its progress.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<(Merchant, Progress)>> {
    let merchants: Vec<Merchant> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MERCHANT_COLUMNS} FROM merchants ORDER BY name, id"
    )))
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(merchants.len());
    for m in merchants {
        let p = progress(pool, m.id).await?;
        out.push((m, p));
    }
    Ok(out)
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct Import {
    pub id: i32,
    pub file_name: String,
    pub encoding: String,
    pub delimiter: String,
    pub rows: i32,
    pub added: i32,
    pub changed: i32,
    pub unchanged: i32,
    pub removed: i32,
    pub skipped: Json<Vec<BadLine>>,
    pub created_at: DateTime<Utc>,
}

/// The file an import read.
#[derive(Debug, Clone)]
pub struct ImportFile<'a> {
    pub file_name: &'a str,
    pub encoding: &'a str,
    pub delimiter: char,
    pub rows: usize,
    pub mapping: &'a serde_json::Value,
}

/// Writes a list's lines in one transaction: new SKUs are added, changed
/// ones updated (and suggested again), SKUs the file no longer has are
/// marked removed; the mapping is kept for the next import.
pub async fn import(
    pool: &PgPool,
    merchant: i32,
    file: &ImportFile<'_>,
    lines: &[LineInput],
    skipped: &[BadLine],
    user: Option<Uuid>,
) -> sqlx::Result<Import> {
    let mut tx = pool.begin().await?;
    // One import of a merchant at a time: the removed lines are those the
    // file lacks, which only holds if no other import writes meanwhile.
    sqlx::query("SELECT id FROM merchants WHERE id = $1 FOR UPDATE")
        .bind(merchant)
        .execute(&mut *tx)
        .await?;
    let text = |f: fn(&LineInput) -> &Option<String>| -> Vec<Option<String>> {
        lines.iter().map(|l| f(l).clone()).collect()
    };
    let skus: Vec<&str> = lines.iter().map(|l| l.sku.as_str()).collect();
    let extras: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::json!(l.extra)).collect();
    let written: Vec<bool> = sqlx::query_scalar(
        "INSERT INTO merchant_lines AS m (merchant_id, sku, name, brand, size, barcode, image_url,
                                          price, extra, image_state)
         SELECT $1, v.sku, v.name, v.brand, v.size, v.barcode, v.image_url, v.price::numeric, v.extra,
                CASE WHEN v.image_url IS NULL THEN 'none' ELSE 'queued' END
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::text[], $9::jsonb[])
              AS v (sku, name, brand, size, barcode, image_url, price, extra)
         ON CONFLICT (merchant_id, sku) DO UPDATE
         SET name = EXCLUDED.name, brand = EXCLUDED.brand, size = EXCLUDED.size,
             barcode = EXCLUDED.barcode, image_url = EXCLUDED.image_url, price = EXCLUDED.price,
             extra = EXCLUDED.extra, removed_at = NULL, suggested_at = NULL,
             image_state = CASE WHEN EXCLUDED.image_url IS NOT DISTINCT FROM m.image_url
                                THEN m.image_state
                                WHEN EXCLUDED.image_url IS NULL THEN 'none' ELSE 'queued' END,
             image_key = CASE WHEN EXCLUDED.image_url IS NOT DISTINCT FROM m.image_url
                              THEN m.image_key END,
             image_error = CASE WHEN EXCLUDED.image_url IS NOT DISTINCT FROM m.image_url
                                THEN m.image_error END
         WHERE m.removed_at IS NOT NULL
            OR (m.name, m.brand, m.size, m.barcode, m.image_url, m.price, m.extra)
               IS DISTINCT FROM
               (EXCLUDED.name, EXCLUDED.brand, EXCLUDED.size, EXCLUDED.barcode,
                EXCLUDED.image_url, EXCLUDED.price, EXCLUDED.extra)
         RETURNING (xmax = 0)",
    )
    .bind(merchant)
    .bind(&skus)
    .bind(text(|l| &l.name))
    .bind(text(|l| &l.brand))
    .bind(text(|l| &l.size))
    .bind(text(|l| &l.barcode))
    .bind(text(|l| &l.image_url))
    .bind(text(|l| &l.price))
    .bind(&extras)
    .fetch_all(&mut *tx)
    .await?;
    let added = written.iter().filter(|&&inserted| inserted).count();
    let changed = written.len() - added;
    let removed = sqlx::query(
        "UPDATE merchant_lines SET removed_at = now()
         WHERE merchant_id = $1 AND removed_at IS NULL AND sku <> ALL($2)",
    )
    .bind(merchant)
    .bind(&skus)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE merchants SET mapping = $2 WHERE id = $1")
        .bind(merchant)
        .bind(file.mapping)
        .execute(&mut *tx)
        .await?;
    let import: Import = sqlx::query_as(
        "INSERT INTO merchant_imports (merchant_id, file_name, encoding, delimiter, mapping, rows,
                                       added, changed, unchanged, removed, skipped, imported_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         RETURNING id, file_name, encoding, delimiter, rows, added, changed, unchanged, removed,
                   skipped, created_at",
    )
    .bind(merchant)
    .bind(file.file_name)
    .bind(file.encoding)
    .bind(match file.delimiter {
        '\t' => "tab".to_owned(),
        d => d.to_string(),
    })
    .bind(file.mapping)
    .bind(file.rows as i32)
    .bind(added as i32)
    .bind(changed as i32)
    .bind((lines.len() - written.len()) as i32)
    .bind(removed as i32)
    .bind(Json(skipped))
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(import)
}

pub async fn imports(pool: &PgPool, merchant: i32, limit: i64) -> sqlx::Result<Vec<Import>> {
    sqlx::query_as(
        "SELECT id, file_name, encoding, delimiter, rows, added, changed, unchanged, removed,
                skipped, created_at
         FROM merchant_imports WHERE merchant_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(merchant)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A line of a list, with its current decision.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Line {
    pub id: i64,
    pub merchant_id: i32,
    pub sku: String,
    pub name: Option<String>,
    pub brand: Option<String>,
    pub size: Option<String>,
    pub barcode: Option<String>,
    pub barcode_valid: Option<bool>,
    pub image_url: Option<String>,
    pub image_state: String,
    pub image_key: Option<String>,
    pub image_error: Option<String>,
    pub price: Option<String>,
    pub extra: serde_json::Value,
    pub removed_at: Option<DateTime<Utc>>,
    pub suggested_at: Option<DateTime<Utc>>,
    /// assigned, absent, or None (undecided, or cleared).
    pub status: Option<String>,
    pub product_id: Option<Uuid>,
    pub product_barcode: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub suggested: Option<bool>,
}

const LINE_SELECT: &str = "SELECT l.id, l.merchant_id, l.sku, l.name, l.brand, l.size, l.barcode,
        CASE WHEN l.barcode IS NULL THEN NULL ELSE gtin_valid(l.barcode) END AS barcode_valid,
        l.image_url, l.image_state, l.image_key, l.image_error, l.price::text AS price, l.extra,
        l.removed_at, l.suggested_at,
        CASE WHEN a.status = 'cleared' THEN NULL ELSE a.status END AS status,
        a.product_id, a.barcode AS product_barcode, u.email AS decided_by, a.decided_at, a.suggested
    FROM merchant_lines l
    LEFT JOIN merchant_assignments a ON a.id = l.assignment_id
    LEFT JOIN users u ON u.id = a.decided_by";

pub async fn line(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<Line>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{LINE_SELECT} WHERE l.id = $1"
    )))
    .bind(id)
    .fetch_optional(db)
    .await
}

pub async fn line_by_sku(
    db: impl PgExecutor<'_>,
    merchant: i32,
    sku: &str,
) -> sqlx::Result<Option<Line>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{LINE_SELECT} WHERE l.merchant_id = $1 AND l.sku = $2"
    )))
    .bind(merchant)
    .bind(sku)
    .fetch_optional(db)
    .await
}

/// Which lines a review or a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LineFilter {
    /// Undecided lines (skipped ones last).
    #[default]
    Unassigned,
    /// Undecided lines whose best suggestion is below the confident score.
    LowConfidence,
    /// Lines assigned to a product another line of the merchant is assigned to.
    Conflicts,
    /// Every line.
    All,
}

impl LineFilter {
    pub const ALL: [LineFilter; 4] = [
        LineFilter::Unassigned,
        LineFilter::LowConfidence,
        LineFilter::Conflicts,
        LineFilter::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LineFilter::Unassigned => "unassigned",
            LineFilter::LowConfidence => "low_confidence",
            LineFilter::Conflicts => "conflicts",
            LineFilter::All => "all",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    fn condition(self) -> &'static str {
        match self {
            LineFilter::Unassigned => "(a.status IS NULL OR a.status = 'cleared')",
            LineFilter::LowConfidence => {
                "(a.status IS NULL OR a.status = 'cleared')
                 AND coalesce((SELECT s.score FROM merchant_suggestions s
                               WHERE s.line_id = l.id AND s.rank = 1), 0) < $3"
            }
            LineFilter::Conflicts => {
                "a.status = 'assigned' AND EXISTS (
                    SELECT 1 FROM merchant_lines o JOIN merchant_assignments oa ON oa.id = o.assignment_id
                    WHERE o.merchant_id = l.merchant_id AND o.id <> l.id AND o.removed_at IS NULL
                      AND oa.status = 'assigned' AND oa.product_id = a.product_id)"
            }
            LineFilter::All => "true",
        }
    }
}

/// Lines of a merchant under a filter, in review order (skipped ones last).
pub async fn lines(
    pool: &PgPool,
    merchant: i32,
    filter: LineFilter,
    confident: f32,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<Line>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{LINE_SELECT}
         WHERE l.merchant_id = $1 AND l.removed_at IS NULL AND {condition}
           AND $2::bigint >= 0
         ORDER BY l.skipped_at NULLS FIRST, l.id
         LIMIT $4 OFFSET $2",
        condition = filter.condition()
    )))
    .bind(merchant)
    .bind(offset)
    .bind(confident)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn count_lines(
    pool: &PgPool,
    merchant: i32,
    filter: LineFilter,
    confident: f32,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM merchant_lines l
         LEFT JOIN merchant_assignments a ON a.id = l.assignment_id
         WHERE l.merchant_id = $1 AND l.removed_at IS NULL AND {condition} AND $2::int >= 0",
        condition = filter.condition()
    )))
    .bind(merchant)
    .bind(0)
    .bind(confident)
    .fetch_one(pool)
    .await
}

/// A stored suggestion.
#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    pub rank: i16,
    pub product_id: Uuid,
    pub score: f32,
    pub signals: Signals,
    pub parts: Vec<Part>,
    pub exact: bool,
}

/// What a suggestion's `parts` column holds.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Stored {
    pub signals: Signals,
    pub parts: Vec<Part>,
}

pub async fn suggestions(pool: &PgPool, line: i64) -> sqlx::Result<Vec<Suggestion>> {
    let rows = sqlx::query(
        "SELECT rank, product_id, score, parts, exact FROM merchant_suggestions
         WHERE line_id = $1 ORDER BY rank",
    )
    .bind(line)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let stored: Json<Stored> = row.get(3);
            Suggestion {
                rank: row.get(0),
                product_id: row.get(1),
                score: row.get(2),
                signals: stored.0.signals,
                parts: stored.0.parts,
                exact: row.get(4),
            }
        })
        .collect())
}

/// The signals of given (line, product) pairs, by the model whose vectors
/// compare images.
pub async fn signals(
    pool: &PgPool,
    pairs: &[(i64, Uuid)],
    model: Option<i32>,
) -> sqlx::Result<Vec<(i64, Uuid, Signals)>> {
    let lines: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let products: Vec<Uuid> = pairs.iter().map(|p| p.1).collect();
    let rows = sqlx::query(
        "SELECT v.line_id, v.product_id, s.*
         FROM unnest($1::bigint[], $2::uuid[]) AS v (line_id, product_id)
         CROSS JOIN LATERAL merchant_pair(v.line_id, v.product_id, $3) s",
    )
    .bind(&lines)
    .bind(&products)
    .bind(model)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("line_id")?,
                row.try_get("product_id")?,
                <Signals as sqlx::FromRow<_>>::from_row(row)?,
            ))
        })
        .collect()
}

pub const CANDIDATES_SQL: &str = include_str!("../../sql/merchant_candidates.sql");

/// The next waiting lines' candidates with their signals
/// (`sql/merchant_candidates.sql`): (line, product, found by, signals).
pub async fn candidates(pool: &PgPool) -> sqlx::Result<Vec<(i64, Uuid, String, Signals)>> {
    let rows = sqlx::query(CANDIDATES_SQL).fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("line_id")?,
                row.try_get("product_id")?,
                row.try_get("found_by")?,
                <Signals as sqlx::FromRow<_>>::from_row(row)?,
            ))
        })
        .collect()
}

/// The lines the candidates query would take next, with their image vector
/// of `model` when they have one: (line, vector).
pub async fn waiting(
    pool: &PgPool,
    model: Option<i32>,
    limit: i64,
) -> sqlx::Result<Vec<(i64, Option<Vec<f32>>)>> {
    sqlx::query_as(
        "SELECT l.id, e.embedding::real[]
         FROM merchant_lines l
         LEFT JOIN merchant_line_embeddings e ON e.line_id = l.id AND e.model_id = $1
         WHERE l.suggested_at IS NULL AND l.removed_at IS NULL
         ORDER BY l.id LIMIT $2",
    )
    .bind(model)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn count_waiting(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM merchant_lines WHERE suggested_at IS NULL AND removed_at IS NULL",
    )
    .fetch_one(pool)
    .await
}

/// A line's new suggestions, best first.
pub struct NewSuggestions {
    pub line: i64,
    pub ranked: Vec<(Uuid, f32, Stored, bool)>,
}

/// The database's clock: when a suggestion round starts.
pub async fn now(pool: &PgPool) -> sqlx::Result<DateTime<Utc>> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await
}

/// Replaces the suggestions of lines and marks them suggested, together. A
/// line changed since `started` (by an import, or its image fetched) keeps
/// waiting: what was weighed is no longer what it is.
pub async fn save_suggestions(
    pool: &PgPool,
    made: &[NewSuggestions],
    started: DateTime<Utc>,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let ids: Vec<i64> = made.iter().map(|m| m.line).collect();
    sqlx::query("DELETE FROM merchant_suggestions WHERE line_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let mut lines = Vec::new();
    let mut ranks = Vec::new();
    let mut products = Vec::new();
    let mut scores = Vec::new();
    let mut parts = Vec::new();
    let mut exact = Vec::new();
    for m in made {
        for (rank, (product, score, stored, is_exact)) in m.ranked.iter().enumerate() {
            lines.push(m.line);
            ranks.push(rank as i16 + 1);
            products.push(*product);
            scores.push(*score);
            parts.push(serde_json::to_value(stored).unwrap_or_default());
            exact.push(*is_exact);
        }
    }
    sqlx::query(
        "INSERT INTO merchant_suggestions (line_id, rank, product_id, score, parts, exact)
         SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::uuid[], $4::real[], $5::jsonb[],
                              $6::boolean[])",
    )
    .bind(&lines)
    .bind(&ranks)
    .bind(&products)
    .bind(&scores)
    .bind(&parts)
    .bind(&exact)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE merchant_lines SET suggested_at = now() WHERE id = ANY($1) AND updated_at < $2",
    )
    .bind(&ids)
    .bind(started)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A decision about a line.
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// assigned, absent or cleared.
    pub status: &'static str,
    pub product: Option<(Uuid, String)>,
    pub suggested: bool,
    pub score: Option<f32>,
    /// review, bulk, api or cli.
    pub via: &'static str,
}

/// Records decisions (one per line) and makes each its line's current one.
pub async fn decide(
    pool: &PgPool,
    decisions: &[(i64, NewDecision)],
    user: Option<Uuid>,
) -> sqlx::Result<u64> {
    let lines: Vec<i64> = decisions.iter().map(|d| d.0).collect();
    let statuses: Vec<&str> = decisions.iter().map(|d| d.1.status).collect();
    let products: Vec<Option<Uuid>> = decisions
        .iter()
        .map(|d| d.1.product.as_ref().map(|p| p.0))
        .collect();
    let barcodes: Vec<Option<String>> = decisions
        .iter()
        .map(|d| d.1.product.as_ref().map(|p| p.1.clone()))
        .collect();
    let suggested: Vec<bool> = decisions.iter().map(|d| d.1.suggested).collect();
    let scores: Vec<Option<f32>> = decisions.iter().map(|d| d.1.score).collect();
    let vias: Vec<&str> = decisions.iter().map(|d| d.1.via).collect();
    let done = sqlx::query(
        "WITH added AS (
             INSERT INTO merchant_assignments (line_id, status, product_id, barcode, suggested,
                                               score, via, decided_by)
             SELECT v.*, $8 FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::text[],
                                        $5::boolean[], $6::real[], $7::text[]) AS v
             RETURNING id, line_id)
         UPDATE merchant_lines l SET assignment_id = added.id, skipped_at = NULL
         FROM added WHERE l.id = added.line_id",
    )
    .bind(&lines)
    .bind(&statuses)
    .bind(&products)
    .bind(&barcodes)
    .bind(&suggested)
    .bind(&scores)
    .bind(&vias)
    .bind(user)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(done)
}

pub async fn skip(pool: &PgPool, line: i64) -> sqlx::Result<bool> {
    Ok(
        sqlx::query("UPDATE merchant_lines SET skipped_at = now() WHERE id = $1")
            .bind(line)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}

/// A decision as the history shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Decision {
    pub id: i64,
    pub status: String,
    pub product_id: Option<Uuid>,
    pub barcode: Option<String>,
    pub suggested: bool,
    pub score: Option<f32>,
    pub via: String,
    pub decided_by: Option<String>,
    pub decided_at: DateTime<Utc>,
}

/// Every decision about a line, newest first.
pub async fn history(pool: &PgPool, line: i64) -> sqlx::Result<Vec<Decision>> {
    sqlx::query_as(
        "SELECT a.id, a.status, a.product_id, a.barcode, a.suggested, a.score, a.via,
                u.email AS decided_by, a.decided_at
         FROM merchant_assignments a LEFT JOIN users u ON u.id = a.decided_by
         WHERE a.line_id = $1 ORDER BY a.id DESC",
    )
    .bind(line)
    .fetch_all(pool)
    .await
}

/// Other lines of the merchant assigned to a product: (line id, SKU).
pub async fn assigned_elsewhere(
    pool: &PgPool,
    merchant: i32,
    product: Uuid,
    except: i64,
) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(
        "SELECT l.id, l.sku FROM merchant_lines l JOIN merchant_assignments a ON a.id = l.assignment_id
         WHERE l.merchant_id = $1 AND l.id <> $3 AND l.removed_at IS NULL
           AND a.status = 'assigned' AND a.product_id = $2
         ORDER BY l.id",
    )
    .bind(merchant)
    .bind(product)
    .bind(except)
    .fetch_all(pool)
    .await
}

/// Undecided lines whose best suggestion is an exact barcode match whose name
/// also agrees: (line, product, barcode, score).
pub async fn exact_matches(
    pool: &PgPool,
    merchant: i32,
) -> sqlx::Result<Vec<(i64, Uuid, String, f32)>> {
    sqlx::query_as(
        "SELECT l.id, s.product_id, p.barcode, s.score
         FROM merchant_lines l
         JOIN merchant_suggestions s ON s.line_id = l.id AND s.rank = 1 AND s.exact
         JOIN products p ON p.id = s.product_id
         LEFT JOIN merchant_assignments a ON a.id = l.assignment_id
         WHERE l.merchant_id = $1 AND l.removed_at IS NULL
           AND (a.status IS NULL OR a.status = 'cleared')
         ORDER BY l.id",
    )
    .bind(merchant)
    .fetch_all(pool)
    .await
}

/// A line as exported.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Exported {
    pub sku: String,
    pub name: Option<String>,
    pub status: String,
    pub barcode: Option<String>,
    pub product_id: Option<Uuid>,
    pub suggested: Option<bool>,
    pub score: Option<f32>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// A merchant's lines with their current decisions, by SKU.
pub async fn export(pool: &PgPool, merchant: i32) -> sqlx::Result<Vec<Exported>> {
    sqlx::query_as(
        "SELECT l.sku, l.name,
                CASE WHEN a.status IS NULL OR a.status = 'cleared' THEN 'undecided'
                     ELSE a.status END AS status,
                a.barcode, a.product_id, a.suggested, a.score, u.email AS decided_by,
                a.decided_at
         FROM merchant_lines l
         LEFT JOIN merchant_assignments a ON a.id = l.assignment_id AND a.status <> 'cleared'
         LEFT JOIN users u ON u.id = a.decided_by
         WHERE l.merchant_id = $1 AND l.removed_at IS NULL
         ORDER BY l.sku",
    )
    .bind(merchant)
    .fetch_all(pool)
    .await
}

/// Lines whose image waits to be fetched: (line, URL), oldest first.
pub async fn images_to_fetch(
    pool: &PgPool,
    merchant: i32,
    limit: i64,
) -> sqlx::Result<Vec<(i64, String)>> {
    sqlx::query_as(
        "SELECT id, image_url FROM merchant_lines
         WHERE merchant_id = $1 AND image_state = 'queued' AND image_url IS NOT NULL
           AND removed_at IS NULL
         ORDER BY id LIMIT $2",
    )
    .bind(merchant)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// An image's vector: the model's id and dimension, and the values.
pub type ImageVector = (i32, i32, Vec<f32>);

/// A line's image stored (its key, and its vector when a model serves), or
/// why it failed; the line is suggested again either way.
pub async fn image_fetched(
    pool: &PgPool,
    line: i64,
    outcome: Result<(String, Option<ImageVector>), String>,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    match outcome {
        Ok((key, vector)) => {
            sqlx::query(
                "UPDATE merchant_lines SET image_state = 'stored', image_key = $2,
                        image_error = NULL, suggested_at = NULL
                 WHERE id = $1",
            )
            .bind(line)
            .bind(&key)
            .execute(&mut *tx)
            .await?;
            if let Some((model, dims, vector)) = vector {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO merchant_line_embeddings (line_id, model_id, embedding)
                     VALUES ($1, $2, $3::text::vector({dims}))
                     ON CONFLICT (line_id, model_id) DO UPDATE SET embedding = EXCLUDED.embedding"
                )))
                .bind(line)
                .bind(model)
                .bind(super::embeddings::vector_text(&vector))
                .execute(&mut *tx)
                .await?;
            }
        }
        Err(error) => {
            sqlx::query(
                "UPDATE merchant_lines SET image_state = 'failed', image_error = $2 WHERE id = $1",
            )
            .bind(line)
            .bind(&error)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

/// A frame of each product (its first), for thumbnails.
pub async fn thumbnails(
    pool: &PgPool,
    products: &[Uuid],
) -> sqlx::Result<std::collections::HashMap<Uuid, String>> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT DISTINCT ON (product_id) product_id, storage_key FROM frames
         WHERE product_id = ANY($1) ORDER BY product_id, frame_index",
    )
    .bind(products)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Makes every line of a merchant wait for suggestions again.
pub async fn reset_suggestions(pool: &PgPool, merchant: i32) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE merchant_lines SET suggested_at = NULL
         WHERE merchant_id = $1 AND removed_at IS NULL",
    )
    .bind(merchant)
    .execute(pool)
    .await?
    .rows_affected())
}
