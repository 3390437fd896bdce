//! `make sim`: runs seeds of the simulation, in parallel on every core, and prints what
//! they did; on a broken rule, the trace of the first failing seed and how to replay it.
//!
//! Settings come from the environment (as `make sim SEEDS=N` passes them):
//! `SEEDS` (how many, default 2000), `SEED` (replay one), `FIRST` (the first seed,
//! default 0), `STEPS` (busy steps per seed).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use canary_sim::{Config, Failure, Report, run};

fn env(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    match text.parse() {
        Ok(n) => Some(n),
        Err(_) => {
            eprintln!("error: {name}={text} is not a whole number");
            std::process::exit(2);
        }
    }
}

fn main() {
    let mut config = Config::default();
    if let Some(steps) = env("STEPS") {
        config.steps = usize::try_from(steps).unwrap_or(usize::MAX);
    }
    let (first, count) = match env("SEED") {
        Some(seed) => (seed, 1),
        None => (env("FIRST").unwrap_or(0), env("SEEDS").unwrap_or(2000)),
    };
    let started = Instant::now();
    let next = AtomicU64::new(first);
    let reports: Mutex<Vec<Report>> = Mutex::new(Vec::new());
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    // A panic is caught and reported as a broken rule; its default message would only
    // interleave with the other threads' output.
    if std::env::var_os("SIM_PANICS").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count {
                        return;
                    }
                    match run(seed, &config) {
                        Ok(report) => reports.lock().unwrap_or_else(|p| p.into_inner()).push(report),
                        Err(failure) => failures.lock().unwrap_or_else(|p| p.into_inner()).push(failure),
                    }
                }
            });
        }
    });
    let reports = reports.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|f| f.seed);
    let passes: usize = reports.iter().map(|r| r.passes).sum();
    let writes: usize = reports.iter().map(|r| r.writes).sum();
    println!(
        "sim: {count} seeds from {first} ({} steps each, {threads} threads): {} kept every rule, {} broke one; {passes} passes, {writes} writes; {:.1} s",
        config.steps,
        reports.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(first_failure) = failures.first() {
        let seeds: Vec<String> = failures.iter().take(20).map(|f| f.seed.to_string()).collect();
        let mut rules: Vec<&str> = failures.iter().flat_map(|f| f.violations.iter().map(|v| v.invariant)).collect();
        rules.sort_unstable();
        rules.dedup();
        println!("failing seeds: {}{}", seeds.join(" "), if failures.len() > 20 { " …" } else { "" });
        println!("rules broken: {}", rules.join(", "));
        println!("\n{first_failure}");
        std::process::exit(1);
    }
}
