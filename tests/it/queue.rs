//! The job queue against a real PostgreSQL: claiming, retries with backoff,
//! dead workers, the attempt cap, many workers, database restarts, timeouts,
//! shutdown and cancellation. Longer than most files: these scenarios share a
//! private cluster that they stop and start (`OwnCluster`) and the helpers that
//! read attempts from the event log; kinds and lanes are in `lanes.rs`.

use crate::common;

use std::time::{Duration, Instant};

use buybuddy::{
    db::{self, jobs::Cancel},
    jobs::{JobSpec, crash::Crash, fail::Fail, noop::Noop, sleep::Sleep},
    queue::{self, DEFAULT_QUEUE, Enqueue, worker},
};
use chrono::{DateTime, Utc};
use common::*;
use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn push(pool: &sqlx::PgPool, spec: JobSpec, max_attempts: Option<u32>) -> Uuid {
    queue::enqueue(
        pool,
        DEFAULT_QUEUE,
        vec![Enqueue {
            max_attempts,
            ..Enqueue::from(spec)
        }],
    )
    .await
    .unwrap()[0]
}

/// Queues `count` no-op jobs, 5,000 to a statement.
async fn push_noops(pool: &sqlx::PgPool, count: usize) {
    for chunk in (0..count).collect::<Vec<_>>().chunks(5_000) {
        let jobs = chunk
            .iter()
            .map(|_| Enqueue::from(JobSpec::Noop(Noop {})))
            .collect();
        queue::enqueue(pool, DEFAULT_QUEUE, jobs).await.unwrap();
    }
}

fn sleep(millis: u64, steps: u32) -> JobSpec {
    JobSpec::Sleep(Sleep { millis, steps })
}

/// Whether an event line records an attempt on a worker: "Attempt 2 of 5 started
/// on w", or, when the attempt started and ended within one write, "Attempt 2 of 5
/// on w completed in 3 ms".
fn names_a_run(message: &str) -> bool {
    let words: Vec<&str> = message.split(' ').collect();
    words.len() > 5
        && words[0] == "Attempt"
        && words[2] == "of"
        && matches!(words[4], "started" | "on")
}

/// When each attempt of a job was recorded as running, from its event log.
async fn attempt_starts(pool: &sqlx::PgPool, id: Uuid) -> Vec<DateTime<Utc>> {
    db::job_events::for_job(pool, id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| names_a_run(&e.message))
        .map(|e| e.at)
        .collect()
}

/// Jobs completed and failed over the dashboard's last 24 hours.
async fn ended_today(pool: &sqlx::PgPool) -> (i64, i64) {
    db::jobs::throughput_24h(pool)
        .await
        .unwrap()
        .iter()
        .fold((0, 0), |(c, f), &(_, completed, failed)| {
            (c + completed, f + failed)
        })
}

#[tokio::test]
async fn pushed_job_is_claimed_run_and_completed() {
    let db = TestDb::new().await;
    let id = push(&db.pool, JobSpec::Noop(Noop {}), None).await;
    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("queued", 0));
    assert_eq!(task_state(&db.pool, id).await, ("Pending".to_owned(), 0));

    let worker = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, id, "completed", Duration::from_secs(10)).await;
    worker.stop().await;

    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 1);
    assert_eq!(job.progress, 100);
    assert!(job.started_at.is_some() && job.completed_at >= job.started_at);
    assert!(job.worker.unwrap().starts_with("test-"));
    assert_eq!(
        queue_task(&db.pool, id).await,
        None,
        "a completed task leaves the queue"
    );
    let events = event_messages(&db.pool, id).await;
    assert!(
        events[0].starts_with("Attempt 1 of 5 started on test-")
            || events[0].starts_with("Attempt 1 of 5 on test-"),
        "{events:?}"
    );
    assert!(
        events.last().unwrap().contains(" completed in "),
        "{events:?}"
    );
    assert_eq!(attempt_starts(&db.pool, id).await.len(), 1);
}

