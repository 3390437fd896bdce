//! What a person looks at: `canary status` (a table, or one rollout's whole picture),
//! `status --watch`, and `canary report`.

use super::*;

pub(super) fn status_watch(
    name: Option<&str>,
    manifests: &std::path::Path,
    output: Format,
    interval: std::time::Duration,
) -> Result<Exit, Error> {
    let (rollouts, invalid, exit) = status_rollouts(name, manifests)?;
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    let output = match output {
        Format::Text => view::live::Output::Text,
        Format::Json => view::live::Output::Json,
        Format::Yaml => view::live::Output::Yaml,
    };
    // As text, the commands in reasons are completed with `-f` (see output::with_manifests).
    let look = || async {
        let mut snapshot = view::live::look(&platform, &rollouts, &invalid).await;
        if output == view::live::Output::Text {
            output::complete_commands(&mut snapshot.statuses, manifests);
        }
        snapshot
    };
    rt.block_on(view::live::run(look, output, interval, |_| false))
        .map_err(|e| Error::runtime(format!("cannot write the view: {e}")))?;
    Ok(exit)
}

pub(super) fn report_command(name: &str, manifests: &std::path::Path, out: &std::path::Path) -> Result<Exit, Error> {
    let (rollouts, exit) = load_valid(&[manifests.to_path_buf()]);
    let Some(rollout) = rollouts.iter().find(|r| r.metadata.name == name) else {
        return Err(unknown_rollout(name, manifests));
    };
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    let written = rt.block_on(report::write(&platform, rollout, out)).map_err(|e| Error::Core(e.into()))?;
    println!("{}", written.display());
    Ok(exit)
}

pub(super) fn status(name: Option<&str>, manifests: &std::path::Path, output: Format) -> Result<Exit, Error> {
    let (rollouts, invalid, exit) = status_rollouts(name, manifests)?;
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    let outcomes = rt.block_on(reconcile::pass_with_invalid(&platform, &rollouts, &invalid, Mode::Plan));
    let mut statuses = status::statuses(&rollouts, &outcomes);
    if output == Format::Text {
        output::complete_commands(&mut statuses, manifests);
    }
    match output {
        // One rollout: the whole picture (stages, revisions, each trigger and gate); all
        // of them: a table, a line each.
        Format::Text if name.is_some() => {
            let now = outcomes.first().map_or_else(std::time::SystemTime::now, |o| o.now);
            let lines = view::render(&statuses, now, Colour::for_stdout());
            println!("{}", lines.join("\n"));
        }
        Format::Text => print!("{}", output::status_table(&statuses)),
        other => print_value(&statuses, other),
    }
    Ok(exit.and(if outcomes.iter().any(|o| o.error.is_some()) { Exit::Runtime } else { Exit::Ok }))
}
