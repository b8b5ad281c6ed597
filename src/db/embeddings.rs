//! Queries on the embedding tables: the model registry, frame vectors,
//! product prototypes, and nearest-neighbour search through pgvector's HNSW.
//!
//! Models differ in dimension, so `embedding` is an untyped `vector` and each
//! model has partial expression indexes at its own dimension:
//! `USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE model_id = 7`.
//! A search must spell the same expression and the same literal model id for
//! the planner to use them, which is why those queries are built here as text
//! (from integers only) rather than with bound parameters.

use std::collections::HashMap;

use buybuddy_worker::embed::ModelInfo;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgExecutor, PgPool, Row};
use uuid::Uuid;

/// A row of `embedding_models`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Model {
    pub id: i32,
    pub kind: String,
    pub name: String,
    pub dims: i32,
    pub config: serde_json::Value,
    pub weights_hash: String,
    pub active: bool,
    pub serving: bool,
    pub created_at: DateTime<Utc>,
}

impl Model {
    /// How people see it: "dinov2-small (dinov2, 384-d, #3)".
    pub fn label(&self) -> String {
        format!(
            "{} ({}, {}-d, #{})",
            self.name, self.kind, self.dims, self.id
        )
    }

    /// The folder a model was loaded from, when it has one.
    pub fn path(&self) -> Option<&str> {
        self.config.get("path").and_then(|p| p.as_str())
    }
}

/// A model with how far its vectors reach.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCoverage {
    #[serde(flatten)]
    pub model: Model,
    /// Products with frames that have this model's prototype.
    pub products_embedded: i64,
    /// Products with frames.
    pub products_with_frames: i64,
    pub frame_vectors: i64,
}

/// SQL text with integers and this module's constants in it (never input):
/// the model id and dimension that the per-model indexes are matched by.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}

const COLUMNS: &str = "id, kind, name, dims, config, weights_hash, active, serving, created_at";

/// Adds a model to the registry (or finds it: same kind, name and weights)
/// with its HNSW indexes. With `default_when_none`, it becomes the active and
/// serving model when there is no active one yet (the classic descriptor on a
/// new database).
pub async fn register(
    pool: &PgPool,
    info: &ModelInfo,
    default_when_none: bool,
) -> sqlx::Result<Model> {
    let mut tx = pool.begin().await?;
    // Two workers starting together must not both create the indexes.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('buybuddy.embedding_models'))")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO embedding_models (kind, name, dims, config, weights_hash)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, name, weights_hash) DO NOTHING",
    )
    .bind(info.kind)
    .bind(&info.name)
    .bind(info.dims as i32)
    .bind(&info.config)
    .bind(&info.weights_hash)
    .execute(&mut *tx)
    .await?;
    let model: Model = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM embedding_models WHERE kind = $1 AND name = $2 AND weights_hash = $3"
    ))
    .bind(info.kind)
    .bind(&info.name)
    .bind(&info.weights_hash)
    .fetch_one(&mut *tx)
    .await?;
    for table in ["frame_embeddings", "product_embeddings"] {
        sqlx::query(sql!(
            "CREATE INDEX IF NOT EXISTS {table}_hnsw_{id} ON {table} \
             USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE model_id = {id}",
            id = model.id,
            dims = model.dims
        ))
        .execute(&mut *tx)
        .await?;
    }
    if default_when_none {
        sqlx::query(
            "UPDATE embedding_models SET active = true, serving = NOT EXISTS
                 (SELECT 1 FROM embedding_models WHERE serving)
             WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM embedding_models WHERE active)",
        )
        .bind(model.id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    get(pool, model.id).await.map(|m| m.unwrap_or(model))
}

