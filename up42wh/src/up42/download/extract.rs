//! `--extract` (`extract = true` on a route): a verified ZIP archive unpacked beside it, into a
//! folder of its name without `.zip`, through `.NAME.unpacking` renamed when whole (a folder under
//! its final name is complete, as a file is). An entry that would leave the folder (`..`, an
//! absolute path), a symlink or any other special file is refused, and the bytes unpacked are
//! bounded: counted as they are written, not taken from the archive's own sizes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::transfer::io_error;
use crate::error::Error;

/// Exit code of an archive refused (it would leave its folder, holds a link, unpacks too large, or
/// is not a ZIP archive).
pub const ARCHIVE_REFUSED: u8 = 11;

/// How many times its own size an archive may unpack to, at least 1 GiB: imagery compresses
/// little, a ZIP bomb a thousandfold.
const RATIO: u64 = 16;
const AT_LEAST: u64 = 1 << 30;

/// The folder `archive` unpacks to: its name without `.zip` (or with `.d` when it has none).
pub fn folder_of(archive: &Path) -> PathBuf {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = match name.strip_suffix(".zip").or(name.strip_suffix(".ZIP")) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!("{name}.d"),
    };
    archive.with_file_name(stem)
}

fn refused(archive: &Path, why: impl std::fmt::Display) -> Error {
    Error::code(
        ARCHIVE_REFUSED,
        format!(
            "{}: not unpacked: {why} (the archive itself is kept, verified)",
            archive.display()
        ),
    )
}

/// Unpacks `archive` (done when its folder exists already). The bytes unpacked.
pub fn unpack(archive: &Path) -> Result<u64, Error> {
    let len = std::fs::metadata(archive)
        .map_err(|e| io_error(archive, e))?
        .len();
    unpack_within(archive, len.saturating_mul(RATIO).max(AT_LEAST))
}

fn unpack_within(archive: &Path, limit: u64) -> Result<u64, Error> {
    let target = folder_of(archive);
    if target.is_dir() {
        return Ok(0);
    }
    let file = std::fs::File::open(archive).map_err(|e| io_error(archive, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| refused(archive, e))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let work = target.with_file_name(format!(".{name}.unpacking"));
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| io_error(&work, e))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| io_error(&work, e))?;
    let mut written = 0u64;
    let result = (|| {
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| refused(archive, e))?;
            // An absolute name is refused, not made relative: the archive is not what it says.
            let raw = String::from_utf8_lossy(entry.name_raw()).into_owned();
            let absolute = raw.starts_with(['/', '\\']) || raw.as_bytes().get(1) == Some(&b':');
            let Some(rel) = entry.enclosed_name().filter(|_| !absolute) else {
                return Err(refused(
                    archive,
                    format!("the entry {raw:?} would leave its folder"),
                ));
            };
            if entry.is_symlink() {
                return Err(refused(
                    archive,
                    format!("the entry {raw:?} is a symbolic link"),
                ));
            }
            let path = work.join(&rel);
            if entry.is_dir() {
                std::fs::create_dir_all(&path).map_err(|e| io_error(&path, e))?;
                continue;
            }
            if !entry.is_file() {
                return Err(refused(archive, format!("the entry {raw:?} is not a file")));
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_error(parent, e))?;
            }
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io_error(&path, e))?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = entry.read(&mut buf).map_err(|e| refused(archive, e))?;
                if n == 0 {
                    break;
                }
                written += n as u64;
                if written > limit {
                    return Err(refused(
                        archive,
                        format!("it unpacks to more than {limit} bytes ({RATIO} times its size, 1 GiB at least)"),
                    ));
                }
                out.write_all(&buf[..n]).map_err(|e| io_error(&path, e))?;
            }
            out.sync_all().map_err(|e| io_error(&path, e))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&work);
        return Err(e);
    }
    crate::durable::rename(&work, &target).map_err(|e| io_error(&target, e))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn archive(dir: &Path, name: &str, entries: &[(&str, &[u8])], link: Option<&str>) -> PathBuf {
        let path = dir.join(name);
        let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        let opts =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (n, data) in entries {
            w.start_file(*n, opts).unwrap();
            w.write_all(data).unwrap();
        }
        if let Some(l) = link {
            w.add_symlink("link", l, opts).unwrap();
        }
        w.finish().unwrap();
        path
    }

    #[test]
    fn archives_unpack_whole_or_not_at_all() {
        let dir = std::env::temp_dir().join(format!("up42wh-extract-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let good = archive(
            &dir,
            "scene.zip",
            &[("a/b.tif", b"tiff"), ("meta.json", b"{}")],
            None,
        );
        assert_eq!(unpack(&good).unwrap(), 6);
        assert_eq!(std::fs::read(dir.join("scene/a/b.tif")).unwrap(), b"tiff");
        assert_eq!(unpack(&good).unwrap(), 0, "done before");

        for (name, entries, link, why) in [
            (
                "up.zip",
                vec![("../evil", &b"x"[..])],
                None,
                "would leave its folder",
            ),
            (
                "abs.zip",
                vec![("/etc/evil", &b"x"[..])],
                None,
                "would leave its folder",
            ),
            (
                "link.zip",
                vec![("ok", &b"x"[..])],
                Some("/etc/passwd"),
                "symbolic link",
            ),
        ] {
            let a = archive(&dir, name, &entries, link);
            let e = unpack(&a).unwrap_err();
            assert_eq!(e.exit_code(), ARCHIVE_REFUSED);
            assert!(e.to_string().contains(why), "{e}");
            assert!(!folder_of(&a).exists(), "{name}");
            let work = dir.join(format!(
                ".{}.unpacking",
                folder_of(&a).file_name().unwrap().to_string_lossy()
            ));
            assert!(!work.exists(), "{name}");
        }
        // A bomb in small: 4 MiB of zeros in a few KiB, over a bound of 1 MiB.
        let zeros = vec![0u8; 4 << 20];
        let bomb = archive(&dir, "bomb.zip", &[("zeros", &zeros)], None);
        assert!(std::fs::metadata(&bomb).unwrap().len() < 64 * 1024);
        let e = unpack_within(&bomb, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("unpacks to more than"), "{e}");
        assert!(!dir.join("bomb").exists());
        let not_zip = dir.join("x.zip");
        std::fs::write(&not_zip, b"not an archive").unwrap();
        assert_eq!(unpack(&not_zip).unwrap_err().exit_code(), ARCHIVE_REFUSED);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