/// A fetch chooses its tasks through the queue's index and updates each where it
/// lies: it never reads the whole queue, however many tasks wait and however few
/// it takes. (apalis's own `get_jobs` hashed the whole table on every fetch.)
/// Counted within the claim's own transaction, so the count does not depend on
/// timing.
#[tokio::test]
async fn a_fetch_claims_its_tasks_without_reading_the_whole_queue() {
    let db = TestDb::new().await;
    push_noops(&db.pool, 2_000).await;
    sqlx::raw_sql("ANALYZE apalis.jobs")
        .execute(&db.pool)
        .await
        .unwrap();

    // A session of its own: a session's counts include whatever it has not yet
    // handed in from earlier transactions.
    let mut session = <sqlx::PgConnection as sqlx::Connection>::connect(db.url.expose())
        .await
        .unwrap();
    let mut tx = sqlx::Connection::begin(&mut session).await.unwrap();
    let lane = db::queue::lane(DEFAULT_QUEUE, JobSpec::Noop(Noop {}).kind());
    let claimed = db::queue::claim(&mut *tx, "test-claimer", &lane, 5)
        .await
        .unwrap();
    let (seq_scans, index_scans): (i64, i64) = sqlx::query_as(
        "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables
         WHERE schemaname = 'apalis' AND relname = 'jobs'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE lock_by = 'test-claimer' AND status = 'Queued'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    assert_eq!(claimed.len(), 5);
    assert_eq!(held, 5, "the claimed tasks are held by the claimer");
    assert!(
        claimed
            .iter()
            .all(|t| t.job_type == lane && t.attempts == 0)
    );
    assert_eq!(seq_scans, 0, "the claim read the whole queue");
    assert!(index_scans >= 1, "{index_scans} index scans");
}

/// An attempt's start, progress and end update the job row in place (no new
/// index entries): no index of `jobs` names a column they change, in its keys,
/// expressions or condition, and its pages leave room for the new version.
#[tokio::test]
async fn an_attempt_changes_no_indexed_column_of_its_job() {
    let db = TestDb::new().await;
    let indexed: Vec<(String, String)> = sqlx::query_as(
        r"SELECT c.relname::text, a.attname::text
          FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0
          WHERE i.indrelid = 'jobs'::regclass
            AND (a.attnum = ANY (i.indkey)
                 OR coalesce(pg_get_expr(i.indexprs, i.indrelid), '') ~ ('\m' || a.attname || '\M')
                 OR coalesce(pg_get_expr(i.indpred, i.indrelid), '') ~ ('\m' || a.attname || '\M'))",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        indexed.iter().any(|(_, column)| column == "task_id"),
        "the query sees the indexes: {indexed:?}"
    );
    let changed = [
        "status",
        "progress",
        "stage",
        "attempts",
        "worker",
        "started_at",
        "completed_at",
        "output",
        "error_message",
        "next_attempt_at",
        "updated_at",
    ];
    let blocking: Vec<_> = indexed
        .iter()
        .filter(|(_, column)| changed.contains(&column.as_str()))
        .collect();
    assert!(
        blocking.is_empty(),
        "indexes on changing columns: {blocking:?}"
    );
    let options: Option<Vec<String>> =
        sqlx::query_scalar("SELECT reloptions FROM pg_class WHERE oid = 'jobs'::regclass")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(
        options
            .unwrap_or_default()
            .contains(&"fillfactor=40".to_owned()),
        "room for a row's next version on its page"
    );
}

/// A completed attempt's line is read from the job row, not stored: it names the
/// worker unless the start was written on its own line, and it comes last.
#[tokio::test]
async fn a_completed_jobs_last_line_is_read_from_its_row() {
    let db = TestDb::new().await;
    let quick = push(&db.pool, JobSpec::Noop(Noop {}), None).await;
    // Long enough that its start is written before its end.
    let slow = push(&db.pool, sleep(600, 1), Some(2)).await;
    let worker = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, quick, "completed", Duration::from_secs(10)).await;
    wait_for_status(&db.pool, slow, "completed", Duration::from_secs(10)).await;
    worker.stop().await;

    for (id, max_attempts) in [(quick, 5), (slow, 2)] {
        let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
        let worker = job.worker.clone().unwrap();
        let events = db::job_events::for_job(&db.pool, id).await.unwrap();
        let last = events.last().unwrap();
        let separate_start = format!("Attempt 1 of {max_attempts} started on {worker}");
        let named = if events.iter().any(|e| e.message == separate_start) {
            String::new()
        } else {
            format!(" on {worker}")
        };
        assert!(
            last.message
                .starts_with(&format!("Attempt 1 of {max_attempts}{named} completed in ")),
            "{events:#?}"
        );
        assert_eq!((last.id, last.level.as_str()), (None, "info"));
        assert_eq!(Some(last.at), job.completed_at);
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job_events WHERE job_id = $1 AND message LIKE '%completed in%'",
        )
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(stored, 0, "the completion line is not stored");
    }
    let slow_log = event_messages(&db.pool, slow).await;
    assert!(
        slow_log[0].starts_with("Attempt 1 of 2 started on "),
        "{slow_log:?}"
    );
    let took = slow_log
        .last()
        .unwrap()
        .strip_prefix("Attempt 1 of 2 completed in ")
        .unwrap_or_else(|| panic!("{slow_log:?}"));
    let seconds = match took.split_once(' ') {
        Some((ms, "ms")) => ms.parse::<f64>().unwrap() / 1000.0,
        Some((s, "s")) => s.parse::<f64>().unwrap(),
        _ => panic!("{took}"),
    };
    assert!(seconds >= 0.6, "{took}");
}

