//! The long-running commands: `watch`, `demo` and `emulator`.

use super::*;

pub(super) fn run_watch(options: watch::Options) -> Result<Exit, Error> {
    let rt = server_runtime()?;
    let platform = gcp(&rt)?;
    let exit = rt.block_on(tokio::task::LocalSet::new().run_until(watch::run(options, platform)));
    // A task still waiting on the network must not hold up the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(exit?)
}

pub(super) fn run_demo(options: demo::Options) -> Result<Exit, Error> {
    let runtime = server_runtime()?;
    let exit = runtime.block_on(tokio::task::LocalSet::new().run_until(demo::run(options)));
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    exit
}

pub(super) fn run_emulator(options: emulator::ServeOptions) -> Result<Exit, Error> {
    server_runtime()?.block_on(emulator::serve(options)).map_err(Error::Emulator)?;
    Ok(Exit::Ok)
}