pub async fn get(db: impl PgExecutor<'_>, id: i32) -> sqlx::Result<Option<Model>> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM embedding_models WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// A model by its id or its name (the newest of that name).
pub async fn find(pool: &PgPool, id_or_name: &str) -> sqlx::Result<Option<Model>> {
    if let Ok(id) = id_or_name.trim_start_matches('#').parse::<i32>() {
        return get(pool, id).await;
    }
    sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM embedding_models WHERE name = $1 ORDER BY id DESC LIMIT 1"
    ))
    .bind(id_or_name)
    .fetch_optional(pool)
    .await
}

/// The model new vectors are made with.
pub async fn active(db: impl PgExecutor<'_>) -> sqlx::Result<Option<Model>> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM embedding_models WHERE active"))
        .fetch_optional(db)
        .await
}

/// The model searches answer from.
pub async fn serving(db: impl PgExecutor<'_>) -> sqlx::Result<Option<Model>> {
    sqlx::query_as(sql!("SELECT {COLUMNS} FROM embedding_models WHERE serving"))
        .fetch_optional(db)
        .await
}

/// Every model, newest first, with its coverage.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<ModelCoverage>> {
    let models: Vec<Model> = sqlx::query_as(sql!(
        "SELECT {COLUMNS} FROM embedding_models ORDER BY id DESC"
    ))
    .fetch_all(pool)
    .await?;
    let with_frames: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM products p WHERE EXISTS (SELECT 1 FROM frames f WHERE f.product_id = p.id)",
    )
    .fetch_one(pool)
    .await?;
    let counts: HashMap<i32, (i64, i64)> = sqlx::query(
        "SELECT m.id,
                (SELECT count(*) FROM product_embeddings pe WHERE pe.model_id = m.id) AS products,
                (SELECT count(*) FROM frame_embeddings fe WHERE fe.model_id = m.id) AS frames
         FROM embedding_models m",
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|row| (row.get::<i32, _>(0), (row.get(1), row.get(2))))
    .collect();
    Ok(models
        .into_iter()
        .map(|model| {
            let (products, frames) = counts.get(&model.id).copied().unwrap_or_default();
            ModelCoverage {
                model,
                products_embedded: products,
                products_with_frames: with_frames,
                frame_vectors: frames,
            }
        })
        .collect())
}

/// Makes a model the one new vectors are made with. Searches keep answering
/// from the serving model until this one covers every product (or at once
/// when nothing serves yet).
pub async fn activate(pool: &PgPool, id: i32) -> sqlx::Result<Option<Model>> {
    let mut tx = pool.begin().await?;
    if get(&mut *tx, id).await?.is_none() {
        return Ok(None);
    }
    sqlx::query("UPDATE embedding_models SET active = false WHERE active AND id <> $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE embedding_models SET active = true,
             serving = serving OR NOT EXISTS (SELECT 1 FROM embedding_models WHERE serving)
         WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    promote_if_complete(pool, id).await?;
    get(pool, id).await
}

/// Products with frames that lack this model's prototype, oldest first.
pub async fn products_missing(pool: &PgPool, model_id: i32) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT p.id FROM products p
         WHERE EXISTS (SELECT 1 FROM frames f WHERE f.product_id = p.id)
           AND NOT EXISTS (SELECT 1 FROM product_embeddings pe
                           WHERE pe.product_id = p.id AND pe.model_id = $1)
         ORDER BY p.created_at, p.id",
    )
    .bind(model_id)
    .fetch_all(pool)
    .await
}

/// Makes the active model the serving one once every product with frames has
/// its prototype. Returns whether it serves now.
pub async fn promote_if_complete(pool: &PgPool, model_id: i32) -> sqlx::Result<bool> {
    let mut tx = pool.begin().await?;
    let promoted = sqlx::query_scalar::<_, i32>(
        "WITH complete AS (
             SELECT 1 FROM embedding_models m
             WHERE m.id = $1 AND m.active AND NOT m.serving
               AND NOT EXISTS (
                   SELECT 1 FROM products p
                   WHERE EXISTS (SELECT 1 FROM frames f WHERE f.product_id = p.id)
                     AND NOT EXISTS (SELECT 1 FROM product_embeddings pe
                                     WHERE pe.product_id = p.id AND pe.model_id = m.id)))
         UPDATE embedding_models SET serving = (id = $1)
         WHERE EXISTS (SELECT 1 FROM complete) AND (serving OR id = $1)
         RETURNING id",
    )
    .bind(model_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(!promoted.is_empty() || get(pool, model_id).await?.is_some_and(|m| m.serving))
}

