//! Runs one workload of `walrus bench compare` on the Rust original and prints one JSON line:
//! `{"workload": W, "entries": N, "seconds": S}`, or `{"workload": W, "unsupported": REASON}`.
//!
//! Usage: `walrus-rust-peer BACKEND WORKLOAD ENTRY_BYTES SECONDS` with BACKEND `mmap` or `fd`
//! (pread/pwrite, io_uring for batches). The data directory is `$WALRUS_DATA_DIR` (the
//! original's own variable); the bench gives every run a fresh one.

use std::env;
use std::io;
use std::process::exit;
use std::time::{Duration, Instant};

use walrus_rust::{disable_fd_backend, enable_fd_backend, FsyncSchedule, ReadConsistency, Walrus};

const CHUNK: usize = 1000; // entries per step, as in the Python bench
const SYNC_CHUNK: usize = 10;
const PREFILL_MAX: usize = 2_000_000;
const CURSOR_EVERY: u32 = 1000; // AtLeastOnce(1000): the position persisted every 1000 reads
const BATCH_READ_BYTES: usize = 1 << 20;
const TOPIC: &str = "bench";

/// Repeat `step` (entries done, 0 when nothing is left) for `seconds`: (entries, seconds).
fn timed(seconds: f64, mut step: impl FnMut() -> io::Result<usize>) -> io::Result<(usize, f64)> {
    let start = Instant::now();
    let limit = Duration::from_secs_f64(seconds);
    let mut ops = 0;
    loop {
        let done = step()?;
        ops += done;
        let elapsed = start.elapsed();
        if done == 0 || elapsed >= limit {
            return Ok((ops, elapsed.as_secs_f64()));
        }
    }
}

fn open(schedule: FsyncSchedule) -> io::Result<Walrus> {
    Walrus::with_consistency_and_schedule(
        ReadConsistency::AtLeastOnce { persist_every: CURSOR_EVERY },
        schedule,
    )
}

/// Untimed: as many entries as `seconds` allow (at most PREFILL_MAX), in batches.
fn prefill(wal: &Walrus, batch: &[&[u8]], seconds: f64) -> io::Result<()> {
    let mut filled = 0;
    timed(seconds, || {
        if filled >= PREFILL_MAX {
            return Ok(0);
        }
        wal.batch_append_for_topic(TOPIC, batch)?;
        filled += batch.len();
        Ok(batch.len())
    })?;
    Ok(())
}

fn run(workload: &str, payload: &[u8], seconds: f64) -> io::Result<Option<(usize, f64)>> {
    let batch: Vec<&[u8]> = vec![payload; CHUNK];
    let each = |wal: &Walrus, count: usize| -> io::Result<usize> {
        for _ in 0..count {
            wal.append_for_topic(TOPIC, payload)?;
        }
        Ok(count)
    };
    Ok(Some(match workload {
        "append" => {
            let wal = open(FsyncSchedule::NoFsync)?;
            timed(seconds, || each(&wal, CHUNK))?
        }
        "sync_each" => {
            let wal = open(FsyncSchedule::SyncEach)?;
            timed(seconds, || each(&wal, SYNC_CHUNK))?
        }
        "batch1000" => {
            let wal = open(FsyncSchedule::NoFsync)?;
            timed(seconds, || wal.batch_append_for_topic(TOPIC, &batch).map(|_| CHUNK))?
        }
        "consume" => {
            let wal = open(FsyncSchedule::NoFsync)?;
            prefill(&wal, &batch, seconds)?;
            timed(seconds, || {
                let mut done = 0;
                while done < CHUNK && wal.read_next(TOPIC, true)?.is_some() {
                    done += 1;
                }
                Ok(done)
            })?
        }
        "batch_read" => {
            let wal = open(FsyncSchedule::NoFsync)?;
            prefill(&wal, &batch, seconds)?;
            timed(seconds, || {
                Ok(wal.batch_read_for_topic(TOPIC, BATCH_READ_BYTES, true, None)?.len())
            })?
        }
        _ => return Ok(None), // no call in the original syncs on demand (append_sync1000)
    }))
}

fn main() {
    let args: Vec<String> = env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: {} mmap|fd WORKLOAD ENTRY_BYTES SECONDS", args[0]);
        exit(2);
    }
    let (backend, workload) = (args[1].as_str(), args[2].as_str());
    let size: usize = args[3].parse().expect("ENTRY_BYTES: a number");
    let seconds: f64 = args[4].parse().expect("SECONDS: a number");
    match backend {
        "mmap" => disable_fd_backend(),
        "fd" => enable_fd_backend(),
        _ => {
            eprintln!("backend: mmap or fd, not {backend}");
            exit(2);
        }
    }
    let payload: Vec<u8> = (0..size).map(|i| (i % 256) as u8).collect();
    match run(workload, &payload, seconds) {
        Ok(Some((entries, secs))) => println!(
            "{{\"workload\": \"{workload}\", \"entries\": {entries}, \"seconds\": {secs}}}"
        ),
        Ok(None) => println!(
            "{{\"workload\": \"{workload}\", \"unsupported\": \"the original has no such call\"}}"
        ),
        Err(err) => {
            eprintln!("{workload}: {err}");
            exit(1);
        }
    }
}
