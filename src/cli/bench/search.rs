//! `bench search`: pgvector HNSW through SQL against FAISS HNSW on the same
//! vectors and queries. The vectors are shaped like product frames: products
//! in families (a brand's packs look alike), each product's frames scattered
//! around it, unit length. For each index setting: build time, index size,
//! recall@k against exact search, p50/p99 latency with 1 and 8 clients, and
//! the same with a status filter that one product in ten passes (with
//! pgvector 0.8's iterative scan, counting answers shorter than k).
//!
//! The queries are the search the platform runs, on a table shaped like
//! `frame_embeddings` (an untyped `vector` column with an HNSW expression
//! index at the dimension) whose status column stands in for the join.

use std::{io::Write, path::PathBuf, sync::Arc, time::Instant};

use anyhow::{Context, bail};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use serde::Deserialize;
use sqlx::{Row, postgres::PgPoolCopyExt};

use super::{Throwaway, percentile};
use crate::{config::DbArgs, db};

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    db: DbArgs,
    /// 100,000 vectors (4,000 products x 25 frames) instead of 1,000,000.
    #[arg(long)]
    quick: bool,
    /// Products (40,000 unless --quick).
    #[arg(long)]
    products: Option<usize>,
    #[arg(long, default_value_t = 25)]
    frames_per_product: usize,
    #[arg(long, default_value_t = 384)]
    dims: usize,
    /// Queries: new frames of random products, not in the table.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Index settings as M:EF_CONSTRUCTION (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "16:64,16:128,24:128")]
    builds: Vec<String>,
    /// hnsw.ef_search values (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "40,100,200")]
    ef_search: Vec<usize>,
    /// The Python with faiss-cpu (installed there when missing).
    #[arg(long, default_value = ".data/torch/bin/python")]
    python: PathBuf,
    /// Leave FAISS out.
    #[arg(long)]
    no_faiss: bool,
}

/// One measured setting.
#[derive(Debug, Clone, Deserialize)]
struct Figure {
    engine: String,
    m: usize,
    ef_construction: usize,
    ef_search: usize,
    filtered: bool,
    #[serde(default = "one")]
    clients: usize,
    build_s: f64,
    size_bytes: u64,
    recall: f64,
    p50_ms: f64,
    p99_ms: f64,
    short_answers: usize,
}

fn one() -> usize {
    1
}

/// Unit vectors of frames: a family centre, a product around it, frames around the product.
struct Data {
    dims: usize,
    vectors: Vec<f32>,
    product_of: Vec<u32>,
    queries: Vec<f32>,
    /// Products that pass the filter (one in ten).
    passes: Vec<bool>,
}

fn gaussian(rng: &mut StdRng, out: &mut [f32], scale: f32) {
    for pair in out.chunks_mut(2) {
        let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-12), rng.random());
        let r = (-2.0 * u1.ln()).sqrt() * scale;
        let theta = std::f32::consts::TAU * u2;
        pair[0] = r * theta.cos();
        if pair.len() > 1 {
            pair[1] = r * theta.sin();
        }
    }
}

fn unit(v: &mut [f32]) {
    buybuddy_worker::embed::normalise(v);
}

fn generate(products: usize, per_product: usize, dims: usize, queries: usize) -> Data {
    let mut rng = StdRng::seed_from_u64(20261202);
    let spread = 1.0 / (dims as f32).sqrt();
    let family_size = 20;
    let mut families = vec![0f32; products.div_ceil(family_size) * dims];
    gaussian(&mut rng, &mut families, spread);
    let mut centres = vec![0f32; products * dims];
    for p in 0..products {
        let c = &mut centres[p * dims..(p + 1) * dims];
        gaussian(&mut rng, c, spread * 0.7);
        let f = &families[(p / family_size) * dims..(p / family_size + 1) * dims];
        c.iter_mut().zip(f).for_each(|(x, y)| *x += y);
        unit(c);
    }
    let frame = |rng: &mut StdRng, p: usize, out: &mut [f32]| {
        gaussian(rng, out, spread * 0.45);
        out.iter_mut()
            .zip(&centres[p * dims..(p + 1) * dims])
            .for_each(|(x, y)| *x += y);
        unit(out);
    };
    let mut vectors = vec![0f32; products * per_product * dims];
    let mut product_of = Vec::with_capacity(products * per_product);
    for (i, out) in vectors.chunks_mut(dims).enumerate() {
        let p = i / per_product;
        frame(&mut rng, p, out);
        product_of.push(p as u32);
    }
    let mut query_vectors = vec![0f32; queries * dims];
    for out in query_vectors.chunks_mut(dims) {
        let p = rng.random_range(0..products);
        frame(&mut rng, p, out);
    }
    let passes = (0..products).map(|_| rng.random::<f32>() < 0.1).collect();
    Data {
        dims,
        vectors,
        product_of,
        queries: query_vectors,
        passes,
    }
}

