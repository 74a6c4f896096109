//! Deployment packages on local disk.
//!
//! * [`BlobStore`] keeps each zip once, named by its SHA-256
//!   (`<root>/blobs/sha256/<2 hex>/<64 hex>`), and unpacks it once into
//!   `<root>/code/<64 hex>/`, which execution environments mount read-only.
//! * [`inspect_and_unpack`] is the only way a zip reaches the disk: it rejects
//!   archives that are not zips, entries escaping the root (`../`, absolute paths,
//!   links pointing outside) and packages that grow past the unzipped limit while
//!   being decompressed (so a zip bomb stops at the limit, whatever its headers say),
//!   and packages with more than [`MAX_ENTRIES`] entries or entries nested deeper
//!   than [`MAX_DEPTH`] directories. Every symbolic link is resolved the way the
//!   kernel will resolve it, through the links around it, and refused if it
//!   leaves the package.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Why a package was refused or could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("Could not unzip uploaded file. Please check your file, then try to upload again.")]
    NotAZip,
    #[error("Could not unzip uploaded file: the entry '{entry}' {reason}.")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error(
        "Could not unzip uploaded file: the package has more than {limit} entries (files, directories and links)."
    )]
    TooManyEntries { limit: usize },
    #[error("Zipped size must be smaller than {limit} bytes")]
    ZippedTooLarge { limit: u64 },
    #[error("Unzipped size must be smaller than {limit} bytes")]
    UnzippedTooLarge { limit: u64 },
    #[error("blob store I/O failed at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The data directory's disk has no room left for packages.
    #[error(transparent)]
    DiskFull(#[from] disk::DiskFull),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Identity of a stored package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest256 {
    pub hex: String,
    pub base64: String,
}

impl Digest256 {
    pub fn of(bytes: &[u8]) -> Self {
        let d = Sha256::digest(bytes);
        Self {
            hex: hex::encode(d),
            base64: base64::engine::general_purpose::STANDARD.encode(d),
        }
    }
}

/// What a valid package contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    pub digest: Digest256,
    pub zipped_size: u64,
    pub unzipped_size: u64,
}

/// Blobs and unpacked code under one root directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    disk: disk::DiskGuard,
}

