//! `canary validate` and `canary schema`.

use super::*;

pub(super) fn validate(paths: &[PathBuf], output: Format) -> Exit {
    let set = manifest::load(paths);
    let mut exit = Exit::Ok;
    for unreadable in &set.unreadable {
        print(&Error::Core(CoreError::Unreadable(unreadable.clone())));
        exit = exit.and(Exit::Runtime);
    }
    if !set.diagnostics.is_empty() {
        exit = exit.and(Exit::Invalid);
    }
    // Readable paths with no manifest file at all: a check that checked nothing is a
    // wrong path (or a missing `.yaml` suffix), not a pass.
    let nothing = (set.files == 0 && set.unreadable.is_empty()).then(|| Diagnostic {
        file: list(paths),
        line: 0,
        column: 0,
        path: String::new(),
        message: "no manifest files here".to_owned(),
        label: None,
        hint: Some("canary reads the `.yaml` and `.yml` files under the paths it is given; check the path".to_owned()),
    });
    if nothing.is_some() {
        exit = exit.and(Exit::Invalid);
    }
    match output {
        Format::Json | Format::Yaml => {
            let mut all: Vec<Diagnostic> = set.diagnostics.clone();
            all.extend(set.unreadable.iter().map(|u| Diagnostic {
                file: u.path.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read: {}", u.reason),
                label: None,
                hint: None,
            }));
            all.extend(nothing);
            print_value(&serde_json::to_value(&all).unwrap_or_default(), output);
        }
        Format::Text => {
            let colour = Colour::for_stderr();
            let mut stderr = std::io::stderr().lock();
            for d in &set.diagnostics {
                let source = set.sources.get(&d.file).map(String::as_str);
                let _ = writeln!(stderr, "{}", diagnostic::render(d, source, colour));
            }
            let total = set.manifests.len();
            if !set.diagnostics.is_empty() {
                let errors = set.diagnostics.len();
                let mut bad_files: Vec<&str> = set.diagnostics.iter().map(|d| d.file.as_str()).collect();
                bad_files.dedup();
                let _ = writeln!(
                    stderr,
                    "{} {errors} {} found in {} of {} {}",
                    colour.paint("1;31", "error:"),
                    plural(errors, "problem"),
                    bad_files.len(),
                    set.files,
                    plural(set.files, "file"),
                );
            } else if let Some(d) = &nothing {
                let hint = d.hint.as_deref().unwrap_or_default();
                let _ = writeln!(
                    stderr,
                    "{} no manifest files in {}\n  = hint: {hint}",
                    colour.paint("1;31", "error:"),
                    d.file
                );
            } else if set.unreadable.is_empty() {
                println!(
                    "ok: {total} {} valid ({} {})",
                    plural(total, "manifest"),
                    set.files,
                    plural(set.files, "file")
                );
            }
        }
    }
    exit
}

pub(super) fn schema_command(check: bool, file: &PathBuf) -> Result<Exit, Error> {
    let current = schema::schema_text();
    if !check {
        print!("{current}");
        return Ok(Exit::Ok);
    }
    let committed = std::fs::read_to_string(file).map_err(|e| {
        Error::Core(CoreError::Unreadable(manifest::source::Unreadable {
            path: file.display().to_string(),
            reason: e.to_string(),
        }))
    })?;
    if committed == current {
        println!("ok: {} is up to date", file.display());
        Ok(Exit::Ok)
    } else {
        Err(Error::Core(CoreError::StaleSchema { path: file.display().to_string() }))
    }
}