/// `jobs.updated_at` moves with every write: the ledger sets it itself (its
/// trigger is skipped then), and any other writer gets it from the trigger.
#[tokio::test]
async fn a_jobs_updated_at_moves_with_the_ledger_and_with_any_other_writer() {
    let db = TestDb::new().await;
    let id = push(&db.pool, JobSpec::Noop(Noop {}), None).await;
    let updated_at = || async {
        sqlx::query_scalar::<_, DateTime<Utc>>("SELECT updated_at FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    let queued = updated_at().await;

    let worker = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, id, "completed", Duration::from_secs(10)).await;
    worker.stop().await;
    let completed = updated_at().await;
    assert!(completed > queued, "{queued} then {completed}");

    sqlx::query("UPDATE jobs SET stage = 'checked' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    let touched = updated_at().await;
    assert!(touched > completed, "{completed} then {touched}");
}

#[tokio::test]
async fn failing_job_is_retried_with_growing_delays_then_fails_with_its_error() {
    let base = Duration::from_millis(300);
    let db = TestDb::with_settings(&test_backoff(base)).await;
    let spec = JobSpec::Fail(Fail {
        message: "the scanner jammed".into(),
        ..Fail::default()
    });
    let id = push(&db.pool, spec, Some(3)).await;
    let worker = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, id, "failed", Duration::from_secs(15)).await;
    worker.stop().await;

    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 3);
    assert_eq!(job.error_message.as_deref(), Some("the scanner jammed"));
    assert_eq!(task_state(&db.pool, id).await, ("Failed".to_owned(), 3));
    // One job ended, failed: its retries are not endings.
    assert_eq!(ended_today(&db.pool).await, (0, 1));

    let starts = attempt_starts(&db.pool, id).await;
    assert_eq!(starts.len(), 3);
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds() as f64)
        .collect();
    println!("delays between attempts: {gaps:?} ms (base {base:?}, ±20 % jitter)");
    // base * 2^(n-1), ±20 %: 240..=360 ms, then 480..=720 ms, plus the time a
    // worker takes to look again (up to a poll interval): never earlier.
    assert!(gaps[0] >= 240.0, "first retry after {} ms", gaps[0]);
    assert!(gaps[1] >= 480.0, "second retry after {} ms", gaps[1]);

    let events = event_messages(&db.pool, id).await;
    // The delays the queue scheduled grow; the measured gaps also hold the
    // pickup time, which is noise, so the growth is read from the schedule.
    let scheduled: Vec<f64> = events
        .iter()
        .filter_map(|e| e.split("; retrying in ").nth(1))
        .map(|rest| rest.trim_end_matches(" s").parse().unwrap())
        .collect();
    assert_eq!(scheduled.len(), 2, "{events:?}");
    assert!((0.2..=0.4).contains(&scheduled[0]), "{scheduled:?}");
    assert!((0.45..=0.75).contains(&scheduled[1]), "{scheduled:?}");
    assert!(
        scheduled[1] > scheduled[0],
        "delays must grow: {scheduled:?}"
    );
    assert!(
        events.iter().any(|e| e.starts_with("Attempt 1 of 3")
            && e.contains(" failed: the scanner jammed; retrying in ")),
        "{events:?}"
    );
    let last = events.last().unwrap();
    assert!(
        last.starts_with("Attempt 3 of 3") && last.ends_with(" failed: the scanner jammed"),
        "{events:?}"
    );
}

#[tokio::test]
async fn permanent_failure_is_not_retried() {
    let db = TestDb::new().await;
    let spec = JobSpec::Fail(Fail {
        message: "not a video".into(),
        permanent: true,
        ..Fail::default()
    });
    let id = push(&db.pool, spec, Some(5)).await;
    let worker = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, id, "failed", Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.stop().await;
    assert_eq!(task_state(&db.pool, id).await, ("Killed".to_owned(), 1));
    assert_eq!(attempt_starts(&db.pool, id).await.len(), 1);
}

#[tokio::test]
async fn retry_delay_is_kept_in_the_database_across_worker_restarts() {
    let db = TestDb::with_settings(&test_backoff(Duration::from_secs(3))).await;
    let spec = JobSpec::Fail(Fail {
        succeed_on_attempt: Some(2),
        ..Fail::default()
    });
    let id = push(&db.pool, spec, Some(3)).await;

    let first = InProcessWorker::start(&db.pool, worker_config());
    let next_attempt_at = eventually(
        Duration::from_secs(10),
        "the first attempt to fail",
        || async {
            db::jobs::get(&db.pool, id)
                .await
                .unwrap()
                .unwrap()
                .next_attempt_at
        },
    )
    .await;
    first.stop().await;
    let wait = (next_attempt_at - Utc::now()).num_milliseconds();
    assert!(
        (1_500..=3_700).contains(&wait),
        "retry scheduled {wait} ms ahead"
    );

    // A fresh worker honours the stored delay instead of retrying at once.
    let second = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, id, "completed", Duration::from_secs(10)).await;
    second.stop().await;
    let starts = attempt_starts(&db.pool, id).await;
    assert_eq!(starts.len(), 2);
    assert!(
        starts[1] >= next_attempt_at,
        "attempt 2 started at {}, before its scheduled {next_attempt_at}",
        starts[1]
    );
}