/// A frame to embed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FrameToEmbed {
    pub id: i64,
    pub frame_index: i32,
    pub storage_key: String,
    pub mask_key: Option<String>,
}

pub async fn frames_of(pool: &PgPool, product_id: Uuid) -> sqlx::Result<Vec<FrameToEmbed>> {
    sqlx::query_as(
        "SELECT id, frame_index, storage_key, mask_key FROM frames
         WHERE product_id = $1 ORDER BY frame_index",
    )
    .bind(product_id)
    .fetch_all(pool)
    .await
}

/// pgvector's text form of a vector.
pub fn vector_text(v: &[f32]) -> String {
    let mut text = String::with_capacity(v.len() * 10 + 2);
    text.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&x.to_string());
    }
    text.push(']');
    text
}

/// Replaces a product's vectors of one model: its frames' and the prototype,
/// together. Fails (and writes nothing) if a frame is gone meanwhile, as when
/// the product was processed again.
pub async fn save(
    pool: &PgPool,
    model: &Model,
    product_id: Uuid,
    frames: &[(i64, Vec<f32>)],
    prototype: &[f32],
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM frame_embeddings WHERE model_id = $1 AND product_id = $2")
        .bind(model.id)
        .bind(product_id)
        .execute(&mut *tx)
        .await?;
    let ids: Vec<i64> = frames.iter().map(|(id, _)| *id).collect();
    let vectors: Vec<String> = frames.iter().map(|(_, v)| vector_text(v)).collect();
    let inserted = sqlx::query(sql!(
        "INSERT INTO frame_embeddings (model_id, frame_id, product_id, embedding)
         SELECT $1, f.id, f.product_id, v.embedding::vector({dims})
         FROM unnest($2::bigint[], $3::text[]) AS v (frame_id, embedding)
         JOIN frames f ON f.id = v.frame_id AND f.product_id = $4",
        dims = model.dims
    ))
    .bind(model.id)
    .bind(&ids)
    .bind(&vectors)
    .bind(product_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted != frames.len() as u64 {
        // Some frames were replaced while they were being embedded.
        return Err(sqlx::Error::RowNotFound);
    }
    sqlx::query(sql!(
        "INSERT INTO product_embeddings (model_id, product_id, embedding, frame_count)
         VALUES ($1, $2, $3::text::vector({dims}), $4)
         ON CONFLICT (model_id, product_id) DO UPDATE
         SET embedding = EXCLUDED.embedding, frame_count = EXCLUDED.frame_count, created_at = now()",
        dims = model.dims
    ))
    .bind(model.id)
    .bind(product_id)
    .bind(vector_text(prototype))
    .bind(frames.len() as i32)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// A product's prototype of one model.
pub async fn prototype_of(
    pool: &PgPool,
    model: &Model,
    product_id: Uuid,
) -> sqlx::Result<Option<Vec<f32>>> {
    sqlx::query_scalar(
        "SELECT embedding::real[] FROM product_embeddings WHERE model_id = $1 AND product_id = $2",
    )
    .bind(model.id)
    .bind(product_id)
    .fetch_optional(pool)
    .await
}

/// Which products a search may return.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub category: Option<String>,
    /// Leaves this product out (the one asked about).
    pub except: Option<Uuid>,
}

/// A product near the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Near {
    pub product_id: Uuid,
    /// Cosine similarity of the query and the product's prototype.
    pub similarity: f32,
}

