//! Probe kinds: jobs that stand in for real work when checking the queue itself
//! (throughput, progress, retries, timeouts, crashes). They are part of the
//! queue's contract, so workers run them, but the web and the API refuse them
//! unless the server was started for testing (`--enable-probe-jobs`).

pub mod crash;
pub mod fail;
pub mod noop;
pub mod sleep;