#[tokio::test]
async fn job_of_a_killed_worker_is_completed_by_another_after_the_dead_worker_window() {
    let db = TestDb::new().await;
    let id = push(&db.pool, sleep(3_000, 30), Some(3)).await;
    let mut doomed = Process::worker(&db.url, &[]);
    wait_for_status(&db.pool, id, "running", Duration::from_secs(15)).await;
    let first_worker = db::jobs::get(&db.pool, id).await.unwrap().unwrap().worker;
    doomed.signal(Signal::SIGKILL);
    doomed.wait(Duration::from_secs(5)).await;

    let killed_at = Instant::now();
    let rescuer = Process::worker(&db.url, &[]);
    wait_for_status(&db.pool, id, "completed", Duration::from_secs(20)).await;
    println!("completed {:?} after the kill", killed_at.elapsed());

    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    assert_ne!(job.worker, first_worker);
    let events = event_messages(&db.pool, id).await;
    assert!(
        events
            .iter()
            .any(|e| e.contains("stopped responding during attempt 1 of 3")),
        "{events:?}\n{}",
        rescuer.output()
    );
}

#[tokio::test]
async fn job_that_kills_its_worker_every_time_fails_at_the_attempt_cap() {
    let db = TestDb::new().await;
    let id = push(&db.pool, JobSpec::Crash(Crash {}), Some(2)).await;
    let mut crashed = 0;
    let mut last = None;
    for _ in 0..4 {
        let mut worker = Process::worker(&db.url, &["--enable-crash-jobs"]);
        let ended = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                if let Ok(Some(_)) = worker.child.try_wait() {
                    return "crashed";
                }
                if status(&db.pool, id).await == "failed" {
                    return "failed";
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
        .await
        .expect("the job neither crashed its worker nor failed");
        if ended == "failed" {
            last = Some(worker);
            break;
        }
        crashed += 1;
    }
    assert_eq!(
        crashed, 2,
        "each of the 2 attempts should take one worker down"
    );
    assert!(last.is_some(), "the job never reached the cap");
    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(job.status, "failed");
    assert_eq!(job.attempts, 2);
    assert!(
        job.error_message
            .as_deref()
            .unwrap()
            .contains("stopped responding during attempt 2 of 2"),
        "{:?}",
        job.error_message
    );
    assert_eq!(task_state(&db.pool, id).await, ("Failed".to_owned(), 2));
    // Failed by the dead-worker sweep, not by a worker: counted all the same.
    assert_eq!(ended_today(&db.pool).await, (0, 1));
}

#[tokio::test]
async fn claimed_jobs_waiting_behind_a_long_one_are_not_taken_for_orphans() {
    let db = TestDb::new().await;
    let ids: Vec<Uuid> = queue::enqueue(
        &db.pool,
        DEFAULT_QUEUE,
        (0..2).map(|_| Enqueue::from(sleep(5_000, 5))).collect(),
    )
    .await
    .unwrap();
    // One slot, two claimed per fetch: the second job waits in the worker for
    // 5 s, longer than the 3 s dead-worker window.
    let busy = Process::worker(&db.url, &["--concurrency", "1", "--batch-size", "2"]);
    wait_for_status(&db.pool, ids[0], "running", Duration::from_secs(15)).await;
    let idle = Process::worker(&db.url, &[]);
    for id in &ids {
        wait_for_status(&db.pool, *id, "completed", Duration::from_secs(30)).await;
    }
    for id in &ids {
        let starts = attempt_starts(&db.pool, *id).await;
        assert_eq!(
            starts.len(),
            1,
            "job {id} ran more than once: {:?}\n{}",
            event_messages(&db.pool, *id).await,
            idle.output()
        );
    }
    drop(busy);
}

#[tokio::test]
async fn two_worker_processes_complete_500_jobs_exactly_once() {
    let db = TestDb::new().await;
    let workers = [
        Process::worker(&db.url, &["--concurrency", "16"]),
        Process::worker(&db.url, &["--concurrency", "16"]),
    ];
    // Both take work before any is queued: a worker that starts first could
    // otherwise drain all 500 before the other one looks.
    let lane = db::queue::lane(DEFAULT_QUEUE, sleep(20, 1).kind());
    eventually(
        Duration::from_secs(30),
        "both workers to serve the sleep lane",
        || async {
            let serving: i64 =
                sqlx::query_scalar("SELECT count(*) FROM apalis.workers WHERE worker_type = $1")
                    .bind(&lane)
                    .fetch_one(&db.pool)
                    .await
                    .unwrap();
            (serving >= 2).then_some(())
        },
    )
    .await;
    // Jobs of 20 ms: one process alone would need 0.6 s for all 500 with its 16
    // slots, so both take a share however late one of them looks (no-op jobs
    // were drained by whichever process looked first, before the other did).
    let jobs = (0..500).map(|_| Enqueue::from(sleep(20, 1))).collect();
    queue::enqueue(&db.pool, DEFAULT_QUEUE, jobs).await.unwrap();
    eventually(Duration::from_secs(60), "500 completed jobs", || async {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'completed'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (done == 500).then_some(())
    })
    .await;

    // Each job's log as its page shows it (a completion's line is read from the row).
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let mut runs = std::collections::HashMap::<Uuid, usize>::new();
    for job in ids {
        for event in db::job_events::for_job(&db.pool, job).await.unwrap() {
            if names_a_run(&event.message) {
                *runs.entry(job).or_default() += 1;
            }
        }
    }
    assert_eq!(runs.len(), 500, "every job must have run");
    assert!(runs.values().all(|&n| n == 1), "a job ran more than once");
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, count(*) FROM jobs GROUP BY worker ORDER BY worker")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    println!("jobs per worker: {per_worker:?}");
    assert_eq!(per_worker.len(), 2, "both workers should have taken jobs");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "completed tasks leave the queue");
    // Both processes' ledgers counted their own share; the chart adds them up.
    assert_eq!(ended_today(&db.pool).await, (500, 0));
    drop(workers);
}

