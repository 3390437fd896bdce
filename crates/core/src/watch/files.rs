//! Noticing manifest changes: notify, through notify-debouncer-full so an editor's
//! atomic save (write a temporary file, rename it over) or a `git checkout` touching
//! hundreds of files arrive as one burst a few milliseconds long.
//!
//! What is watched: each named path's real folder, recursively, and the folder that
//! holds the named path itself, so a symlink that a configuration tool swaps to a new
//! release folder is noticed (and the new target then watched). Events are only a hint
//! to reload; the periodic resync catches anything they miss.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, event::AccessKind, event::AccessMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc::UnboundedSender;

/// How long a burst of file events is gathered before the manifests are reloaded:
/// long enough for an atomic save, short enough to stay far under the 300 ms target
/// from save to first write.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(50);

/// File watching for a set of manifest paths.
pub(crate) struct FileWatch {
    debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    /// Folders watched, and whether recursively.
    watched: BTreeSet<(PathBuf, bool)>,
}

impl FileWatch {
    /// Starts watching; `changed` gets a message after each burst that touched the paths.
    pub(crate) fn start(paths: &[PathBuf], changed: UnboundedSender<()>) -> Result<FileWatch, String> {
        let roots: Vec<PathBuf> = paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())).collect();
        // Ticking once per timeout hands a burst (a checkout) over in one or two batches
        // rather than file by file, so it becomes one or two passes.
        let debouncer = new_debouncer(DEBOUNCE, Some(DEBOUNCE), move |result: DebounceEventResult| match result {
            Ok(events) => {
                let relevant = events
                    .iter()
                    .filter(|e| !is_read(&e.event.kind))
                    .flat_map(|e| e.event.paths.iter())
                    .any(|p| relevant(p, &roots));
                if relevant {
                    let _ = changed.send(());
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!("file watching: {e}; the periodic resync still catches changes");
                }
                // Something may have been missed: reload to be safe.
                let _ = changed.send(());
            }
        })
        .map_err(|e| format!("cannot watch files: {e}"))?;
        let mut watch = FileWatch { debouncer, watched: BTreeSet::new() };
        watch.follow(paths);
        Ok(watch)
    }

    /// Watches what `paths` point at now: call after each reload, so a swapped
    /// symlink's new target is watched and the old one let go.
    pub(crate) fn follow(&mut self, paths: &[PathBuf]) {
        let wanted = folders(paths);
        for (path, recursive) in self.watched.difference(&wanted).cloned().collect::<Vec<_>>() {
            let _ = self.debouncer.unwatch(&path);
            self.watched.remove(&(path, recursive));
        }
        for (path, recursive) in wanted.difference(&self.watched).cloned().collect::<Vec<_>>() {
            let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
            match self.debouncer.watch(&path, mode) {
                Ok(()) => {
                    self.watched.insert((path, recursive));
                }
                Err(e) => tracing::warn!(path = %path.display(), "cannot watch: {e}; relying on the periodic resync"),
            }
        }
    }
}

/// A digest of what the manifest files look like on disk — each one's path, size,
/// modification time and inode, and where each named path leads — without reading
/// them. The resync reloads only when it changed, so an idle watch over thousands of
/// manifests costs a directory walk per resync, not a parse of every file.
pub(crate) fn stamp(paths: &[PathBuf]) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    use std::os::unix::fs::MetadataExt as _;
    let mut hasher = std::hash::DefaultHasher::new();
    for path in paths {
        std::fs::canonicalize(path).ok().hash(&mut hasher);
    }
    // The loader's own listing: what it would read is what the stamp covers.
    let (files, unreadable) = crate::manifest::source::manifest_files(paths);
    unreadable.len().hash(&mut hasher);
    for file in files {
        file.hash(&mut hasher);
        if let Ok(meta) = std::fs::metadata(&file) {
            (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino(), meta.ctime_nsec()).hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// The folders to watch for `paths`: each one's real location (recursively when a
/// folder), and the folder holding each as named (not recursively).
fn folders(paths: &[PathBuf]) -> BTreeSet<(PathBuf, bool)> {
    let mut out = BTreeSet::new();
    for path in paths {
        let named = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        if let Some(parent) = named.parent().filter(|p| p.is_dir()) {
            out.insert((parent.to_path_buf(), false));
        }
        if let Ok(real) = std::fs::canonicalize(path) {
            if real.is_dir() {
                out.insert((real, true));
            } else if let Some(parent) = real.parent() {
                out.insert((parent.to_path_buf(), false));
            }
        }
    }
    // A folder watched recursively covers its own non-recursive watch.
    let recursive: Vec<PathBuf> = out.iter().filter(|(_, r)| *r).map(|(p, _)| p.clone()).collect();
    out.retain(|(p, r)| *r || !recursive.contains(p));
    out
}

/// Reading a file (our own reloads among them) changes nothing.
fn is_read(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(access) if *access != AccessKind::Close(AccessMode::Write))
}

/// Whether an event at `path` can change the manifests under `roots`: inside one of
/// them (as named or as resolved), or one of them itself (a swapped symlink).
fn relevant(path: &Path, roots: &[PathBuf]) -> bool {
    roots
        .iter()
        .any(|root| path.starts_with(root) || std::fs::canonicalize(root).is_ok_and(|real| path.starts_with(real)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_moves_when_a_manifest_changes_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [dir.path().to_path_buf()];
        std::fs::write(dir.path().join("a.yaml"), "a: 1").unwrap();
        let first = stamp(&paths);
        assert_eq!(stamp(&paths), first);
        std::fs::write(dir.path().join(".a.yaml.swp"), "scratch").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        assert_eq!(stamp(&paths), first, "hidden files and other extensions are not manifests");
        std::fs::write(dir.path().join("a.yaml"), "a: 2").unwrap();
        let second = stamp(&paths);
        assert_ne!(second, first);
        std::fs::create_dir(dir.path().join("team")).unwrap();
        std::fs::write(dir.path().join("team/b.yml"), "b: 1").unwrap();
        assert_ne!(stamp(&paths), second);
    }

    #[test]
    fn reads_are_not_changes() {
        assert!(is_read(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(is_read(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!is_read(&EventKind::Access(AccessKind::Close(AccessMode::Write))));
        assert!(!is_read(&EventKind::Remove(notify::event::RemoveKind::File)));
    }

    #[test]
    fn a_symlinked_folder_is_watched_where_it_points_and_where_it_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("release-1");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("current");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let watched = folders(std::slice::from_ref(&link));
        let base = std::fs::canonicalize(dir.path()).unwrap();
        assert!(watched.contains(&(base.join("release-1"), true)), "{watched:?}");
        assert!(watched.iter().any(|(p, r)| !r && p.ends_with(dir.path().file_name().unwrap())), "{watched:?}");
        assert!(relevant(&base.join("release-1/api.yaml"), std::slice::from_ref(&link)));
        assert!(!relevant(&base.join("elsewhere.yaml"), &[link]));
    }
}
