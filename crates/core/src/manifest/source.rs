//! Finding and reading manifest files: the paths a user names, folders searched
//! recursively for `*.yaml` / `*.yml`, each file read whole within a size limit.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The largest manifest file canary reads. Real manifests are a few kilobytes; the
/// limit keeps a stray log or database dump from being parsed at all.
pub(crate) const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A manifest file's text, with the path as the user should see it.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

impl SourceFile {
    pub(crate) fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// A path that could not be read at all, as opposed to a file with bad content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Unreadable {
    pub path: String,
    pub reason: String,
}

/// A file whose bytes are not manifest text (too big, not UTF-8), reported against the
/// file so the rest of the set is still checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    pub(crate) path: PathBuf,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

/// What came of reading the named paths.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    pub(crate) files: Vec<SourceFile>,
    pub(crate) rejected: Vec<Rejected>,
    pub(crate) unreadable: Vec<Unreadable>,
}

/// Reads every manifest file under `paths`. A named file is read whatever its
/// extension; folders contribute their `*.yaml` / `*.yml` files, recursively, skipping
/// hidden entries (`.git`). Symlinks are followed, each real file read once.
pub(crate) fn read_all(paths: &[PathBuf]) -> Sources {
    let (found, unreadable) = manifest_files(paths);
    let mut sources = Sources { unreadable, ..Sources::default() };
    let mut seen = BTreeSet::new();
    for path in found {
        let real = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen.insert(real) {
            continue;
        }
        match read_one(&path) {
            Ok(Ok(file)) => sources.files.push(file),
            Ok(Err(rejected)) => sources.rejected.push(rejected),
            Err(e) => sources.unreadable.push(e),
        }
    }
    sources
}

/// The manifest files `paths` name, in the order [`read_all`] reads them (before it drops
/// a file reached twice), and the paths that could not be listed. Also what `watch`
/// fingerprints to notice a change without reading any file.
pub(crate) fn manifest_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Unreadable>) {
    let (mut found, mut unreadable) = (Vec::new(), Vec::new());
    for path in paths {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let mut visited = BTreeSet::new();
                if let Err(e) = walk(path, &mut found, &mut visited) {
                    unreadable.push(e);
                }
            }
            Ok(_) => found.push(path.clone()),
            Err(e) => unreadable.push(Unreadable { path: path.display().to_string(), reason: io_reason(&e) }),
        }
    }
    (found, unreadable)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>, visited: &mut BTreeSet<PathBuf>) -> Result<(), Unreadable> {
    let unreadable = |e: std::io::Error| Unreadable { path: dir.display().to_string(), reason: io_reason(&e) };
    // A symlinked folder that points back up the tree would otherwise loop forever.
    if !visited.insert(fs::canonicalize(dir).map_err(unreadable)?) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(unreadable)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.')))
        .collect();
    entries.sort();
    for entry in entries {
        let Ok(meta) = fs::metadata(&entry) else {
            continue; // a dangling symlink: nothing to read
        };
        if meta.is_dir() {
            walk(&entry, found, visited)?;
        } else if entry.extension().is_some_and(|ext| ext == "yaml" || ext == "yml") {
            found.push(entry);
        }
    }
    Ok(())
}

fn read_one(path: &Path) -> Result<Result<SourceFile, Rejected>, Unreadable> {
    let unreadable = |e: std::io::Error| Unreadable { path: path.display().to_string(), reason: io_reason(&e) };
    let reject = |message: String, hint: Option<&str>| Rejected {
        path: path.to_path_buf(),
        line: 1,
        column: 1,
        message,
        hint: hint.map(str::to_owned),
    };
    let size = fs::metadata(path).map_err(unreadable)?.len();
    if size > MAX_FILE_BYTES {
        return Ok(Err(reject(
            format!("file is {} bytes; a manifest file may be at most {MAX_FILE_BYTES} bytes (1 MiB)", size),
            Some("is this really a manifest? split large sets into several files"),
        )));
    }
    let bytes = fs::read(path).map_err(unreadable)?;
    match String::from_utf8(bytes) {
        Ok(text) if text.contains('\0') => Ok(Err(reject(
            "file contains NUL bytes; manifests are UTF-8 text".to_owned(),
            Some("this looks like a binary file: remove it from the manifest folder"),
        ))),
        Ok(text) => Ok(Ok(SourceFile { path: path.to_path_buf(), text })),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            Ok(Err(Rejected {
                line,
                column,
                ..reject(
                    "file is not valid UTF-8 text".to_owned(),
                    Some("save the file as UTF-8; if it is not a manifest, remove it from the manifest folder"),
                )
            }))
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}