impl BlobStore {
    pub fn open(root: &Path) -> Result<Self, PackageError> {
        for sub in ["blobs/sha256", "code", "merged", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_at(&p))?;
        }
        // Leftovers of interrupted writes.
        let tmp = root.join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = make_writable(&p);
                let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
            }
        }
        Ok(Self {
            root: root.to_owned(),
            disk: disk::DiskGuard::unreserved(root),
        })
    }

    /// Refuses packages once the disk's free space falls to `guard`'s reserve.
    pub fn with_disk_guard(mut self, guard: disk::DiskGuard) -> Self {
        self.disk = guard;
        self
    }

    /// The guard packages are stored under.
    pub fn disk_guard(&self) -> &disk::DiskGuard {
        &self.disk
    }

    /// A write that failed for lack of space is a full disk, not an I/O fault.
    fn classify(&self, e: PackageError) -> PackageError {
        match e {
            PackageError::Io { ref source, .. } => match self.disk.full_error(source) {
                Some(full) => PackageError::DiskFull(full),
                None => e,
            },
            e => e,
        }
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        let shard = hex.get(..2).unwrap_or("00");
        self.root.join("blobs/sha256").join(shard).join(hex)
    }

    /// The directory a package is unpacked into.
    pub fn code_dir(&self, hex: &str) -> PathBuf {
        self.root.join("code").join(hex)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root.join("tmp").join(uuid::Uuid::new_v4().to_string())
    }

    /// Validates a zip, unpacks it, and stores it. Nothing is left on disk when
    /// the package is refused. Storing the same bytes twice stores them once.
    /// Refused with [`PackageError::DiskFull`] when the disk is at its reserve.
    pub fn put_package(
        &self,
        zip: &[u8],
        unzipped_limit: u64,
    ) -> Result<PackageInfo, PackageError> {
        if zip.len() as u64 > model::limits::ZIP_MAX_BYTES {
            return Err(PackageError::ZippedTooLarge {
                limit: model::limits::ZIP_MAX_BYTES,
            });
        }
        self.disk.check(zip.len() as u64)?;
        self.store_package(zip, unzipped_limit)
            .map_err(|e| self.classify(e))
    }

    fn store_package(&self, zip: &[u8], unzipped_limit: u64) -> Result<PackageInfo, PackageError> {
        let digest = Digest256::of(zip);
        let code_dir = self.code_dir(&digest.hex);
        let staging = self.tmp_path();
        let unzipped_size = match inspect_and_unpack(zip, &staging, unzipped_limit) {
            Ok(n) => n,
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let blob = self.blob_path(&digest.hex);
        if !blob.exists() {
            if let Some(parent) = blob.parent() {
                fs::create_dir_all(parent).map_err(io_at(parent))?;
            }
            let tmp = self.tmp_path();
            write_synced(&tmp, zip)?;
            fs::rename(&tmp, &blob).map_err(io_at(&blob))?;
        }
        if code_dir.exists() {
            let _ = fs::remove_dir_all(&staging);
        } else {
            seal_read_only(&staging)?;
            if let Err(e) = fs::rename(&staging, &code_dir) {
                let _ = make_writable(&staging);
                let _ = fs::remove_dir_all(&staging);
                if !code_dir.exists() {
                    return Err(PackageError::Io {
                        path: code_dir,
                        source: e,
                    });
                }
            }
        }
        Ok(PackageInfo {
            digest,
            zipped_size: zip.len() as u64,
            unzipped_size,
        })
    }

    /// The stored zip bytes.
    pub fn read(&self, hex: &str) -> Result<Vec<u8>, PackageError> {
        let p = self.blob_path(hex);
        fs::read(&p).map_err(io_at(&p))
    }

    /// Makes sure the unpacked code of a stored blob exists (it may have been
    /// removed to save space) and returns its directory.
    pub fn ensure_unpacked(&self, hex: &str) -> Result<PathBuf, PackageError> {
        let dir = self.code_dir(hex);
        if dir.exists() {
            return Ok(dir);
        }
        let zip = self.read(hex)?;
        self.put_package(&zip, u64::MAX)?;
        Ok(dir)
    }

    /// One read-only directory holding unpacked layers merged in order, as
    /// Lambda extracts layers into `/opt`: a later layer's file replaces an
    /// earlier one's. Built once per combination, from hard links.
    pub fn ensure_merged(&self, digests: &[String]) -> Result<Option<PathBuf>, PackageError> {
        self.merge(digests).map_err(|e| self.classify(e))
    }

    fn merge(&self, digests: &[String]) -> Result<Option<PathBuf>, PackageError> {
        match digests {
            [] => return Ok(None),
            [one] => return self.ensure_unpacked(one).map(Some),
            _ => {}
        }
        let key = hex::encode(Sha256::digest(digests.join(",").as_bytes()));
        let dir = self.root.join("merged").join(&key);
        if dir.exists() {
            return Ok(Some(dir));
        }
        let tmp = self.tmp_path();
        fs::create_dir(&tmp).map_err(io_at(&tmp))?;
        for d in digests {
            let src = self.ensure_unpacked(d)?;
            merge_tree(&src, &tmp).map_err(io_at(&tmp))?;
        }
        seal_read_only(&tmp)?;
        let manifest = self.root.join("merged").join(format!("{key}.layers"));
        write_synced(&manifest, digests.join("\n").as_bytes())?;
        match fs::rename(&tmp, &dir) {
            Ok(()) => Ok(Some(dir)),
            // Another caller built the same combination first.
            Err(_) if dir.exists() => {
                let _ =
                    make_writable(&tmp).and_then(|_| fs::remove_dir_all(&tmp).map_err(io_at(&tmp)));
                Ok(Some(dir))
            }
            Err(e) => Err(PackageError::Io {
                path: dir,
                source: e,
            }),
        }
    }

    /// Removes a blob and its unpacked code. Callers check that nothing uses it.
    pub fn delete(&self, hex: &str) -> Result<(), PackageError> {
        self.delete_merged_with(hex)?;
        let blob = self.blob_path(hex);
        match fs::remove_file(&blob) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(PackageError::Io {
                    path: blob,
                    source: e,
                });
            }
        }
        let dir = self.code_dir(hex);
        if dir.exists() {
            // Move aside first so a half-deleted tree is never visible as code.
            let trash = self.tmp_path();
            fs::rename(&dir, &trash).map_err(io_at(&dir))?;
            make_writable(&trash)?;
            fs::remove_dir_all(&trash).map_err(io_at(&trash))?;
        }
        Ok(())
    }
}