fn write_f32(path: &std::path::Path, values: &[f32]) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for v in values {
        file.write_all(&v.to_le_bytes())?;
    }
    file.flush()?;
    Ok(())
}

fn read_i64(path: &std::path::Path) -> anyhow::Result<Vec<i64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

pub async fn run(args: SearchArgs) -> anyhow::Result<()> {
    let products = args
        .products
        .unwrap_or(if args.quick { 4_000 } else { 40_000 });
    let n = products * args.frames_per_product;
    let builds: Vec<(usize, usize)> = args
        .builds
        .iter()
        .map(|b| {
            let (m, efc) = b.split_once(':').context("builds are M:EF_CONSTRUCTION")?;
            Ok((m.trim().parse()?, efc.trim().parse()?))
        })
        .collect::<anyhow::Result<_>>()?;
    println!(
        "{n} vectors ({products} products x {} frames), {}-d, {} queries, k={}",
        args.frames_per_product, args.dims, args.queries, args.k
    );
    let started = Instant::now();
    let data = Arc::new(generate(
        products,
        args.frames_per_product,
        args.dims,
        args.queries,
    ));
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());

    // Files for FAISS and for the exact answers.
    let dir = args.db.data_dir.join("bench").join("search");
    std::fs::create_dir_all(&dir)?;
    write_f32(&dir.join("vectors.f32"), &data.vectors)?;
    write_f32(&dir.join("queries.f32"), &data.queries)?;
    let allowed: Vec<u8> = data
        .product_of
        .iter()
        .map(|&p| u8::from(data.passes[p as usize]))
        .collect();
    std::fs::write(dir.join("allowed.u8"), &allowed)?;
    let python = super::ensure_module(&args.python, "faiss", "faiss-cpu==1.15.1").await?;
    exact(&python, &dir, args.dims, args.k).await?;
    let truth = read_i64(&dir.join("truth.i64"))?;
    let truth_filtered = read_i64(&dir.join("truth_filtered.i64"))?;

    let bench = Throwaway::create(&args.db).await?;
    let outcome = pgvector(&args, &bench, &data, &builds, &truth, &truth_filtered).await;
    bench.drop().await?;
    let mut figures = outcome?;
    if !args.no_faiss {
        figures.extend(faiss(&python, &dir, &args, &builds).await?);
    }
    print_table(&figures, args.k);
    Ok(())
}

/// Exact nearest rows (all, and passing the filter) by FAISS's flat index.
async fn exact(
    python: &std::path::Path,
    dir: &std::path::Path,
    dims: usize,
    k: usize,
) -> anyhow::Result<()> {
    let script = format!(
        "import faiss, numpy as np\n\
         d, k, dir = {dims}, {k}, {dir:?}\n\
         v = np.fromfile(dir + '/vectors.f32', dtype=np.float32).reshape(-1, d)\n\
         q = np.fromfile(dir + '/queries.f32', dtype=np.float32).reshape(-1, d)\n\
         ok = np.fromfile(dir + '/allowed.u8', dtype=np.uint8).astype(bool)\n\
         index = faiss.IndexFlatIP(d); index.add(v)\n\
         index.search(q, k)[1].astype(np.int64).tofile(dir + '/truth.i64')\n\
         rows = np.nonzero(ok)[0]\n\
         sub = faiss.IndexFlatIP(d); sub.add(v[rows])\n\
         rows[sub.search(q, k)[1]].astype(np.int64).tofile(dir + '/truth_filtered.i64')\n",
        dir = dir.display().to_string()
    );
    let status = tokio::process::Command::new(python)
        .args(["-c", &script])
        .status()
        .await?;
    anyhow::ensure!(status.success(), "the exact search failed");
    Ok(())
}

