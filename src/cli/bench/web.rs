//! `bench web`: seeds a throwaway database with many products and jobs, starts
//! `buybuddy serve` on it as its own process, and loads pages with concurrent
//! signed-in clients; prints requests per second and latency percentiles per
//! page, then the plans of the list queries.

use std::{
    net::SocketAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use sqlx::PgPool;
use tokio::process::{Child, Command as Process};
use uuid::Uuid;

use super::{Throwaway, percentile, stop};
use crate::{auth, config::DbArgs, db};

#[derive(clap::Args, Debug)]
pub struct WebArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Products seeded, each with its video job and its frames.
    #[arg(long, default_value_t = 100_000)]
    products: u32,
    /// Jobs seeded in all (the products' jobs included).
    #[arg(long, default_value_t = 200_000)]
    jobs: u32,
    /// Frames per product.
    #[arg(long, default_value_t = 8)]
    frames: u32,
    /// Clients sending requests at once, each one after the other.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// How long each page is loaded (after a warm-up of a fifth of it).
    #[arg(long, default_value = "10s", value_parser = crate::config::parse_duration)]
    duration: Duration,
}

pub async fn run(args: WebArgs) -> anyhow::Result<()> {
    if args.jobs < args.products {
        bail!("--jobs must be at least --products: every product has its video job");
    }
    let scratch = Throwaway::create(&args.db).await?;
    let url = scratch.url.clone();
    let result = async {
        let pool = db::connect(&url, 4, &[]).await?;
        let started = Instant::now();
        seed(&pool, &args).await?;
        eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
        let cookie = session(&pool).await?;
        let product: Uuid = sqlx::query_scalar(
            "SELECT id FROM products ORDER BY created_at DESC OFFSET $1 LIMIT 1",
        )
        .bind(i64::from(args.products / 2))
        .fetch_one(&pool)
        .await?;

        let address = free_address()?;
        let mut server = spawn_server(url.expose(), address)?;
        let loaded = async {
            wait_until_healthy(address).await?;
            let pages = [
                ("/products".to_owned(), "first page of /products"),
                ("/jobs".to_owned(), "first page of /jobs"),
                (format!("/products/{product}"), "a product page"),
                (
                    "/products?status=needs_review".to_owned(),
                    "/products, one status",
                ),
                ("/products?q=chocolate".to_owned(), "/products, a search"),
                ("/jobs?status=failed".to_owned(), "/jobs, one status"),
                ("/".to_owned(), "the dashboard"),
            ];
            let mut rows = Vec::new();
            for (path, what) in pages {
                let url = format!("http://{address}{path}");
                eprintln!("loading {path} with {} clients", args.clients);
                rows.push((what, load(&url, &cookie, &args).await?));
            }
            Ok::<_, anyhow::Error>(rows)
        }
        .await;
        stop(&mut server).await;
        let rows = loaded?;
        let plans = explain(&pool).await?;
        let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        Ok::<_, anyhow::Error>((rows, plans, version))
    }
    .await;
    scratch.drop().await?;
    let (rows, plans, version) = result?;

    println!(
        "\nweb benchmark: {} products ({} frames each), {} jobs; {} clients, {:?} per page; \
         PostgreSQL {version} (embedded cluster), {} CPU cores shared by server, database and clients",
        args.products,
        args.frames,
        args.jobs,
        args.clients,
        args.duration,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<26} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "page", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (what, load) in &rows {
        println!(
            "{:<26} {:>9} {:>8.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            what,
            load.latencies_ms.len(),
            load.latencies_ms.len() as f64 / load.elapsed_s,
            percentile(&load.latencies_ms, 0.50),
            percentile(&load.latencies_ms, 0.90),
            percentile(&load.latencies_ms, 0.99),
            load.latencies_ms.iter().copied().fold(0.0, f64::max),
        );
    }
    for (what, plan) in plans {
        println!("\n-- {what}\n{plan}");
    }
    Ok(())
}