/// A PostgreSQL cluster of the test's own, for tests that restart it.
struct OwnCluster {
    cluster: buybuddy::db::embedded::Cluster,
    url: buybuddy::config::Secret,
}

impl OwnCluster {
    async fn start() -> Self {
        let dir = tempdir();
        let cluster = buybuddy::db::embedded::Cluster::new(
            &dir,
            "postgres",
            free_port(),
            None,
            buybuddy::db::embedded::Durability::Scratch,
        )
        .unwrap();
        let starting = cluster.clone();
        tokio::task::spawn_blocking(move || starting.ensure_running())
            .await
            .unwrap()
            .unwrap();
        db::create_database(&cluster, "buybuddy").await.unwrap();
        let url = cluster.url("buybuddy").unwrap();
        let pool = db::connect(&url, 1, &[]).await.unwrap();
        db::schema::migrate(&pool).await.unwrap();
        pool.close().await;
        Self { cluster, url }
    }

    async fn up(&self) {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || cluster.ensure_running())
            .await
            .unwrap()
            .unwrap();
    }

    async fn down(&self) {
        let cluster = self.cluster.clone();
        tokio::task::spawn_blocking(move || cluster.stop())
            .await
            .unwrap()
            .unwrap();
    }

    /// Completed jobs, or None while the database is unreachable.
    async fn completed(&self) -> Option<i64> {
        let pool = db::connect(&self.url, 1, &[]).await.ok()?;
        let done = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'completed'")
            .fetch_one(&pool)
            .await
            .ok();
        pool.close().await;
        done
    }

    async fn push(&self, count: usize) {
        let pool = db::connect(&self.url, 1, &[]).await.unwrap();
        let jobs = (0..count).map(|_| Enqueue::from(sleep(20, 1))).collect();
        queue::enqueue(&pool, DEFAULT_QUEUE, jobs).await.unwrap();
        pool.close().await;
    }

    async fn wait_for_completed(&self, count: i64, limit: Duration) {
        eventually(limit, &format!("{count} completed jobs"), || async {
            self.completed().await.filter(|&n| n >= count)
        })
        .await;
    }

    /// As `wait_for_completed`, showing the worker's log if it never gets there.
    async fn wait_for_completed_by(&self, worker: &Process, count: i64, limit: Duration) {
        use futures::FutureExt;
        let waited = std::panic::AssertUnwindSafe(self.wait_for_completed(count, limit))
            .catch_unwind()
            .await;
        if let Err(panic) = waited {
            eprintln!("the worker's log:\n{}", worker.output());
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
    }
}

