//! What the commands share: loading manifests the way `validate` reports them, the
//! platform from the environment, the runtimes, and printing values as JSON or YAML.

use super::*;

pub(super) fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_owned() } else { format!("{word}s") }
}

pub(super) fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Loads the manifests, reporting invalid ones the way `validate` does (on stderr).
pub(super) fn load_valid(paths: &[PathBuf]) -> (Vec<canary_core::manifest::CanaryRollout>, Exit) {
    report_set(&manifest::load(paths))
}

/// Reports a loaded set's problems on stderr; returns its valid rollouts.
pub(super) fn report_set(set: &manifest::ManifestSet) -> (Vec<canary_core::manifest::CanaryRollout>, Exit) {
    let mut exit = Exit::Ok;
    for unreadable in &set.unreadable {
        print(&Error::Core(CoreError::Unreadable(unreadable.clone())));
        exit = exit.and(Exit::Runtime);
    }
    let colour = Colour::for_stderr();
    for d in &set.diagnostics {
        eprint!("{}", diagnostic::render(d, set.sources.get(&d.file).map(String::as_str), colour));
        exit = exit.and(Exit::Invalid);
    }
    (set.valid().cloned().collect(), exit)
}

/// The platform from the environment, made inside `rt` (Google's credential sources
/// start background refresh tasks, which need a runtime).
pub(super) fn gcp(rt: &tokio::runtime::Runtime) -> Result<Gcp, Error> {
    let _inside = rt.enter();
    Gcp::from_environment().map_err(|e| Error::Core(CoreError::Credentials(e)))
}

/// The runtime of a one-shot command (a pass, status, a report, a manual command): one
/// thread. A pass is one future whose rollouts interleave on it; with worker threads
/// too, every HTTP answer crossed threads to reach it, which cost ~10–15% more time at
/// 10,000 rollouts (`make bench`) and bought nothing. Manifests are still parsed on every
/// core (plain threads, before the runtime starts).
pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the async runtime: {e}")))
}

/// The runtime of a long-running command (`watch`, `demo`, `emulator`): a worker per
/// core, so concurrent passes, the `/metrics` server and the emulator's requests use
/// them all.
pub(super) fn server_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the async runtime: {e}")))
}

pub(super) fn print_value(value: &impl serde::Serialize, output: Format) {
    match output {
        Format::Yaml => print!("{}", serde_saphyr::to_string(value).unwrap_or_default()),
        _ => println!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
    }
}

pub(super) fn unknown_rollout(name: &str, manifests: &std::path::Path) -> Error {
    Error::Core(CoreError::UnknownRollout { name: name.to_owned(), manifests: manifests.display().to_string() })
}

/// The rollouts `status` shows (all, or the one named): the valid ones, and — so that
/// during an incident the one people look for is there — those whose manifest is
/// invalid now, to be shown frozen (see [`status::statuses`]).
pub(super) fn status_rollouts(
    name: Option<&str>,
    manifests: &std::path::Path,
) -> Result<(Vec<canary_core::manifest::CanaryRollout>, Vec<reconcile::Invalid>, Exit), Error> {
    let set = manifest::load(&[manifests.to_path_buf()]);
    let (mut rollouts, exit) = report_set(&set);
    let wanted = |n: &str| name.is_none_or(|name| name == n);
    rollouts.retain(|r| wanted(&r.metadata.name));
    let invalid = reconcile::invalid_edits(&set, &rollouts, wanted);
    if let Some(name) = name
        && rollouts.is_empty()
        && invalid.is_empty()
    {
        return Err(unknown_rollout(name, manifests));
    }
    Ok((rollouts, invalid, exit))
}