impl BlobStore {
    /// Removes every merged layer directory built from `hex`.
    fn delete_merged_with(&self, hex: &str) -> Result<(), PackageError> {
        let merged = self.root.join("merged");
        let Ok(entries) = fs::read_dir(&merged) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "layers") {
                continue;
            }
            let uses = fs::read_to_string(&p)
                .map(|m| m.lines().any(|l| l == hex))
                .unwrap_or(false);
            if uses {
                let dir = p.with_extension("");
                if dir.exists() {
                    let trash = self.tmp_path();
                    fs::rename(&dir, &trash).map_err(io_at(&dir))?;
                    make_writable(&trash)?;
                    fs::remove_dir_all(&trash).map_err(io_at(&trash))?;
                }
                fs::remove_file(&p).map_err(io_at(&p))?;
            }
        }
        Ok(())
    }
}

/// Copies the tree `src` over `dst` with hard links: files and links from
/// `src` replace what `dst` has at the same path.
fn merge_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let ty = entry.file_type()?;
        let existing = fs::symlink_metadata(&to).ok();
        if ty.is_dir() {
            match existing {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    fs::remove_file(&to)?;
                    fs::create_dir(&to)?;
                }
                None => fs::create_dir(&to)?,
            }
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
            merge_tree(&from, &to)?;
            continue;
        }
        if let Some(m) = existing {
            if m.is_dir() {
                make_writable(&to).map_err(|e| io::Error::other(e.to_string()))?;
                fs::remove_dir_all(&to)?;
            } else {
                fs::remove_file(&to)?;
            }
        }
        if ty.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), PackageError> {
    let mut f = fs::File::create(path).map_err(io_at(path))?;
    f.write_all(data).map_err(io_at(path))?;
    f.sync_all().map_err(io_at(path))
}

/// Clears write permission on everything below `path` (symlinks untouched).
fn seal_read_only(path: &Path) -> Result<(), PackageError> {
    fn go(p: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(p)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        if meta.is_dir() {
            for entry in fs::read_dir(p)? {
                go(&entry?.path())?;
            }
        }
        fs::set_permissions(
            p,
            fs::Permissions::from_mode(meta.permissions().mode() & !0o222),
        )
    }
    go(path).map_err(io_at(path))
}

/// Restores owner permissions on the directories below `path`, so that the
/// tree can be removed. Files are left alone: unlinking needs only the
/// directory's permission, and a file may be a hard link shared with another
/// (live) tree.
fn make_writable(path: &Path) -> Result<(), PackageError> {
    fn go(p: &Path) -> io::Result<()> {
        let meta = fs::symlink_metadata(p)?;
        if !meta.is_dir() {
            return Ok(());
        }
        fs::set_permissions(
            p,
            fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
        )?;
        for entry in fs::read_dir(p)? {
            go(&entry?.path())?;
        }
        Ok(())
    }
    go(path).map_err(io_at(path))
}

