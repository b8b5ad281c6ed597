// graphile-worker under the protocol of `buybuddy bench queue`, one phase per
// call so that the bench can read the database's counters between phases:
//
//   node run.mjs enqueue <database url> <jobs>
//   node run.mjs drain   <database url> <jobs> <concurrency> <local queue size>
//   node run.mjs pickup  <database url> <samples> <concurrency> <local queue size>
//
// `enqueue` installs graphile-worker's schema and adds no-op jobs; `drain` runs
// one worker until they are all done and written; `pickup` pushes single jobs
// into the idle queue and times how long each waits to start. Each prints one
// JSON object on stdout; warnings go to stderr.
import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";

const [phase, url, countArg, concurrencyArg, localQueueArg] = process.argv.slice(2);
const count = Number(countArg);
const concurrency = Number(concurrencyArg ?? 1);
const localQueue = Number(localQueueArg ?? 1);
if (!["enqueue", "drain", "pickup"].includes(phase) || !url || !(count >= 0)) {
  console.error("usage: node run.mjs enqueue|drain|pickup <database url> <count> [concurrency local-queue-size]");
  process.exit(2);
}

// Wall-clock milliseconds with sub-millisecond resolution.
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const logger = new Logger((scope) => (level, message) => {
  if (level === "warning" || level === "error") console.error(`graphile-worker ${scope.label ?? ""}: ${message}`);
});

// The only task: notes when jobs start and end, and wakes whoever waits.
let firstStart = null;
let lastEnd = null;
let ended = 0;
let onStart = null;
let onEnded = null;
const taskList = {
  noop: async () => {
    const started = now();
    firstStart ??= started;
    onStart?.(started);
    ended += 1;
    lastEnd = now();
    onEnded?.(ended);
  },
};

// The performance settings of graphile-worker's docs: a local queue, completions
// batched with no added delay, and a pool as large as the concurrency.
const startWorker = () =>
  run({
    preset: {
      worker: {
        connectionString: url,
        concurrentJobs: concurrency,
        localQueue: { size: localQueue },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
        pollInterval: 100,
        maxPoolSize: concurrency + 1,
      },
    },
    taskList,
    logger,
    noHandleSignals: true,
  });

const utils = await makeWorkerUtils({ connectionString: url, logger });
let result;
if (phase === "enqueue") {
  await runMigrations({ connectionString: url, logger });
  const started = now();
  for (let at = 0; at < count; at += 5000) {
    const chunk = Array.from({ length: Math.min(5000, count - at) }, () => ({ identifier: "noop", payload: {} }));
    await utils.addJobs(chunk);
  }
  result = { enqueue_ms: now() - started };
} else if (phase === "drain") {
  const drained = new Promise((resolve) => {
    onEnded = (n) => n === count && resolve();
  });
  const runner = await startWorker();
  await drained;
  // The round ends when every completion is written.
  const left = async () =>
    (await utils.withPgClient((c) => c.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs /* bench-probe */")))
      .rows[0].n;
  for (let waited = 0; (await left()) > 0; waited += 1) {
    if (waited > 10000) throw new Error("completions were not written within 10 s");
    await sleep(1);
  }
  await runner.stop();
  result = { drain_ms: lastEnd - firstStart };
} else {
  const runner = await startWorker();
  // The first job waits for the worker to be up, and is not counted.
  await new Promise((resolve) => {
    onStart = resolve;
    utils.addJob("noop", {});
  });
  const pickupMs = [];
  for (let i = 0; i < count; i += 1) {
    await sleep(20);
    const started = new Promise((resolve) => {
      onStart = resolve;
    });
    await utils.addJob("noop", {});
    const committed = now();
    const at = await Promise.race([started, sleep(10000).then(() => null)]);
    if (at === null) throw new Error("a job was not picked up within 10 s");
    pickupMs.push(at - committed);
  }
  await runner.stop();
  result = { pickup_ms: pickupMs };
}
await utils.release();
const { version } = JSON.parse(
  await (await import("node:fs/promises")).readFile(new URL("./node_modules/graphile-worker/package.json", import.meta.url)),
);
console.log(JSON.stringify({ version, node: process.version, ...result }));
