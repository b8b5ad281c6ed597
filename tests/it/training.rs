//! Training end to end against real parts: a recognition version rendered
//! by a worker, a run on real worker processes (the binary), one of them
//! killed mid-run, the run resuming from its checkpoint on another with the
//! same curve an uninterrupted run draws, the best checkpoint registered as a
//! model, and "use for search" re-embedding the products while search keeps
//! answering.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::datasets::{get, masked_products, post, worker_pool};

async fn job_status(pool: &sqlx::PgPool, run: i64) -> Option<String> {
    sqlx::query_scalar(
        "SELECT j.status FROM training_runs r JOIN jobs j ON j.id = r.job_id WHERE r.id = $1",
    )
    .bind(run as i32)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn wait_run(pool: &sqlx::PgPool, run: i64, workers: &[&Process]) {
    let started = Instant::now();
    loop {
        match job_status(pool, run).await.as_deref() {
            Some("completed") => return,
            Some(status @ ("failed" | "cancelled")) => {
                let error: Option<String> = sqlx::query_scalar(
                    "SELECT j.error_message FROM training_runs r JOIN jobs j ON j.id = r.job_id WHERE r.id = $1",
                )
                .bind(run as i32)
                .fetch_one(pool)
                .await
                .unwrap();
                panic!(
                    "run {run} {status}: {error:?}\n{}",
                    workers.iter().map(|w| w.output()).collect::<String>()
                );
            }
            _ if started.elapsed() > Duration::from_secs(300) => panic!(
                "run {run} still running after 5 minutes\n{}",
                workers.iter().map(|w| w.output()).collect::<String>()
            ),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The training points of a run: (step, loss).
async fn losses(pool: &sqlx::PgPool, run: i64) -> Vec<(i32, f64)> {
    sqlx::query_as(
        "SELECT step, loss FROM training_metrics WHERE run_id = $1 AND kind = 'train' ORDER BY step",
    )
    .bind(run as i32)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn checkpoints(pool: &sqlx::PgPool, run: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM training_checkpoints WHERE run_id = $1")
        .bind(run as i32)
        .fetch_one(pool)
        .await
        .unwrap()
}

const CONFIG: &str = r#"{"epochs": 8, "p": 4, "k": 4, "log_every": 1, "seed": 11,
    "head_dim": 32, "lr": 0.0005, "warmup_steps": 4, "augment": "light"}"#;

#[tokio::test]
async fn a_run_survives_a_killed_worker_and_its_model_serves_search() {
    // The server's logged errors go to the test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .try_init();
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    pipeline.resources.register_models(&db.pool).await.unwrap();
    let products = masked_products(&db.pool, &pipeline.storage, 8, 10).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    // Rendering and embedding in this process; training only in worker processes.
    let helper = InProcessWorker::start(
        &worker_pool(&db).await,
        buybuddy::queue::worker::WorkerConfig {
            kinds: vec!["augment", "embed"],
            ..pipeline.worker_config()
        },
    );
    buybuddy::actions::search::backfill(&db.pool, buybuddy::queue::DEFAULT_QUEUE, None)
        .await
        .unwrap();

    let (status, dataset) = post(
        &server,
        "/api/datasets",
        json!({"name": "faces", "task": "recognition",
               "settings": {"seed": 3, "ratios": {"train": 0.5, "val": 0.5, "test": 0.0}}}),
    )
    .await;
    assert_eq!(status, 201, "{dataset}");
    let id = dataset["id"].as_i64().unwrap();
    post(&server, &format!("/api/datasets/{id}/versions"), json!({})).await;
    let version = eventually(Duration::from_secs(60), "the version", || async {
        let v = get(&server, &format!("/api/datasets/{id}/versions/1")).await;
        (v["ready"] == true).then_some(v)
    })
    .await;
    let version_id = version["id"].as_i64().unwrap();
    let config: Value = serde_json::from_str(CONFIG).unwrap();

    // Refusals, before any worker is involved.
    for (bad, field) in [
        (json!({"k": 64}), "k"),
        (json!({"lr": 0.0}), "lr"),
        (json!({"base": "hub:dinov2"}), "base"),
        (json!({"base": "model:999"}), "base"),
        (json!({"loss": "hinge"}), "loss"),
    ] {
        let mut settings = config.clone();
        settings
            .as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (status, body) = post(
            &server,
            "/api/training",
            json!({"version_id": version_id, "config": settings}),
        )
        .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["error"]["fields"][field].is_string(), "{bad}: {body}");
    }
    let (status, body) = post(&server, "/api/training", json!({"version_id": 999})).await;
    assert_eq!(status, 404, "{body}");
    let (_, detect) = post(
        &server,
        "/api/datasets",
        json!({"name": "boxes", "task": "detect"}),
    )
    .await;
    let detect_id = detect["id"].as_i64().unwrap();
    let (_, detect_version) = post(
        &server,
        &format!("/api/datasets/{detect_id}/versions"),
        json!({}),
    )
    .await;
    let (status, body) = post(
        &server,
        "/api/training",
        json!({"version_id": detect_version["id"], "config": config}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("recognition"), "{body}");
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM training_runs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(runs, 0, "a refused run was recorded");

    // The run, on a worker process that is killed after two epochs.
    let (status, started) = post(
        &server,
        "/api/training",
        json!({"version_id": version_id, "name": "interrupted", "config": config}),
    )
    .await;
    assert_eq!(status, 200, "{started}");
    let run = started["run"]["id"].as_i64().unwrap();
    let storage = pipeline.storage_dir.path().to_str().unwrap();
    let worker_args = ["--kinds", "train", "--storage", storage];
    let mut doomed = Process::worker(&db.url, &worker_args);
    let seen = Instant::now();
    while checkpoints(&db.pool, run).await < 2 {
        assert!(
            seen.elapsed() < Duration::from_secs(240),
            "no second checkpoint\n{}",
            doomed.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.signal(Signal::SIGKILL);
    doomed.wait(Duration::from_secs(5)).await;
    let total: i32 = sqlx::query_scalar("SELECT total_steps FROM training_runs WHERE id = $1")
        .bind(run as i32)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let at_kill = losses(&db.pool, run).await.len() as i32;
    assert!(at_kill < total, "the run ended before the kill");

    let rescuer = Process::worker(&db.url, &worker_args);
    wait_run(&db.pool, run, &[&doomed, &rescuer]).await;
    let view = get(&server, &format!("/api/training/{run}")).await;
    let events: Vec<String> = sqlx::query_scalar(
        "SELECT e.message FROM job_events e JOIN training_runs r ON r.job_id = e.job_id WHERE r.id = $1 ORDER BY e.id",
    )
    .bind(run as i32)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Resumed from the checkpoint at step")),
        "{events:#?}"
    );

    // The same settings without an interruption draw the same curve.
    let (_, straight) = post(
        &server,
        "/api/training",
        json!({"version_id": version_id, "name": "straight", "config": config}),
    )
    .await;
    let straight = straight["run"]["id"].as_i64().unwrap();
    wait_run(&db.pool, straight, &[&rescuer]).await;
    let (resumed, reference) = (
        losses(&db.pool, run).await,
        losses(&db.pool, straight).await,
    );
    let steps: Vec<i32> = resumed.iter().map(|p| p.0).collect();
    assert_eq!(
        steps,
        (1..=total).collect::<Vec<_>>(),
        "a gap or a duplicate in the curve"
    );
    assert_eq!(resumed.len(), reference.len());
    for ((step, a), (_, b)) in resumed.iter().zip(&reference) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "step {step}: resumed loss {a}, uninterrupted {b}"
        );
    }
    let validation: Vec<f64> = view["run"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "val")
        .map(|m| m["map_at_r"].as_f64().unwrap())
        .collect();
    assert_eq!(
        validation.len(),
        9,
        "before training and after each of 8 epochs"
    );
    assert!(
        view["run"]["baseline"]["classic"]["recall_at_1"].is_number(),
        "{view}"
    );

    // The registered model: the best epoch's checkpoint, as a DINOv2 folder.
    let model = &view["run"]["model"];
    assert_eq!(model["kind"], "dinov2", "{view}");
    assert_eq!(model["dims"], 32);
    let best = validation[1..].iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(model["config"]["metrics"]["map_at_r"].as_f64(), Some(best));
    let prefix = model["config"]["storage"].as_str().unwrap();
    for file in ["config.json", "model.safetensors"] {
        pipeline
            .storage
            .get(&format!("{prefix}{file}"))
            .await
            .unwrap_or_else(|e| panic!("{prefix}{file}: {e}"));
    }

    // Use for search: every product is embedded again in the background,
    // and search answers throughout (from the classic vectors until the
    // trained model covers every product).
    let (status, used) = post(&server, &format!("/api/training/{run}/use"), json!({})).await;
    assert_eq!(status, 200, "{used}");
    assert_eq!(used["queued"], products.len());
    let probe = products[0].0;
    let models_seen = eventually(
        Duration::from_secs(120),
        "the trained model to serve",
        || async {
            let answer = get(&server, &format!("/api/products/{probe}/similar")).await;
            let name = answer["model"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (name == format!("train-{run}")).then_some(answer)
        },
    )
    .await;
    assert!(
        !models_seen["results"].as_array().unwrap().is_empty(),
        "{models_seen}"
    );
    helper.stop().await;
    drop(rescuer);
}
