//! The guest programs built into kvm-wss, and resolving `--guest NAME|PATH`.

use std::path::{Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/embedded_guests.rs"));

/// The image of a built-in program.
pub fn embedded(name: &str) -> Option<&'static [u8]> {
    EMBEDDED.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Where a guest comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestSource {
    Builtin(String),
    File(PathBuf),
}

/// The largest guest image read from a file. The built-in programs are a
/// few tens of KiB; the image is read whole into memory before it is
/// checked, so its size is checked first, from the file's metadata (and
/// the read stops there, should the file grow meanwhile).
pub const MAX_IMAGE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("guest image {path} is {size} bytes; the limit is {MAX_IMAGE_BYTES}")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("unknown guest {0:?}: not a built-in program (see `kvm-wss guests`) and no such file")]
    Unknown(String),
    #[error("cannot read guest image {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl GuestSource {
    /// A name is a built-in program; anything with a `/` or that names an
    /// existing file is a path.
    pub fn parse(s: &str) -> Result<GuestSource, GuestError> {
        if !s.contains('/') && embedded(s).is_some() {
            Ok(GuestSource::Builtin(s.to_string()))
        } else if Path::new(s).is_file() {
            let path = PathBuf::from(s);
            let size = std::fs::metadata(&path)
                .map_err(|source| GuestError::Read {
                    path: path.clone(),
                    source,
                })?
                .len();
            if size > MAX_IMAGE_BYTES {
                return Err(GuestError::TooLarge { path, size });
            }
            Ok(GuestSource::File(path))
        } else {
            Err(GuestError::Unknown(s.to_string()))
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            GuestSource::Builtin(n) => n.clone(),
            GuestSource::File(p) => p.display().to_string(),
        }
    }

    pub fn image(&self) -> Result<Vec<u8>, GuestError> {
        match self {
            GuestSource::Builtin(n) => embedded(n)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| GuestError::Unknown(n.clone())),
            GuestSource::File(p) => read_capped(p),
        }
    }
}

/// Reads the image at `path`, refusing one over [`MAX_IMAGE_BYTES`]
/// before reading it and never reading more than that.
fn read_capped(path: &Path) -> Result<Vec<u8>, GuestError> {
    use std::io::Read;
    let err = |source| GuestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let size = file.metadata().map_err(err)?.len();
    let too_large = |size| GuestError::TooLarge {
        path: path.to_path_buf(),
        size,
    };
    if size > MAX_IMAGE_BYTES {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_images_are_refused_before_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.elf");
        let f = std::fs::File::create(&big).expect("create");
        // Sparse: no disk used, and never read.
        f.set_len(1 << 30).expect("set_len");
        let name = big.to_str().expect("utf-8");
        let err = GuestSource::parse(name).expect_err("too large");
        assert!(matches!(err, GuestError::TooLarge { size, .. } if size == 1 << 30));
        assert!(matches!(
            read_capped(&big),
            Err(GuestError::TooLarge { .. })
        ));
        let small = dir.path().join("small.elf");
        std::fs::write(&small, b"\x7fELF").expect("write");
        assert_eq!(read_capped(&small).expect("read"), b"\x7fELF");
    }
}
