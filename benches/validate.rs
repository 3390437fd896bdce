//! `make bench`: validating 1,000 manifest files with the release binary, against the
//! independent check-jsonschema on the same files. Prints medians and their ratio.
//! Machines here are shared and noisy: read the medians, not single runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FILES: usize = 1_000;
const RUNS: usize = 15;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/ion-api.yaml")).unwrap();
    let mut files = Vec::with_capacity(FILES);
    for i in 0..FILES {
        let text = example
            .replace("name: ion-api", &format!("name: ion-api-{i}"))
            .replace("service: ion-api", &format!("service: ion-api-{i}"));
        let path = dir.path().join(format!("rollout-{i:04}.yaml"));
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let canary = env!("CARGO_BIN_EXE_canary");
    let ours = time(RUNS, || {
        let out = Command::new(canary).arg("validate").arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    });
    println!(
        "validate {FILES} files, canary (release): median {} over {RUNS} runs (min {})",
        ms(median(&ours)),
        ms(ours[0])
    );
    println!("  target: < 500 ms -> {}", if median(&ours) < Duration::from_millis(500) { "met" } else { "NOT met" });

    let tools = std::env::var_os("CANARY_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin"));
    let checker = tools.join("check-jsonschema");
    if !checker.exists() {
        println!("check-jsonschema not found at {} (run `make tools`); no ratio", checker.display());
        return;
    }
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/canaryrollout.schema.json");
    let theirs = time(3, || {
        let out = Command::new(&checker).arg("--schemafile").arg(&schema).args(&files).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    });
    println!("validate {FILES} files, check-jsonschema: median {} over 3 runs", ms(median(&theirs)));
    println!(
        "  ratio: canary is {:.1}x faster (median vs median)",
        median(&theirs).as_secs_f64() / median(&ours).as_secs_f64()
    );
}

fn time(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times
}

fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