/// Worker processes draining a burst side by side never wait seconds on one
/// statement. A bound in a test, but not a speed target: a normal statement here
/// takes milliseconds, and what this catches takes seconds (a lock between the
/// processes' ledgers, or a plan that walks every task a worker ever held: with
/// an index on the holder, one 1,000-task acknowledgement once took 17.5 s).
#[tokio::test]
async fn worker_processes_draining_a_burst_never_wait_seconds_on_one_statement() {
    const JOBS: usize = 20_000;
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
         SELECT count(*) FROM pg_stat_statements",
    )
    .execute(&db.pool)
    .await
    .expect(
        "pg_stat_statements is loaded by the embedded cluster; a test cluster started \
             before it was must be restarted (pg_ctl stop -D .data/postgres-test)",
    );
    push_noops(&db.pool, JOBS).await;
    // What autovacuum does to a freshly filled queue: statistics that say no
    // task has a holder yet (the state in which the planner once chose to find
    // tasks by holder).
    sqlx::raw_sql("ANALYZE apalis.jobs, jobs")
        .execute(&db.pool)
        .await
        .unwrap();
    let workers: Vec<Process> = (0..2)
        .map(|_| Process::worker(&db.url, &["--concurrency", "1000", "--batch-size", "1000"]))
        .collect();
    eventually(Duration::from_secs(300), "the burst drained", || async {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'completed' /* probe */")
                .fetch_one(&db.pool)
                .await
                .unwrap();
        (done == JOBS as i64).then_some(())
    })
    .await;
    drop(workers);

    let (slowest_ms, calls, query): (f64, i64, String) = sqlx::query_as(
        "SELECT max_exec_time, calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 160)
         FROM pg_stat_statements
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND query NOT LIKE '%probe%'
         ORDER BY max_exec_time DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    eprintln!("slowest statement: {slowest_ms:.0} ms ({calls} calls of: {query})");
    assert!(
        slowest_ms < 3_000.0,
        "one statement took {slowest_ms:.0} ms (slowest of {calls} calls of: {query})"
    );
    // The cause of that stall, caught whatever the timing: every task the
    // workers looked up, they found by its id (or by the fetch index), never by
    // its holder. Ended sessions hand in their counts a moment after they close.
    let by_index = eventually(
        Duration::from_secs(10),
        "the workers' index counts",
        || async {
            sqlx::raw_sql("SELECT pg_stat_clear_snapshot()")
                .execute(&db.pool)
                .await
                .unwrap();
            let scans: Vec<(String, i64)> = sqlx::query_as(
                "SELECT indexrelname::text, idx_scan FROM pg_stat_user_indexes
             WHERE schemaname = 'apalis' AND relname = 'jobs' AND idx_scan > 0 /* probe */",
            )
            .fetch_all(&db.pool)
            .await
            .unwrap();
            // At least one lookup per acknowledged task.
            (scans.iter().map(|(_, n)| n).sum::<i64>() >= JOBS as i64).then_some(scans)
        },
    )
    .await;
    for (index, scans) in &by_index {
        assert!(
            index == "jobs_pkey" || index == "idx_apalis_jobs_fetch_partial",
            "tasks were looked up through {index} ({scans} scans): {by_index:?}"
        );
    }

    let unfinished: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs /* probe */")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(unfinished, 0, "completed tasks leave the queue");
}

#[tokio::test]
async fn worker_recovers_when_postgres_restarts_under_it_and_drains_the_queue() {
    let pg = OwnCluster::start().await;
    // A short connection wait: an outage makes the worker's queue calls fail soon.
    let worker = Process::worker(
        &pg.url,
        &["--concurrency", "4", "--db-acquire-timeout", "1s"],
    );

    // Restart while jobs are in flight.
    pg.push(300).await;
    pg.wait_for_completed_by(&worker, 20, Duration::from_secs(20))
        .await;
    pg.down().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.up().await;
    pg.wait_for_completed_by(&worker, 300, Duration::from_secs(60))
        .await;

    // Restart while the worker is idle: its polls fail, it restarts, and takes
    // new work once the database is back.
    pg.down().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.up().await;
    pg.push(50).await;
    pg.wait_for_completed_by(&worker, 350, Duration::from_secs(60))
        .await;

    let log = worker.output();
    assert!(
        log.contains("worker stopped; restarting in"),
        "no restart in:\n{log}"
    );
    let pool = db::connect(&pg.url, 1, &[]).await.unwrap();
    let unfinished: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status <> 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unfinished, 0);
    pool.close().await;
}

