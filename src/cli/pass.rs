//! `canary plan` and `canary reconcile --once`: one pass, printed.

use super::*;

pub(super) fn run_pass(args: &PassArgs, mode: Mode) -> Result<Exit, Error> {
    let (output, shard) = (args.output, args.shard);
    let set = manifest::load(&args.paths);
    let (rollouts, mut exit) = report_set(&set);
    let mine = |name: &str| shard.is_none_or(|s| s.owns(name));
    let rollouts: Vec<_> = rollouts.into_iter().filter(|r| mine(&r.metadata.name)).collect();
    // Invalid edits of rollouts under way are held, not dropped (see reconcile).
    let invalid = reconcile::invalid_edits(&set, &rollouts, mine);
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    let outcomes = rt.block_on(reconcile::pass_with_invalid(&platform, &rollouts, &invalid, mode));
    match output {
        // Commands in reasons completed with `-f` when one manifests path was given.
        Format::Text => match args.paths.as_slice() {
            [path] => print!("{}", output::with_manifests(&output::pass_table(&outcomes), path)),
            _ => print!("{}", output::pass_table(&outcomes)),
        },
        other => print_value(&output::pass_json(&outcomes), other),
    }
    for outcome in &outcomes {
        if let Some(error) = &outcome.error {
            print(&Error::Core(CoreError::Pass { rollout: outcome.name.clone(), error: Box::new(error.clone()) }));
            exit = exit.and(Exit::Runtime);
        }
        match outcome.plan.as_ref().map(|p| p.result) {
            Some(PassResult::RolledBack | PassResult::Failed) if mode == Mode::Apply => {
                exit = exit.and(Exit::RolledBack)
            }
            Some(PassResult::Blocked) => {
                let reason = outcome.plan.as_ref().map(|p| p.reason.clone()).unwrap_or_default();
                print(&Error::Core(CoreError::Blocked { rollout: outcome.name.clone(), reason }));
                exit = exit.and(Exit::Runtime);
            }
            _ => {}
        }
    }
    Ok(exit)
}