/// Products spread over the statuses and the last weeks, each with a
/// completed video job and its frames; the other jobs in every status.
async fn seed(pool: &PgPool, args: &WebArgs) -> anyhow::Result<()> {
    eprintln!("seeding {} products and their jobs", args.products);
    sqlx::query(
        r#"
        INSERT INTO products (barcode, brand_name, product_name, variant_flavor, category,
                              container_type, net_quantity, nutrition_facts, claims,
                              grounding_prompt, visibility_score, status, created_at, updated_at,
                              video_id)
        SELECT '869' || lpad(i::text, 10, '0'),
               (ARRAY['Fizzo', 'Crispo', 'Dolce', 'Aqua', 'Nutri'])[1 + i % 5],
               (ARRAY['Cola', 'Chips', 'Biscuit', 'Chocolate', 'Water', 'Juice', 'Crackers'])[1 + i % 7]
                   || ' ' || i,
               (ARRAY['Original', 'Cherry', 'Salted', 'Hazelnut'])[1 + i % 4],
               (ARRAY['Beverages', 'Snacks', 'Confectionery'])[1 + i % 3],
               (ARRAY['can', 'bag', 'box', 'bottle'])[1 + i % 4],
               (100 + i % 900)::text || ' g',
               jsonb_build_object('energy_kcal', i % 600, 'sugars', (i % 40)::text || ' g'),
               ARRAY['no colourings', 'vegetarian'],
               'a product package',
               i % 101,
               (ARRAY['pending', 'processing', 'needs_review', 'approved', 'rejected'])[1 + i % 5],
               now() - make_interval(secs => i * 7),
               now() - make_interval(secs => i * 7),
               i
        FROM generate_series(1, $1) i
        "#,
    )
    .bind(i64::from(args.products))
    .execute(pool)
    .await?;
    sqlx::query(
        r#"
        INSERT INTO jobs (id, kind, payload, barcode, video_url, video_id, status, progress,
                          stage, frame_count, attempts, max_attempts, started_at, completed_at,
                          created_at)
        SELECT gen_random_uuid(), 'video',
               jsonb_build_object('kind', 'video', 'video_url',
                                  'https://cdn.example/' || barcode || '.mp4', 'barcode', barcode),
               barcode, 'https://cdn.example/' || barcode || '.mp4', video_id, 'completed', 100,
               'persist', $1, 1, 3, created_at - interval '40 s', created_at, created_at - interval '1 min'
        FROM products
        "#,
    )
    .bind(args.frames as i32)
    .execute(pool)
    .await?;
    eprintln!(
        "seeding {} frames",
        u64::from(args.products) * u64::from(args.frames)
    );
    sqlx::query(
        r#"
        INSERT INTO frames (product_id, job_id, frame_index, storage_key, mask_key, width, height,
                            mask_area, bbox_x, bbox_y, bbox_w, bbox_h)
        SELECT p.id, j.id, f, 'frames/' || p.barcode || '/' || j.id || '/' || lpad(f::text, 4, '0') || '.png',
               'masks/' || p.barcode || '/' || j.id || '/' || lpad(f::text, 4, '0') || '.png',
               518, 518, 120000, 40, 30, 400, 460
        FROM products p JOIN jobs j ON j.barcode = p.barcode, generate_series(0, $1 - 1) f
        "#,
    )
    .bind(args.frames as i32)
    .execute(pool)
    .await?;
    let others = args.jobs - args.products;
    eprintln!("seeding {others} more jobs in every status");
    sqlx::query(
        r#"
        INSERT INTO jobs (id, kind, payload, barcode, video_url, status, progress, stage,
                          error_message, attempts, max_attempts, started_at, completed_at, created_at)
        SELECT gen_random_uuid(), 'video', jsonb_build_object('kind', 'video'),
               '869' || lpad((i % 150000)::text, 10, '0'),
               'https://cdn.example/' || i || '.mp4', s.status,
               CASE s.status WHEN 'completed' THEN 100 WHEN 'running' THEN 40 ELSE 0 END,
               CASE s.status WHEN 'queued' THEN NULL ELSE 'segment' END,
               CASE s.status WHEN 'failed' THEN 'The video could not be decoded.' END,
               1, 3,
               CASE WHEN s.status <> 'queued' THEN now() - make_interval(secs => i * 3) END,
               CASE WHEN s.status IN ('completed', 'failed', 'cancelled')
                    THEN now() - make_interval(secs => i * 3 - 30) END,
               now() - make_interval(secs => i * 3 + 60)
        FROM generate_series(1, $1) i
        CROSS JOIN LATERAL (SELECT (ARRAY['completed', 'failed', 'cancelled', 'completed',
                                          'failed', 'completed', 'queued', 'running'])[1 + i % 8]
                                   AS status) s
        "#,
    )
    .bind(i64::from(others))
    .execute(pool)
    .await?;
    // The dashboard's chart counts jobs where they end; these were written ended.
    sqlx::raw_sql(
        "INSERT INTO job_hours (hour, session, completed, failed)
         SELECT date_trunc('hour', completed_at, 'UTC'), 0,
                count(*) FILTER (WHERE status = 'completed'),
                count(*) FILTER (WHERE status = 'failed')
         FROM jobs WHERE status IN ('completed', 'failed') GROUP BY 1",
    )
    .execute(pool)
    .await?;
    // What autovacuum would have done by the time a database holds this much.
    sqlx::raw_sql("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

/// A signed-in session's cookie.
async fn session(pool: &PgPool) -> anyhow::Result<String> {
    let hash = auth::hash_password("a benchmark password")?;
    let (user, _) = db::users::upsert(pool, "bench@localhost", &hash).await?;
    let token = auth::new_token();
    db::users::create_session(
        pool,
        &auth::token_hash(&token),
        user,
        &auth::new_token(),
        chrono::Utc::now() + chrono::Duration::days(1),
    )
    .await?;
    Ok(format!("{}={token}", auth::COOKIE))
}

fn free_address() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

fn spawn_server(url: &str, address: SocketAddr) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("finding this binary")?;
    Process::new(exe)
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("BUYBUDDY_BIND", address.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting buybuddy serve")
}

async fn wait_until_healthy(address: SocketAddr) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(response) = client.get(format!("http://{address}/healthz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the server did not answer /healthz within 30 s")
}

struct Load {
    latencies_ms: Vec<f64>,
    elapsed_s: f64,
}

/// `clients` loops, each sending the next request when the last one's body
/// has arrived; a warm-up first, then the measured run.
async fn load(url: &str, cookie: &str, args: &WebArgs) -> anyhow::Result<Load> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let run = |duration: Duration| {
        let started = Instant::now();
        let deadline = started + duration;
        let tasks: Vec<_> = (0..args.clients)
            .map(|_| {
                let (client, url, cookie) = (client.clone(), url.to_owned(), cookie.to_owned());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        let response = client
                            .get(&url)
                            .header(reqwest::header::COOKIE, &cookie)
                            .send()
                            .await?;
                        let status = response.status();
                        let body = response.bytes().await?;
                        if !status.is_success() {
                            bail!(
                                "{url} answered {status}: {}",
                                String::from_utf8_lossy(&body)
                            );
                        }
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(latencies)
                })
            })
            .collect();
        async move {
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await??);
            }
            Ok::<_, anyhow::Error>(Load {
                latencies_ms: all,
                elapsed_s: started.elapsed().as_secs_f64(),
            })
        }
    };
    run(args.duration / 5).await?;
    run(args.duration).await
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the list pages' queries, first pages and a
/// later one.
async fn explain(pool: &PgPool) -> anyhow::Result<Vec<(String, String)>> {
    let prefix = "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, SUMMARY ON) ";
    let later_product: (chrono::DateTime<chrono::Utc>, Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM products ORDER BY created_at DESC, id DESC OFFSET 5000 LIMIT 1",
    )
    .fetch_one(pool)
    .await?;
    let later_job: (chrono::DateTime<chrono::Utc>, Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM jobs ORDER BY created_at DESC, id DESC OFFSET 5000 LIMIT 1",
    )
    .fetch_one(pool)
    .await?;
    let products = |status: Option<&str>, search: Option<&str>, before| db::products::ListFilter {
        status: status.map(str::to_owned),
        search: search.map(str::to_owned),
        before,
    };
    let jobs = |status: Option<&str>, barcode: Option<&str>, before| db::jobs::ListFilter {
        status: status.map(str::to_owned),
        barcode: barcode.map(str::to_owned),
        before,
    };
    let mut cases = vec![
        ("products, first page", products(None, None, None)),
        (
            "products, one status",
            products(Some("needs_review"), None, None),
        ),
        (
            "products, a search",
            products(None, Some("chocolate"), None),
        ),
        (
            "products, page 101",
            products(None, None, Some(later_product)),
        ),
    ]
    .into_iter()
    .map(|(what, filter)| (what, db::products::list_query(prefix, &filter, 51)))
    .collect::<Vec<_>>();
    cases.extend(
        [
            ("jobs, first page", jobs(None, None, None)),
            ("jobs, one status", jobs(Some("failed"), None, None)),
            ("jobs, part of a barcode", jobs(None, Some("00012"), None)),
            ("jobs, page 101", jobs(None, None, Some(later_job))),
        ]
        .into_iter()
        .map(|(what, filter)| (what, db::jobs::list_query(prefix, &filter, 51))),
    );
    let mut plans = Vec::new();
    for (what, mut query) in cases {
        let lines: Vec<String> = query.build_query_scalar().fetch_all(pool).await?;
        plans.push((what.to_owned(), lines.join("\n")));
    }
    Ok(plans)
}