#[tokio::test]
async fn hung_job_is_stopped_by_its_kind_timeout() {
    let db = TestDb::with_settings(&test_backoff(Duration::from_millis(100))).await;
    let id = push(&db.pool, sleep(60_000, 1), Some(2)).await;
    let mut config = worker_config();
    config
        .timeouts
        .insert("sleep".into(), Duration::from_millis(300));
    let worker = InProcessWorker::start(&db.pool, config);
    wait_for_status(&db.pool, id, "failed", Duration::from_secs(10)).await;
    worker.stop().await;
    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    assert_eq!(job.error_message.as_deref(), Some("timed out after 300 ms"));
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_job_finish() {
    let db = TestDb::new().await;
    let id = push(&db.pool, sleep(1_500, 3), None).await;
    let mut worker = Process::worker(&db.url, &["--shutdown-grace", "10s"]);
    wait_for_status(&db.pool, id, "running", Duration::from_secs(15)).await;
    worker.signal(Signal::SIGTERM);
    let exit = worker.wait(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit:?}\n{}", worker.output());
    assert_eq!(status(&db.pool, id).await, "completed");
}

#[tokio::test]
async fn a_worker_stopped_while_its_lanes_start_stops_at_once() {
    // A shutdown that arrives before a lane's apalis worker has started must
    // still stop that lane, not leave it running until the grace period ends.
    let db = TestDb::new().await;
    for _ in 0..5 {
        let mut config = worker_config();
        config.shutdown_grace = Duration::from_secs(30);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let began = Instant::now();
        let run = worker::run(config, db.pool.clone(), shutdown);
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the worker stops without waiting out its grace period")
            .unwrap();
        assert!(began.elapsed() < Duration::from_secs(10));
    }
}

#[tokio::test]
async fn sigterm_returns_an_unfinished_job_to_the_queue_after_the_grace_period() {
    let db = TestDb::new().await;
    let id = push(&db.pool, sleep(60_000, 60), None).await;
    let mut worker = Process::worker(&db.url, &["--shutdown-grace", "500ms"]);
    wait_for_status(&db.pool, id, "running", Duration::from_secs(15)).await;
    let signalled = Instant::now();
    worker.signal(Signal::SIGTERM);
    let exit = worker.wait(Duration::from_secs(10)).await;
    println!("worker exited {:?} after SIGTERM", signalled.elapsed());
    assert!(exit.success(), "{exit:?}\n{}", worker.output());

    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(job.status, "queued");
    // Not the job's fault: the attempt is not counted.
    assert_eq!(task_state(&db.pool, id).await, ("Pending".to_owned(), 0));
    let events = event_messages(&db.pool, id).await;
    assert!(
        events.last().unwrap().contains("went back to the queue"),
        "{events:?}"
    );

    // And it runs again on the next worker.
    let next = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, id, "running", Duration::from_secs(10)).await;
    assert_eq!(
        db::jobs::cancel(&db.pool, id).await.unwrap(),
        Cancel::Requested
    );
    wait_for_status(&db.pool, id, "cancelled", Duration::from_secs(10)).await;
    next.stop().await;
}

#[tokio::test]
async fn idle_worker_is_woken_by_notify_instead_of_waiting_for_its_poll() {
    let db = TestDb::new().await;
    let mut config = worker_config();
    config.poll_interval = Duration::from_secs(30);
    let worker = InProcessWorker::start(&db.pool, config);
    // Let the worker register and go idle, past its first empty fetch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pushed = Instant::now();
    let id = push(&db.pool, JobSpec::Noop(Noop {}), None).await;
    wait_for_status(&db.pool, id, "completed", Duration::from_secs(5)).await;
    println!(
        "picked up and completed {:?} after the push",
        pushed.elapsed()
    );
    worker.stop().await;
}