async fn faiss(
    python: &std::path::Path,
    dir: &std::path::Path,
    args: &SearchArgs,
    builds: &[(usize, usize)],
) -> anyhow::Result<Vec<Figure>> {
    let script = super::python_script("bench_faiss.py")?;
    let mut command = tokio::process::Command::new(python);
    command.arg(&script).arg("--dir").arg(dir).args([
        "--dims",
        &args.dims.to_string(),
        "--k",
        &args.k.to_string(),
    ]);
    for (m, efc) in builds {
        command.args(["--m", &m.to_string(), "--ef-construction", &efc.to_string()]);
    }
    for ef in &args.ef_search {
        command.args(["--ef-search", &ef.to_string()]);
    }
    let output = command.output().await?;
    if !output.status.success() {
        bail!("FAISS failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| Ok(serde_json::from_str(l)?))
        .collect()
}

/// pgvector's binary COPY of the table: id, product, status, vector.
fn copy_rows(data: &Data) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.vectors.len() * 4 + data.product_of.len() * 40);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for (i, v) in data.vectors.chunks(data.dims).enumerate() {
        let product = data.product_of[i];
        let status: &[u8] = if data.passes[product as usize] {
            b"approved"
        } else {
            b"needs_review"
        };
        out.extend_from_slice(&4i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        out.extend_from_slice(&(i as i64).to_be_bytes());
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(&(product as i32).to_be_bytes());
        out.extend_from_slice(&(status.len() as i32).to_be_bytes());
        out.extend_from_slice(status);
        out.extend_from_slice(&((4 + 4 * data.dims) as i32).to_be_bytes());
        out.extend_from_slice(&(data.dims as i16).to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        for x in v {
            out.extend_from_slice(&x.to_be_bytes());
        }
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

async fn pgvector(
    args: &SearchArgs,
    bench: &Throwaway,
    data: &Arc<Data>,
    builds: &[(usize, usize)],
    truth: &[i64],
    truth_filtered: &[i64],
) -> anyhow::Result<Vec<Figure>> {
    let pool = db::connect(&bench.url, 9, &[]).await?;
    sqlx::query(
        "CREATE TABLE bench_frames (id bigint PRIMARY KEY, product_id integer NOT NULL,
                                    status text NOT NULL, embedding vector NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let started = Instant::now();
    let rows = copy_rows(data);
    let mut copy = pool
        .copy_in_raw("COPY bench_frames FROM STDIN WITH (FORMAT binary)")
        .await?;
    for part in rows.chunks(8 << 20) {
        copy.send(part).await?;
    }
    copy.finish().await?;
    sqlx::query("ANALYZE bench_frames").execute(&pool).await?;
    println!(
        "loaded {} rows into PostgreSQL in {:.1} s",
        data.product_of.len(),
        started.elapsed().as_secs_f64()
    );
    let dims = data.dims;
    let mut figures = Vec::new();
    for &(m, efc) in builds {
        let mut conn = pool.acquire().await?;
        for setting in [
            "SET maintenance_work_mem = '4GB'".to_owned(),
            "SET max_parallel_maintenance_workers = 1".to_owned(),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(setting))
                .execute(&mut *conn)
                .await?;
        }
        let started = Instant::now();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE INDEX bench_hnsw ON bench_frames USING hnsw ((embedding::vector({dims})) vector_cosine_ops) \
             WITH (m = {m}, ef_construction = {efc})"
        )))
        .execute(&mut *conn)
        .await?;
        let build_s = started.elapsed().as_secs_f64();
        let size_bytes: i64 = sqlx::query_scalar("SELECT pg_relation_size('bench_hnsw')")
            .fetch_one(&mut *conn)
            .await?;
        drop(conn);
        println!(
            "pgvector m={m} ef_construction={efc}: built in {build_s:.1} s, {} MB",
            size_bytes >> 20
        );
        if figures.is_empty() {
            print_plan(&pool, data, dims).await?;
        }
        for &ef in &args.ef_search {
            for filtered in [false, true] {
                for clients in [1usize, 8] {
                    let (latencies, found) =
                        run_queries(&pool, data, dims, args.k, ef, filtered, clients).await?;
                    let expected = if filtered { truth_filtered } else { truth };
                    let mut hits = 0usize;
                    let mut short = 0usize;
                    for (q, rows) in found.iter().enumerate() {
                        short += usize::from(rows.len() < args.k);
                        let want = &expected[q * args.k..(q + 1) * args.k];
                        hits += rows.iter().filter(|r| want.contains(r)).count();
                    }
                    figures.push(Figure {
                        engine: "pgvector".to_owned(),
                        m,
                        ef_construction: efc,
                        ef_search: ef,
                        filtered,
                        clients,
                        build_s,
                        size_bytes: size_bytes as u64,
                        recall: hits as f64 / (found.len() * args.k) as f64,
                        p50_ms: percentile(&latencies, 0.5),
                        p99_ms: percentile(&latencies, 0.99),
                        short_answers: short,
                    });
                }
            }
        }
        sqlx::query("DROP INDEX bench_hnsw").execute(&pool).await?;
    }
    pool.close().await;
    Ok(figures)
}

/// The plan of one unfiltered and one filtered query: the index is used.
async fn print_plan(pool: &sqlx::PgPool, data: &Data, dims: usize) -> anyhow::Result<()> {
    let query = db::embeddings::vector_text(&data.queries[..dims]);
    for (label, sql) in [
        ("", search_sql(dims, false, true)),
        ("filtered, ", search_sql(dims, true, true)),
    ] {
        let mut tx = pool.begin().await?;
        settings(&mut tx, 100, !label.is_empty()).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&query)
            .bind(10i64)
            .fetch_all(&mut *tx)
            .await?;
        println!("plan ({label}ef_search 100):");
        for row in rows {
            let line = row.get::<String, _>(0);
            // The query vector itself is hundreds of numbers.
            let shown = match (line.find("'["), line.find("]'")) {
                (Some(a), Some(b)) if b > a => format!("{}'[…]'{}", &line[..a], &line[b + 2..]),
                _ => line,
            };
            println!("    {shown}");
        }
        tx.rollback().await?;
    }
    Ok(())
}

