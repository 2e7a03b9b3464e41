//! Builds the guest programs (a separate workspace, see
//! guest-programs/Cargo.toml) and embeds every one in the kvm-wss binary,
//! so that a plain `cargo build` on a fresh clone yields a self-contained
//! tool on the stable toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

fn main() {
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
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
        .unwrap_or_else(|e| panic!("cannot run cargo to build the guest programs: {e}"));
    assert!(
        status.success(),
        "building the guest programs failed (see the output above)"
    );

    let bin_dir = target_dir.join("release");
    let mut names: Vec<String> = fs::read_dir(root.join("guest-programs/src/bin"))
        .expect("guest-programs/src/bin exists")
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
        assert!(
            Path::new(&path).exists(),
            "guest program {name} was not built"
        );
        code.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    fs::write(out.join("embedded_guests.rs"), code).expect("write embedded_guests.rs");
}
