//! The README's out-of-tree recipe, followed word for word: from an empty
//! directory, its shell blocks run in order and its file blocks are saved
//! under the names they are given, with `/path/to/kvm-wss` standing for
//! this repository. The guest is built offline and run under kvm-wss, and
//! the run must report the truth the README promises.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

/// The recipe: the text between the README's out-of-tree markers.
fn recipe(readme: &str) -> &str {
    let begin = "<!-- BEGIN out-of-tree -->";
    let start = readme
        .find(begin)
        .expect("README has the out-of-tree begin marker");
    let end = readme
        .find("<!-- END out-of-tree -->")
        .expect("and its end marker");
    &readme[start + begin.len()..end]
}

/// One bash script from the recipe: each ```sh block as it is, and each
/// block preceded by a `` `path`: `` line written to that path.
fn script(recipe: &str) -> String {
    let mut out = String::from("set -euo pipefail\n");
    let mut lines = recipe.lines();
    let mut last_text = "";
    while let Some(line) = lines.next() {
        let Some(lang) = line.strip_prefix("```") else {
            if !line.trim().is_empty() {
                last_text = line.trim();
            }
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        let body = body.join("\n");
        let file = last_text
            .strip_prefix('`')
            .and_then(|l| l.strip_suffix("`:"));
        match (lang, file) {
            ("sh", _) => out.push_str(&format!("{body}\n")),
            (_, Some(path)) => out.push_str(&format!(
                "cat > '{path}' <<'RECIPE_EOF'\n{body}\nRECIPE_EOF\n"
            )),
            _ => panic!("a ```{lang} block in the recipe that is neither a command nor a file"),
        }
    }
    out
}

#[test]
fn script_runs_shell_blocks_and_writes_file_blocks() {
    let text = "Run:\n\n```sh\ncd x\n```\n\n`a/b.toml`:\n\n```toml\nk = 1\n```\n";
    assert_eq!(
        script(text),
        "set -euo pipefail\ncd x\ncat > 'a/b.toml' <<'RECIPE_EOF'\nk = 1\nRECIPE_EOF\n"
    );
}

#[test]
fn the_readme_recipe_builds_and_boots_a_guest() {
    if !common::kvm_available("the_readme_recipe_builds_and_boots_a_guest") {
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(Path::new(root).join("README.md")).expect("README");
    let script = script(recipe(&readme)).replace("/path/to/kvm-wss", root);
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .parent()
        .expect("kvm-wss is in a directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).current_dir(dir.path());
    // The test's own build settings are for the host binary, not for the
    // freestanding guest (as in build.rs); and nothing may be downloaded.
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
    let out = cmd
        .env("PATH", path)
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the recipe failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What the README promises: 1025 true pages per interval, 1 written.
    let summary = dir.path().join("myguest/runs/myguest/summary.json");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary.json"))
            .expect("summary.json is JSON");
    assert_eq!(s["end"], "duration", "{s}");
    assert!(s["scored_intervals"].as_u64() >= Some(1), "{s}");
    assert_eq!(s["true_wss_mean_pages"], 1025.0, "{s}");
    assert_eq!(s["true_wss_write_mean_pages"], 1.0, "{s}");
    assert_eq!(s["op_name"], "values");
    let results = s["guest_results"].as_array().expect("guest_results");
    assert_eq!(results.len(), 1, "{s}");
    assert_eq!(results[0]["name"], "sweeps");
    assert!(results[0]["value"].as_u64() > Some(0), "{s}");
    assert!(stdout.contains(" values ("), "{stdout}");
    assert!(stdout.contains("\nresults    sweeps "), "{stdout}");
}
