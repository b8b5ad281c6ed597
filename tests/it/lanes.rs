//! Kinds and lanes: each kind waits in its own lane of the queue, a worker
//! takes only the kinds it is told to, and its lanes share one set of slots.

use crate::common;

use std::time::Duration;

use buybuddy::{
    db,
    jobs::{JobSpec, fail::Fail, noop::Noop, sleep::Sleep},
    queue::{self, DEFAULT_QUEUE, Enqueue, worker::WorkerConfig},
};
use chrono::{DateTime, Utc};
use common::*;
use nix::sys::signal::Signal;
use uuid::Uuid;

async fn push(pool: &sqlx::PgPool, spec: JobSpec) -> Uuid {
    queue::enqueue(pool, DEFAULT_QUEUE, vec![Enqueue::from(spec)])
        .await
        .unwrap()[0]
}

fn sleep(millis: u64) -> JobSpec {
    JobSpec::Sleep(Sleep { millis, steps: 1 })
}

#[tokio::test]
async fn each_kind_waits_in_its_own_lane_of_the_queue() {
    let db = TestDb::new().await;
    let noop = push(&db.pool, JobSpec::Noop(Noop {})).await;
    let nap = push(&db.pool, sleep(10)).await;
    let lanes: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT j.id, a.job_type FROM jobs j JOIN apalis.jobs a ON a.id = j.task_id ORDER BY j.created_at",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        lanes,
        vec![
            (noop, "buybuddy:noop".to_owned()),
            (nap, "buybuddy:sleep".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_worker_takes_only_its_kinds_and_other_jobs_wait_for_one_that_takes_them() {
    let db = TestDb::new().await;
    // Queued first: a worker taking every kind would run it first.
    let waiting = push(&db.pool, JobSpec::Noop(Noop {})).await;
    let taken = push(&db.pool, sleep(50)).await;
    let sleeper = InProcessWorker::start(
        &db.pool,
        WorkerConfig {
            kinds: vec!["sleep"],
            ..worker_config()
        },
    );
    wait_for_status(&db.pool, taken, "completed", Duration::from_secs(10)).await;
    // Several polls of the sleep lane later, the noop job is still untouched.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(status(&db.pool, waiting).await, "queued");
    assert_eq!(
        task_state(&db.pool, waiting).await,
        ("Pending".to_owned(), 0)
    );
    sleeper.stop().await;

    // A worker process started for that kind takes it.
    let mut worker = Process::worker(&db.url, &["--kinds", "noop,fail"]);
    wait_for_status(&db.pool, waiting, "completed", Duration::from_secs(20)).await;
    let job = db::jobs::get(&db.pool, waiting).await.unwrap().unwrap();
    assert!(
        job.worker.unwrap().ends_with("-noop"),
        "the noop lane ran it"
    );
    worker.signal(Signal::SIGTERM);
    worker.wait(Duration::from_secs(20)).await;
}

#[tokio::test]
async fn a_worker_refuses_an_unknown_kind_at_start() {
    let db = TestDb::new().await;
    let mut worker = Process::worker(&db.url, &["--kinds", "video,teleport"]);
    let status = worker.wait(Duration::from_secs(20)).await;
    assert!(!status.success());
    let output = worker.output();
    assert!(output.contains("unknown job kind \"teleport\""), "{output}");
}

#[tokio::test]
async fn lanes_share_one_concurrency_limit() {
    let db = TestDb::new().await;
    // Two kinds, one slot: the two jobs never run at the same time.
    let a = push(&db.pool, sleep(300)).await;
    let b = push(
        &db.pool,
        JobSpec::Fail(Fail {
            succeed_on_attempt: Some(1),
            ..Fail::default()
        }),
    )
    .await;
    let worker = InProcessWorker::start(
        &db.pool,
        WorkerConfig {
            concurrency: 1,
            batch_size: 1,
            ..worker_config()
        },
    );
    for id in [a, b] {
        wait_for_status(&db.pool, id, "completed", Duration::from_secs(10)).await;
    }
    worker.stop().await;
    let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT started_at, completed_at FROM jobs WHERE id = ANY($1) ORDER BY started_at",
    )
    .bind(vec![a, b])
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        spans[0].1 <= spans[1].0,
        "one slot: the second job started after the first ended: {spans:?}"
    );
}
