//! Links every guest program as a static, libc-free image at RAM_BASE.
fn main() -> Result<(), std::env::VarError> {
    let dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let script = std::path::Path::new(&dir).join("../linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-Wl,--build-id=none",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    Ok(())
}