fn search_sql(dims: usize, filtered: bool, explain: bool) -> String {
    let explain = if explain {
        "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
    } else {
        ""
    };
    if filtered {
        format!(
            "{explain}WITH hits AS MATERIALIZED (
                 SELECT id, embedding::vector({dims}) <=> $1::text::vector({dims}) AS distance
                 FROM bench_frames WHERE status = 'approved'
                 ORDER BY embedding::vector({dims}) <=> $1::text::vector({dims}) LIMIT $2)
             SELECT id FROM hits ORDER BY distance"
        )
    } else {
        format!(
            "{explain}SELECT id FROM bench_frames
             ORDER BY embedding::vector({dims}) <=> $1::text::vector({dims}) LIMIT $2"
        )
    }
}

async fn settings(conn: &mut sqlx::PgConnection, ef: usize, filtered: bool) -> anyhow::Result<()> {
    sqlx::query(
        "SELECT set_config('hnsw.ef_search', $1, true),
                set_config('hnsw.iterative_scan', $2, true)",
    )
    .bind(ef.to_string())
    .bind(if filtered { "relaxed_order" } else { "off" })
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every query once, split among `clients` connections; the latency of each
/// and the rows each returned.
async fn run_queries(
    pool: &sqlx::PgPool,
    data: &Arc<Data>,
    dims: usize,
    k: usize,
    ef: usize,
    filtered: bool,
    clients: usize,
) -> anyhow::Result<(Vec<f64>, Vec<Vec<i64>>)> {
    let queries = data.queries.len() / dims;
    let sql = Arc::new(search_sql(dims, filtered, false));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (pool, data, sql) = (pool.clone(), data.clone(), sql.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            let mut out = Vec::new();
            for q in (client..queries).step_by(clients) {
                let vector = db::embeddings::vector_text(&data.queries[q * dims..(q + 1) * dims]);
                let started = Instant::now();
                let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
                settings(&mut tx, ef, filtered).await?;
                let rows: Vec<i64> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str().to_owned()))
                        .bind(&vector)
                        .bind(k as i64)
                        .fetch_all(&mut *tx)
                        .await?;
                tx.commit().await?;
                out.push((q, started.elapsed().as_secs_f64() * 1000.0, rows));
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut latencies = Vec::with_capacity(queries);
    let mut found = vec![Vec::new(); queries];
    for task in tasks {
        for (q, ms, rows) in task.await?? {
            latencies.push(ms);
            found[q] = rows;
        }
    }
    Ok((latencies, found))
}

fn print_table(figures: &[Figure], k: usize) {
    println!();
    println!(
        "| engine | m | ef_construction | build s | index MB | ef_search | filter | clients | recall@{k} | p50 ms | p99 ms | short answers |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {} | {} | {:.1} | {} | {} | {} | {} | {:.3} | {:.2} | {:.2} | {} |",
            f.engine,
            f.m,
            f.ef_construction,
            f.build_s,
            f.size_bytes >> 20,
            f.ef_search,
            if f.filtered { "status (10%)" } else { "none" },
            f.clients,
            f.recall,
            f.p50_ms,
            f.p99_ms,
            f.short_answers
        );
    }
}