/// The `k` products whose prototypes are nearest the query, through the
/// model's HNSW index. Filters do not cut the answer short: pgvector's
/// iterative scan goes on until `k` rows pass them (or the index is done).
pub async fn nearest_products(
    pool: &PgPool,
    model: &Model,
    query: &[f32],
    k: i64,
    filter: &Filter,
) -> sqlx::Result<Vec<Near>> {
    let mut tx = pool.begin().await?;
    search_settings(&mut tx, k).await?;
    let rows = bind_nearest(sqlx::query(nearest_sql(model, "")), query, k, filter)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|row| Near {
            product_id: row.get(0),
            similarity: 1.0 - row.get::<f64, _>(1) as f32,
        })
        .collect())
}

/// PostgreSQL's plan for [`nearest_products`], to show it uses the model's
/// index (`EXPLAIN` options such as `ANALYZE, BUFFERS` in `options`).
pub async fn explain_nearest(
    conn: &mut sqlx::PgConnection,
    model: &Model,
    query: &[f32],
    k: i64,
    filter: &Filter,
    options: &str,
) -> sqlx::Result<String> {
    use sqlx::Acquire;
    let mut tx = conn.begin().await?;
    search_settings(&mut tx, k).await?;
    let explain = if options.is_empty() {
        "EXPLAIN ".to_owned()
    } else {
        format!("EXPLAIN ({options}) ")
    };
    let rows = bind_nearest(sqlx::query(nearest_sql(model, &explain)), query, k, filter)
        .fetch_all(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(rows
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

fn nearest_sql(model: &Model, prefix: &str) -> sqlx::AssertSqlSafe<String> {
    sql!(
        "{prefix}WITH hits AS MATERIALIZED (
             SELECT pe.product_id,
                    pe.embedding::vector({dims}) <=> $1::text::vector({dims}) AS distance
             FROM product_embeddings pe JOIN products p ON p.id = pe.product_id
             WHERE pe.model_id = {id}
               AND ($2::text IS NULL OR p.status = $2)
               AND ($3::text IS NULL OR p.category = $3)
               AND ($4::uuid IS NULL OR pe.product_id <> $4)
             ORDER BY pe.embedding::vector({dims}) <=> $1::text::vector({dims})
             LIMIT $5)
         SELECT product_id, distance FROM hits ORDER BY distance, product_id",
        dims = model.dims,
        id = model.id
    )
}

fn bind_nearest<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    vector: &[f32],
    k: i64,
    filter: &'q Filter,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(vector_text(vector))
        .bind(&filter.status)
        .bind(&filter.category)
        .bind(filter.except)
        .bind(k)
}

/// The filmed frame nearest the query, of any product, through the model's
/// frame index: (frame id, product id, similarity).
pub async fn nearest_frame(
    pool: &PgPool,
    model: &Model,
    query: &[f32],
) -> sqlx::Result<Option<(i64, Uuid, f32)>> {
    let mut tx = pool.begin().await?;
    search_settings(&mut tx, 1).await?;
    let row = sqlx::query(sql!(
        "SELECT frame_id, product_id,
                embedding::vector({dims}) <=> $1::text::vector({dims}) AS distance
         FROM frame_embeddings WHERE model_id = {id}
         ORDER BY embedding::vector({dims}) <=> $1::text::vector({dims})
         LIMIT 1",
        dims = model.dims,
        id = model.id
    ))
    .bind(vector_text(query))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(|row| (row.get(0), row.get(1), 1.0 - row.get::<f64, _>(2) as f32)))
}

