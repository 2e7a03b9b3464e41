//! "A Rust toolchain is all the build needs": nothing the build compiles
//! or runs may need libclang. bindgen (and clang-sys, which loads
//! libclang) are how a crate would bring that need back, so neither may
//! appear among the normal and build dependencies of this workspace or of
//! guest-programs/ (which build.rs builds).
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

const FORBIDDEN: &[&str] = &["bindgen", "clang-sys"];

/// The package names `cargo tree` lists for the workspace of `manifest`.
fn build_dependencies(manifest: &Path) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["tree", "--workspace", "-e", "normal,build"])
        .args(["--prefix", "none", "--locked", "--offline"])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(
        out.status.success(),
        "cargo tree failed for {}: {}\n{}",
        manifest.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("cargo tree prints UTF-8");
    stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn assert_no_bindgen(manifest: &Path, own_package: &str) {
    let names = build_dependencies(manifest);
    // The listing is real: it names the workspace's own package and the
    // crates it depends on.
    assert!(
        names.iter().any(|n| n == own_package),
        "cargo tree for {} does not list {own_package}: {names:?}",
        manifest.display()
    );
    let found: Vec<&String> = names
        .iter()
        .filter(|n| FORBIDDEN.contains(&n.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "{} depends on {found:?}, which need libclang at build time",
        manifest.display()
    );
}

#[test]
fn no_bindgen_or_clang_sys_in_the_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_no_bindgen(&root.join("Cargo.toml"), "kvm-wss");
}

#[test]
fn no_bindgen_or_clang_sys_in_the_guest_programs_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_no_bindgen(&root.join("guest-programs/Cargo.toml"), "wss-guest");
}
