//! The manual commands: `pause`, `resume`, `promote`, `abort`, `retry`.

use super::*;

pub(super) fn operate(target: &Named, command: operate::Command) -> Result<Exit, Error> {
    let (rollouts, _) = load_valid(std::slice::from_ref(&target.manifests));
    let Some(rollout) = rollouts.into_iter().find(|r| r.metadata.name == target.name) else {
        return Err(unknown_rollout(&target.name, &target.manifests));
    };
    let rt = runtime()?;
    let platform = gcp(&rt)?;
    match rt.block_on(operate::run(&platform, &rollout, command)) {
        Ok(message) => {
            println!("{}", output::with_manifests(&message, &target.manifests));
            Ok(Exit::Ok)
        }
        Err(refusal) => Err(Error::Core(refusal.into())),
    }
}
