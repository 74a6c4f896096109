//! Deployment packages: a folder zipped the same way every time (sorted
//! entries, fixed timestamps, the owner's execute bit kept), so the same
//! files give the same `CodeSha256` and a redeploy changes nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use sha2::Digest as _;

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot zip {path}: {reason}")]
    Zip { path: PathBuf, reason: String },
    #[error("{0} is not a folder or a .zip file")]
    NotCode(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A zip ready to upload, and its `CodeSha256` (base64 of its SHA-256).
#[derive(Debug, Clone)]
pub struct Package {
    pub zip: Vec<u8>,
    pub sha256_b64: String,
}

impl Package {
    pub fn new(zip: Vec<u8>) -> Self {
        let sha256_b64 =
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&zip));
        Self { zip, sha256_b64 }
    }
}

/// A folder is zipped; a `.zip` file is taken as it is.
pub fn from_path(path: &Path, progress: &dyn Fn(u64, u64)) -> Result<Package, PackageError> {
    from_path_under(path, "", progress)
}

/// As [`from_path`], a folder's entries under `prefix` (`python/` for a
/// Python layer's installed dependencies).
pub fn from_path_under(
    path: &Path,
    prefix: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<Package, PackageError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    if meta.is_dir() {
        return zip_dir_under(path, prefix, progress);
    }
    if meta.is_file() {
        let bytes = std::fs::read(path).map_err(io(path))?;
        progress(bytes.len() as u64, bytes.len() as u64);
        return Ok(Package::new(bytes));
    }
    Err(PackageError::NotCode(path.to_owned()))
}

/// Every regular file under `dir` (symbolic links followed), sorted by path.
pub fn files(dir: &Path) -> Result<Vec<(String, PathBuf)>, PackageError> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dir.to_owned())];
    while let Some((prefix, d)) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(io(&d))? {
            let e = e.map_err(io(&d))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            let rel = format!("{prefix}{name}");
            let m = std::fs::metadata(&p).map_err(io(&p))?;
            if m.is_dir() {
                stack.push((format!("{rel}/"), p));
            } else if m.is_file() {
                out.push((rel, p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Zips `dir` with deterministic entries. `progress(done, total)` in bytes.
pub fn zip_dir(dir: &Path, progress: &dyn Fn(u64, u64)) -> Result<Package, PackageError> {
    zip_dir_under(dir, "", progress)
}

fn zip_dir_under(
    dir: &Path,
    prefix: &str,
    progress: &dyn Fn(u64, u64),
) -> Result<Package, PackageError> {
    use std::os::unix::fs::PermissionsExt as _;
    let files = files(dir)?;
    let mut total = 0u64;
    let mut sizes = Vec::with_capacity(files.len());
    for (_, p) in &files {
        let m = std::fs::metadata(p).map_err(io(p))?;
        total += m.len();
        sizes.push(m);
    }
    let zerr = |reason: zip::result::ZipError| PackageError::Zip {
        path: dir.to_owned(),
        reason: reason.to_string(),
    };
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut done = 0u64;
    for ((rel, p), m) in files.iter().zip(&sizes) {
        let exec = m.permissions().mode() & 0o111 != 0;
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(if exec { 0o755 } else { 0o644 });
        w.start_file(format!("{prefix}{rel}"), opts).map_err(zerr)?;
        let data = std::fs::read(p).map_err(io(p))?;
        w.write_all(&data).map_err(io(p))?;
        done += data.len() as u64;
        progress(done, total);
    }
    let zip = w.finish().map_err(zerr)?.into_inner();
    Ok(Package::new(zip))
}

/// A package of one file (CloudFormation's `ZipFile`, SAM's `InlineCode`).
pub fn inline(file_name: &str, text: &str) -> Result<Package, PackageError> {
    let zerr = |reason: zip::result::ZipError| PackageError::Zip {
        path: file_name.into(),
        reason: reason.to_string(),
    };
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    w.start_file(file_name, opts).map_err(zerr)?;
    w.write_all(text.as_bytes())
        .map_err(io(Path::new(file_name)))?;
    Ok(Package::new(w.finish().map_err(zerr)?.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_files_same_sha_and_modes_kept() {
        use std::os::unix::fs::PermissionsExt as _;
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("lib/x")).unwrap();
        std::fs::write(d.path().join("app.py"), "def handler(e, c): return 1\n").unwrap();
        std::fs::write(d.path().join("lib/x/m.py"), "X = 1\n").unwrap();
        std::fs::write(d.path().join("bootstrap"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            d.path().join("bootstrap"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let a = zip_dir(d.path(), &|_, _| {}).unwrap();
        // Touching a file changes its time, not the package.
        std::fs::write(d.path().join("app.py"), "def handler(e, c): return 1\n").unwrap();
        let b = zip_dir(d.path(), &|_, _| {}).unwrap();
        assert_eq!(a.sha256_b64, b.sha256_b64);
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(a.zip)).unwrap();
        let names: Vec<_> = (0..z.len())
            .map(|i| z.by_index(i).unwrap().name().unwrap().into_owned())
            .collect();
        assert_eq!(names, ["app.py", "bootstrap", "lib/x/m.py"]);
        assert_eq!(z.by_name("bootstrap").unwrap().unix_mode(), Some(0o100755));
        assert_eq!(z.by_name("app.py").unwrap().unix_mode(), Some(0o100644));
        std::fs::write(d.path().join("app.py"), "def handler(e, c): return 2\n").unwrap();
        let c = zip_dir(d.path(), &|_, _| {}).unwrap();
        assert_ne!(a.sha256_b64, c.sha256_b64);
    }
}