#[tokio::test]
async fn an_idle_worker_looks_for_jobs_on_its_poll_interval_not_in_a_loop() {
    // Every lane of an idle worker looks once per poll interval (200 ms here):
    // 13 lanes x 5 looks a second. Lanes that fetched on every wake-up of
    // their task sent thousands of statements a second and loaded the database
    // that every other worker shares.
    let db = TestDb::new().await;
    let worker = Process::worker(&db.url, &[]);
    let commits = || async {
        // Statistics reach the view within a second of a backend's commits.
        sqlx::query_scalar::<_, i64>(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    eventually(
        Duration::from_secs(30),
        "the worker's lanes to start",
        || async {
            let lanes: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.workers")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            (lanes == buybuddy::jobs::KINDS.len() as i64).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = commits().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let per_second = (commits().await - before) as f64 / 4.0;
    println!("{per_second} transactions a second while idle");
    assert!(
        per_second < 150.0,
        "an idle worker committed {per_second} transactions a second\n{}",
        worker.output()
    );
}

#[tokio::test]
async fn cancelled_queued_job_never_runs() {
    let db = TestDb::new().await;
    let id = push(&db.pool, sleep(100, 1), None).await;
    assert_eq!(
        db::jobs::cancel(&db.pool, id).await.unwrap(),
        Cancel::Cancelled
    );
    assert_eq!(status(&db.pool, id).await, "cancelled");
    assert_eq!(task_state(&db.pool, id).await, ("Killed".to_owned(), 0));

    let worker = InProcessWorker::start(&db.pool, worker_config());
    tokio::time::sleep(Duration::from_millis(800)).await;
    worker.stop().await;
    assert_eq!(status(&db.pool, id).await, "cancelled");
    assert!(attempt_starts(&db.pool, id).await.is_empty());
    assert_eq!(
        db::jobs::cancel(&db.pool, id).await.unwrap(),
        Cancel::AlreadyEnded("cancelled".into())
    );
    assert_eq!(
        db::jobs::cancel(&db.pool, Uuid::now_v7()).await.unwrap(),
        Cancel::NotFound
    );
}

#[tokio::test]
async fn cancelled_running_job_stops_at_its_next_stage() {
    let db = TestDb::new().await;
    let id = push(&db.pool, sleep(20_000, 100), None).await;
    let worker = InProcessWorker::start(&db.pool, worker_config());
    wait_for_status(&db.pool, id, "running", Duration::from_secs(10)).await;
    let asked = Instant::now();
    assert_eq!(
        db::jobs::cancel(&db.pool, id).await.unwrap(),
        Cancel::Requested
    );
    wait_for_status(&db.pool, id, "cancelled", Duration::from_secs(5)).await;
    println!("stopped {:?} after the request", asked.elapsed());
    worker.stop().await;
    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert!(job.progress < 50, "it should not have run to the end");
    assert_eq!(task_state(&db.pool, id).await.0, "Killed");
    let events = event_messages(&db.pool, id).await;
    assert!(
        events.last().unwrap().ends_with(" was cancelled"),
        "{events:?}"
    );
}

#[tokio::test]
async fn worker_and_server_refuse_an_unmigrated_database() {
    let db = TestDb::unmigrated().await;
    for command in [&["worker"][..], &["serve", "--bind", "127.0.0.1:0"][..]] {
        let mut process = Process::spawn(&db.url, command);
        let exit = process.wait(Duration::from_secs(20)).await;
        assert!(!exit.success());
        let output = process.output();
        assert!(
            output.contains("run `buybuddy migrate`"),
            "{command:?}: {output}"
        );
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("buybuddy-pg-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    // The server runs as `postgres` when the tests run as root: let it in.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn job_context_records_stage_progress_and_events_and_sees_a_cancel_request() {
    use buybuddy::jobs::{JobContext, JobError, context::Level};
    let db = TestDb::new().await;
    let id = push(&db.pool, sleep(1, 1), None).await;
    let ctx = JobContext::new(db.pool.clone(), id, 1, 5, Default::default());

    ctx.stage("decode", 10, "Decoding 24 frames").await.unwrap();
    ctx.progress(35).await.unwrap();
    ctx.event(Level::Warn, "frame 7 is blurry").await.unwrap();
    let job = db::jobs::get(&db.pool, id).await.unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.stage.as_deref(), job.progress),
        ("running", Some("decode"), 35)
    );
    let events = db::job_events::for_job(&db.pool, id).await.unwrap();
    let lines: Vec<(&str, Option<&str>, &str)> = events
        .iter()
        .map(|e| (e.level.as_str(), e.stage.as_deref(), e.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("info", Some("decode"), "Decoding 24 frames"),
            ("warn", Some("decode"), "frame 7 is blurry")
        ]
    );

    // Claimed by a worker (not cancellable outright): the next report says stop.
    sqlx::query("UPDATE apalis.jobs SET status = 'Queued' WHERE id = (SELECT task_id FROM jobs WHERE id = $1)")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        db::jobs::cancel(&db.pool, id).await.unwrap(),
        Cancel::Requested
    );
    assert!(matches!(ctx.progress(50).await, Err(JobError::Cancelled)));
    assert!(matches!(
        ctx.stage("segment", 60, "Segmenting").await,
        Err(JobError::Cancelled)
    ));
}

#[tokio::test]
async fn a_second_embedded_cluster_on_a_taken_port_says_who_holds_it_and_how_to_choose_another() {
    // The first checkout's cluster holds its port.
    let first = OwnCluster::start().await;
    let port: u16 = first
        .url
        .expose()
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let second = tempdir();
    let output = tokio::process::Command::new(binary())
        .args(["db", "start"])
        .env_remove("DATABASE_URL")
        .env("BUYBUDDY_DATA_DIR", &second)
        .env("BUYBUDDY_PG_PORT", port.to_string())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");
    assert!(said.contains("taken by PostgreSQL"), "{said}");
    assert!(said.contains("BUYBUDDY_PG_PORT="), "{said}");
    assert!(
        !said.contains("could not create any TCP/IP sockets"),
        "not PostgreSQL's raw log: {said}"
    );
    first.down().await;
}
