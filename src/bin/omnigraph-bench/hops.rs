//! `omnigraph-bench hops [ROUNDS]`: what a thread hop costs on this
//! machine, in CPU time (user + system of this process) and wall time per
//! round trip. A hop is how the server reaches the file system: tokio runs
//! file work on its blocking pool (`spawn_blocking`), and Lance's local
//! writes (`LocalWriter`, `tempfile`) and `object_store`'s local store take
//! several such hops per file. Three measurements, each on a runtime of two
//! workers free to use every CPU, then on one whose threads all stay on
//! one CPU (`sched_setaffinity`, as the server's commit runtime does:
//! docs/performance.md):
//!
//! - a `spawn_blocking` of an empty closure, awaited;
//! - an 11-byte file written with `tokio::fs::write` (a hop);
//! - the same file written with `std::fs::write` on the worker (no hop).

use std::time::Instant;

/// CPU time (user + system) of this process so far, in microseconds;
/// 0 when `getrusage` fails.
fn cpu_us() -> f64 {
    // SAFETY: `getrusage` fills the zeroed struct on this stack.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 * 1e6 + v.tv_usec as f64;
    t(r.ru_utime) + t(r.ru_stime)
}

/// Microseconds of CPU and of wall time per round of `f`, `rounds` times.
async fn per_round<F, Fut>(rounds: usize, mut f: F) -> Result<(f64, f64), String>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    for i in 0..rounds / 10 {
        f(i).await?;
    }
    let (c0, t0) = (cpu_us(), Instant::now());
    for i in 0..rounds {
        f(i).await?;
    }
    let n = rounds.max(1) as f64;
    Ok(((cpu_us() - c0) / n, t0.elapsed().as_secs_f64() * 1e6 / n))
}

/// The three measurements on a fresh runtime of `workers` workers.
fn measure(label: &str, workers: usize, rounds: usize) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let base = dir.path().to_path_buf();
    let (hop, tokio_write, std_write) = rt.block_on(async move {
        let hop = per_round(rounds, |_| async {
            tokio::task::spawn_blocking(|| ())
                .await
                .map_err(|e| e.to_string())
        })
        .await?;
        let files = rounds / 10;
        let tw = per_round(files, |i| {
            let p = base.join(format!("f{}", i % 100));
            async move {
                tokio::fs::write(&p, b"hello world")
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await?;
        let sw = per_round(files, |i| {
            let p = base.join(format!("f{}", i % 100));
            async move { std::fs::write(&p, b"hello world").map_err(|e| e.to_string()) }
        })
        .await?;
        Ok::<_, String>((hop, tw, sw))
    })?;
    println!(
        "{label:<28} spawn_blocking {:>6.2} µs CPU {:>6.2} µs wall | tokio::fs::write {:>6.2} / {:>6.2} | std::fs::write {:>6.2} / {:>6.2}",
        hop.0, hop.1, tokio_write.0, tokio_write.1, std_write.0, std_write.1
    );
    Ok(())
}

/// Keeps the calling thread (and the threads it starts afterwards) on the
/// first CPU it may use. Linux only; elsewhere it does nothing.
fn stay_on_one_cpu() -> Result<usize, String> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `cpu_set_t` on this stack, filled and read by the libc
        // calls and macros for this thread (pid 0).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
            let cpu = (0..libc::CPU_SETSIZE as usize)
                .find(|c| libc::CPU_ISSET(*c, &set))
                .ok_or("no CPU allowed")?;
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) != 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
            Ok(cpu)
        }
    }
    #[cfg(not(target_os = "linux"))]
    Err("pinning is Linux only".into())
}

/// Runs the measurements: two workers on every CPU, then two workers kept
/// on one CPU. `rounds` hops per figure (a tenth as many file writes).
pub fn run(rounds: usize) -> Result<(), String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("thread hops: {rounds} per figure, {cpus} CPUs; CPU and wall time per round trip");
    measure("2 workers, every CPU", 2, rounds)?;
    std::thread::spawn(move || {
        let cpu = stay_on_one_cpu()?;
        measure(&format!("2 workers, CPU {cpu} only"), 2, rounds)
    })
    .join()
    .map_err(|_| "the pinned measurement panicked".to_string())?
}
