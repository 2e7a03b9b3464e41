//! Builds the guest programs (a separate workspace, see
//! guest-programs/Cargo.toml) and embeds every one in the kvm-wss binary,
//! so that a plain `cargo build` on a fresh clone yields a self-contained
//! tool on the stable toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fmt, fs, io};

/// Why the guest programs could not be built or embedded. A build script
/// reports failure by returning an error from `main`, which cargo prints
/// with `Debug`; that is written here as one readable line.
enum BuildError {
    Env(&'static str, env::VarError),
    Io(String, io::Error),
    Failed(String),
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Env(var, e) => write!(f, "environment variable {var}: {e}"),
            BuildError::Io(what, e) => write!(f, "{what}: {e}"),
            BuildError::Failed(what) => f.write_str(what),
        }
    }
}

fn env_path(var: &'static str) -> Result<PathBuf, BuildError> {
    env::var(var)
        .map(PathBuf::from)
        .map_err(|e| BuildError::Env(var, e))
}

fn main() -> Result<(), BuildError> {
    let root = env_path("CARGO_MANIFEST_DIR")?;
    let out = env_path("OUT_DIR")?;
    for dir in [
        "abi/src",
        "guest/src",
        "guest-programs/src",
        "guest-programs/Cargo.toml",
        "guest/Cargo.toml",
        "guest-programs/build.rs",
        "guest-programs/.cargo/config.toml",
        "linker.ld",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = out.join("guest-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("guest-programs"))
        .args(["build", "--release", "--bins", "--locked", "--target-dir"])
        .arg(&target_dir);
    // The outer build's flags and settings are for the host binary, not for
    // freestanding guests: the guest workspace brings its own.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .map_err(|e| BuildError::Io("cannot run cargo to build the guest programs".into(), e))?;
    if !status.success() {
        return Err(BuildError::Failed(
            "building the guest programs failed (see the output above)".into(),
        ));
    }

    let bin_dir = target_dir.join("release");
    let mut names: Vec<String> = fs::read_dir(root.join("guest-programs/src/bin"))
        .map_err(|e| BuildError::Io("reading guest-programs/src/bin".into(), e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.path()
                .file_stem()
                .and_then(|s| s.to_str())
                .map(String::from)
        })
        .collect();
    names.sort();
    let mut code = String::from(
        "/// Every guest program built from guest-programs/, by name.\npub static EMBEDDED: &[(&str, &[u8])] = &[\n",
    );
    for name in &names {
        let path = bin_dir.join(name);
        if !Path::new(&path).exists() {
            return Err(BuildError::Failed(format!(
                "guest program {name} was not built"
            )));
        }
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    fs::write(out.join("embedded_guests.rs"), code)
        .map_err(|e| BuildError::Io("writing embedded_guests.rs".into(), e))
}
