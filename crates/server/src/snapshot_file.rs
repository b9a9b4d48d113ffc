//! Snapshot files on disk, for both roles: durable atomic replacement
//! (temporary file in the same directory, fsync, rename, fsync of the
//! directory), file names from node ids, and moving a damaged file aside.
//!
//! A crash or a failed write at any point leaves the previous file intact:
//! the new bytes only ever become visible through the rename, and the rename
//! happens only after they are on disk.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::metrics::SnapshotMetrics;

impl SnapshotMetrics {
    /// Records a snapshot written in full: its time (the age gauge's
    /// reference), entries and size. The duration is timed by the caller.
    pub fn record_success(&self, created_at_ms: u64, entries: u64, bytes: u64) {
        self.last_success.set(created_at_ms as f64 / 1000.0);
        self.entries.set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}

/// Extension of a node's snapshot file.
pub const SNAPSHOT_EXT: &str = "snap";

/// A node id made safe as a file name: ASCII letters, digits, `-`, `_` and
/// `.` are kept, anything else becomes `_`, and a leading `.` becomes `_`
/// (no hidden files, no `..`).
pub fn file_stem(node_id: &str) -> String {
    let mut out: String = node_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with('.') {
        out.insert(0, '_');
    }
    out
}

/// `dir/<file_stem(node_id)>.snap`.
pub fn snapshot_path(dir: &Path, node_id: &str) -> PathBuf {
    dir.join(format!("{}.{SNAPSHOT_EXT}", file_stem(node_id)))
}

/// The temporary name `path` is written under before the rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces `path` atomically and durably with what `write` produces.
/// Returns `write`'s result. On any error the temporary file is removed and
/// whatever was at `path` before is untouched.
pub fn write_atomic<T>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<T>,
) -> io::Result<T> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let temp = temp_path(path);
    let result = (|| {
        let file = File::create(&temp)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let value = write(&mut out)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        Ok(value)
    })();
    match result {
        Ok(value) => {
            sync_dir(dir)?;
            Ok(value)
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Makes a rename or a new entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames a damaged `path` to `<name>.corrupt-<now_ms>` beside it, so the
/// node can start and the file stays for inspection. Returns the new path.
pub fn move_aside(path: &Path, now_ms: u64) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let aside = path.with_file_name(format!("{name}.corrupt-{now_ms}"));
    fs::rename(path, &aside)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = sync_dir(dir);
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_become_safe_file_names() {
        assert_eq!(file_stem("aux-1"), "aux-1");
        assert_eq!(file_stem("host:3001"), "host_3001");
        assert_eq!(file_stem("../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_stem(""), "_");
        assert_eq!(file_stem("é/x"), "__x");
    }

    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = std::env::temp_dir().join(format!("dc-atomic-{}", std::process::id()));
        let path = dir.join("n.snap");
        write_atomic(&path, |w| w.write_all(b"first")).expect("first write");
        let err = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err::<(), _>(io::Error::other("disk full"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&path).expect("read"), b"first");
        assert!(!temp_path(&path).exists(), "the temporary file is removed");
        write_atomic(&path, |w| w.write_all(b"second")).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        let aside = move_aside(&path, 42).expect("move aside");
        assert!(aside.ends_with("n.snap.corrupt-42") && !path.exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