/// Most entries (files, directories and links) a package may have: each is an
/// inode on the host, and real packages (a large `node_modules`, scientific
/// Python) stay well below it.
pub const MAX_ENTRIES: usize = 100_000;
/// Deepest directory nesting of an entry.
pub const MAX_DEPTH: usize = 128;
/// Longest entry name, in bytes (the host path must stay under `PATH_MAX`).
pub const MAX_NAME_BYTES: usize = 1024;
/// Longest single path component, in bytes (`NAME_MAX`).
const MAX_COMPONENT_BYTES: usize = 255;
/// Links followed while resolving one path before giving up, as the kernel
/// does (`ELOOP` after 40).
const MAX_LINK_HOPS: u32 = 40;
/// Path components examined while resolving every link of one package.
const LINK_WALK_BUDGET: u64 = 4_000_000;

/// The safe, normalised relative path of an entry, or why it is unsafe.
fn entry_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.starts_with('/') || name.starts_with('\\') {
        return Err("has an absolute path");
    }
    if name.contains('\0') {
        return Err("has a NUL byte in its name");
    }
    if name.len() > MAX_NAME_BYTES {
        return Err("has a name longer than 1024 bytes");
    }
    let mut out = PathBuf::new();
    let mut depth = 0;
    for comp in Path::new(name).components() {
        match comp {
            Component::Normal(c) => {
                if c.len() > MAX_COMPONENT_BYTES {
                    return Err("has a path component longer than 255 bytes");
                }
                depth += 1;
                if depth > MAX_DEPTH + 1 {
                    return Err("is nested more than 128 directories deep");
                }
                out.push(c)
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("escapes the package root"),
            Component::RootDir | Component::Prefix(_) => return Err("has an absolute path"),
        }
    }
    Ok(out)
}

/// An entry name as quoted in an error message: at most 200 characters.
fn quoted(name: &str) -> String {
    const MAX: usize = 200;
    if name.chars().count() <= MAX {
        return name.to_owned();
    }
    let head: String = name.chars().take(MAX).collect();
    format!("{head}...")
}

/// Why a link resolves outside the package.
#[derive(Debug, PartialEq, Eq)]
enum Escape {
    /// `..` above the package root, or an absolute target.
    Leaves,
    /// The package's links together take too long to resolve.
    TooComplex,
}

/// Resolves the link at `link` (relative to `root`) the way the kernel's
/// path walk will once the package is mounted: component by component,
/// following every link met on the way (including links created by later
/// entries), `..` taking the parent of where the walk really is. Refused when
/// the walk leaves the package; a missing component or a file in the middle
/// ends the walk, and so do more than [`MAX_LINK_HOPS`] links (the kernel fails
/// there too, inside the package).
fn resolve_link(root: &Path, link: &Path, budget: &mut u64) -> Result<(), Escape> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    // Where the walk is (real directories only, never links) and what is left.
    let mut at: Vec<OsString> = link
        .parent()
        .map(|p| p.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default();
    let mut left: VecDeque<OsString> = VecDeque::new();
    left.push_back(link.file_name().map(|n| n.to_owned()).unwrap_or_default());
    let mut hops = 0u32;
    while let Some(comp) = left.pop_front() {
        *budget = budget.checked_sub(1).ok_or(Escape::TooComplex)?;
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp == ".." {
            if at.pop().is_none() {
                return Err(Escape::Leaves);
            }
            continue;
        }
        let here: PathBuf = root.join(at.iter().collect::<PathBuf>()).join(&comp);
        let Ok(meta) = fs::symlink_metadata(&here) else {
            return Ok(());
        };
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_LINK_HOPS {
                // The kernel stops here too (ELOOP), inside the package.
                return Ok(());
            }
            let target = fs::read_link(&here).map_err(|_| Escape::Leaves)?;
            if target.is_absolute() {
                return Err(Escape::Leaves);
            }
            for c in target.iter().rev() {
                left.push_front(c.to_owned());
            }
            continue;
        }
        if meta.is_dir() {
            at.push(comp);
        } else if !left.is_empty() {
            // A file in the middle of the path: ENOTDIR.
            return Ok(());
        }
    }
    Ok(())
}