/// What pgvector needs to answer a filtered search in full: a candidate list
/// longer than the answer, and iterative scans (0.8) for filters.
async fn search_settings(tx: &mut sqlx::PgConnection, k: i64) -> sqlx::Result<()> {
    let ef = (k * 2).clamp(100, 1000);
    sqlx::query(
        "SELECT set_config('hnsw.ef_search', $1, true),
                set_config('hnsw.iterative_scan', 'relaxed_order', true),
                set_config('hnsw.max_scan_tuples', '100000', true)",
    )
    .bind(ef.to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The frame of a product that matched a query best.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedFrame {
    pub frame_id: i64,
    pub frame_index: i32,
    pub storage_key: String,
    pub similarity: f32,
}

/// The frame of each product nearest the query, with its similarity
/// (exact: a product has tens of frames).
pub async fn best_frames(
    pool: &PgPool,
    model: &Model,
    query: &[f32],
    products: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, MatchedFrame>> {
    let rows = sqlx::query(sql!(
        "SELECT DISTINCT ON (fe.product_id) fe.product_id, fe.frame_id, f.frame_index, f.storage_key,
                fe.embedding::vector({dims}) <=> $1::text::vector({dims}) AS distance
         FROM frame_embeddings fe JOIN frames f ON f.id = fe.frame_id
         WHERE fe.model_id = $2 AND fe.product_id = ANY($3)
         ORDER BY fe.product_id, distance",
        dims = model.dims
    ))
    .bind(vector_text(query))
    .bind(model.id)
    .bind(products)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                row.get(0),
                MatchedFrame {
                    frame_id: row.get(1),
                    frame_index: row.get(2),
                    storage_key: row.get(3),
                    similarity: 1.0 - row.get::<f64, _>(4) as f32,
                },
            )
        })
        .collect())
}

/// What a search result shows of a product.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ProductCard {
    pub id: Uuid,
    pub barcode: String,
    pub product_name: Option<String>,
    pub brand_name: Option<String>,
    pub category: Option<String>,
    pub status: String,
}

pub async fn cards(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<HashMap<Uuid, ProductCard>> {
    let rows: Vec<ProductCard> = sqlx::query_as(
        "SELECT id, barcode, product_name, brand_name, category, status FROM products WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|c| (c.id, c)).collect())
}

/// Two products whose prototypes are closer than a threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pair {
    pub a: Uuid,
    pub b: Uuid,
    pub similarity: f32,
}

/// Possible duplicates: each product's nearest other product (through the
/// index), kept where the similarity reaches `threshold`, each pair once,
/// closest first.
pub async fn close_pairs(
    pool: &PgPool,
    model: &Model,
    threshold: f32,
    limit: i64,
) -> sqlx::Result<Vec<Pair>> {
    let mut tx = pool.begin().await?;
    search_settings(&mut tx, 1).await?;
    let rows = sqlx::query(sql!(
        "SELECT DISTINCT least(a.product_id, n.product_id) AS a,
                greatest(a.product_id, n.product_id) AS b, n.distance
         FROM product_embeddings a
         CROSS JOIN LATERAL (
             SELECT o.product_id, o.embedding::vector({dims}) <=> a.embedding::vector({dims}) AS distance
             FROM product_embeddings o
             WHERE o.model_id = {id} AND o.product_id <> a.product_id
             ORDER BY o.embedding::vector({dims}) <=> a.embedding::vector({dims})
             LIMIT 1) n
         WHERE a.model_id = {id} AND n.distance <= $1
         ORDER BY n.distance, a, b
         LIMIT $2",
        dims = model.dims,
        id = model.id
    ))
    .bind(f64::from(1.0 - threshold))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|row| Pair {
            a: row.get(0),
            b: row.get(1),
            similarity: 1.0 - row.get::<f64, _>(2) as f32,
        })
        .collect())
}

/// Products whose embed job of this model is queued or running.
pub async fn products_waiting(
    pool: &PgPool,
    model_id: i32,
) -> sqlx::Result<std::collections::HashSet<Uuid>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT (payload->>'product_id')::uuid FROM jobs
         WHERE kind = 'embed' AND status IN ('queued', 'running')
           AND (payload->>'model_id')::int = $1",
    )
    .bind(model_id)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().collect())
}
