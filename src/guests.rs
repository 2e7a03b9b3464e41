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

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
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
            Ok(GuestSource::File(PathBuf::from(s)))
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
            GuestSource::File(p) => std::fs::read(p).map_err(|source| GuestError::Read {
                path: p.clone(),
                source,
            }),
        }
    }
}