/// Whether a symlink at `link` (relative to the root) pointing at `target`
/// stays inside the root.
fn link_stays_inside(link: &Path, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth: i64 = link.components().count() as i64 - 1;
    for comp in Path::new(target).components() {
        match comp {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Checks every entry of `zip` and unpacks it into `dest` (which must not
/// exist). Returns the unzipped size. Sizes are counted as bytes are actually
/// decompressed, so lying headers do not help a zip bomb.
pub fn inspect_and_unpack(
    zip: &[u8],
    dest: &Path,
    unzipped_limit: u64,
) -> Result<u64, PackageError> {
    let mut archive =
        zip::ZipArchive::new(io::Cursor::new(zip)).map_err(|_| PackageError::NotAZip)?;
    if archive.len() > MAX_ENTRIES {
        return Err(PackageError::TooManyEntries { limit: MAX_ENTRIES });
    }
    fs::create_dir_all(dest).map_err(io_at(dest))?;
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut links: Vec<(PathBuf, String)> = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|_| PackageError::NotAZip)?;
        let raw_name = entry
            .name()
            .map_err(|_| PackageError::NotAZip)?
            .into_owned();
        let rel = entry_path(&raw_name).map_err(|reason| PackageError::UnsafeEntry {
            entry: quoted(&raw_name),
            reason,
        })?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let out = dest.join(&rel);
        // Refuse to write through a symlink an earlier entry created.
        for anc in rel.ancestors().skip(1) {
            if anc.as_os_str().is_empty() {
                break;
            }
            if let Ok(m) = fs::symlink_metadata(dest.join(anc))
                && m.file_type().is_symlink()
            {
                return Err(PackageError::UnsafeEntry {
                    entry: raw_name,
                    reason: "is inside a symbolic link",
                });
            }
        }
        if entry.is_dir() {
            fs::create_dir_all(&out).map_err(io_at(&out))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(io_at(parent))?;
        }
        if fs::symlink_metadata(&out).is_ok() {
            return Err(PackageError::UnsafeEntry {
                entry: raw_name,
                reason: "appears twice in the archive",
            });
        }
        let mode = entry.unix_mode().unwrap_or(0o644);
        if mode & 0o170000 == 0o120000 {
            let mut target = Vec::new();
            (&mut entry)
                .take(4096)
                .read_to_end(&mut target)
                .map_err(|_| PackageError::NotAZip)?;
            let target = String::from_utf8(target).map_err(|_| PackageError::UnsafeEntry {
                entry: raw_name.clone(),
                reason: "is a link whose target is not valid text",
            })?;
            if !link_stays_inside(&rel, &target) {
                return Err(PackageError::UnsafeEntry {
                    entry: raw_name,
                    reason: "is a link pointing outside the package root",
                });
            }
            total += target.len() as u64;
            symlink(&target, &out).map_err(io_at(&out))?;
            links.push((rel, raw_name));
            continue;
        }
        let mut f = fs::File::create(&out).map_err(io_at(&out))?;
        loop {
            let n = entry.read(&mut buf).map_err(|_| PackageError::NotAZip)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > unzipped_limit {
                return Err(PackageError::UnzippedTooLarge {
                    limit: unzipped_limit,
                });
            }
            f.write_all(&buf[..n]).map_err(io_at(&out))?;
        }
        // Keep the execute bits; never setuid, setgid or sticky; always readable.
        let perm = (mode & 0o755) | 0o444;
        fs::set_permissions(&out, fs::Permissions::from_mode(perm)).map_err(io_at(&out))?;
    }
    // Each link on its own stays inside; chained through the others (`l0 ->
    // .`, `l1 -> l0/..`, ...) it may not: resolve every one on the final tree.
    let mut budget = LINK_WALK_BUDGET;
    for (rel, raw_name) in links {
        let reason = match resolve_link(dest, &rel, &mut budget) {
            Ok(()) => continue,
            Err(Escape::Leaves) => "is a link that resolves outside the package root",
            Err(Escape::TooComplex) => "is one of links too intricate to resolve",
        };
        return Err(PackageError::UnsafeEntry {
            entry: quoted(&raw_name),
            reason,
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests;
