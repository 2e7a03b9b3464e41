//! `plot --heatmap` on a real recorded run: a short `phases` run recorded
//! through the binary, then drawn; the picture has its labels and exactly
//! one dot per cell the replayed sampler armed a page in, and the sampled
//! pages it counts are the live run's.
// A failed unwrap in a test is a test failure, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use kvm_wss::record::{self, TRACE_FILE};
use kvm_wss::replay::{ReplaySettings, replay_observed};
use kvm_wss::report::heatmap::{Grid, MAX_COLUMNS, MAX_ROWS};
use kvm_wss::report::timeseries::read_timeseries;

fn kvm_wss(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvm-wss"))
        .args(args)
        .arg(dir)
        .output()
        .expect("run kvm-wss")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `<circle` elements of `svg` filled with `colour` (as plotters writes
/// it, "#RRGGBB").
fn dots(svg: &str, colour: &str) -> usize {
    let fill = format!("fill=\"{colour}\"");
    svg.split("<circle")
        .skip(1)
        .filter(|c| c.split("/>").next().is_some_and(|c| c.contains(&fill)))
        .count()
}

#[test]
fn a_recorded_phases_run_draws_its_heat_map_with_the_samples() {
    if !common::kvm_available("a_recorded_phases_run_draws_its_heat_map_with_the_samples") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let run = kvm_wss(
        &[
            "run",
            "--guest",
            "phases",
            "--wss",
            "8M",
            "--mem",
            "32M",
            "--param",
            "period=1s",
            "--tracker",
            "uffd",
            "--sample-pages",
            "100",
            "--interval",
            "500ms",
            "--duration",
            "3s",
            "--record",
            "--no-plot",
            "--quiet",
            "--out",
        ],
        &dir,
    );
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let plot = kvm_wss(&["plot", "--heatmap"], &dir);
    assert_eq!(plot.status.code(), Some(0), "{}", stderr(&plot));
    let (svg_path, png_path) = (dir.join("heatmap.svg"), dir.join("heatmap.png"));
    assert_eq!(
        String::from_utf8_lossy(&plot.stdout),
        format!("{}\n{}\n", svg_path.display(), png_path.display())
    );
    let png = std::fs::read(&png_path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    for label in [
        "phases: pages touched per 500 ms, esx uffd samples (seed ",
        "time (s)",
        "guest page",
        "sampled and caught",
        "\nsampled\n</text>",
    ] {
        assert!(svg.contains(label), "SVG lacks {label:?}");
    }

    // The cells the replayed sampler armed a page in, by the heat map's
    // own grid: a cell with a caught page is red, any other sampled one
    // dark.
    let rec = record::read(&dir.join(TRACE_FILE)).unwrap();
    let grid = Grid::new(
        rec.ticks.len(),
        rec.header.estimator.domain_pages,
        MAX_COLUMNS,
        MAX_ROWS,
    )
    .unwrap();
    let mut cells: BTreeMap<(usize, u64), bool> = BTreeMap::new();
    let mut sampled = 0u64;
    replay_observed(&rec, &ReplaySettings::recorded(&rec.header), |t| {
        let column = grid.column(t.ticks.start);
        sampled += t.armed.len() as u64;
        for &p in t.armed {
            cells.entry((column, grid.row(p))).or_insert(false);
        }
        for &p in t.caught {
            cells.insert((column, grid.row(p)), true);
        }
    })
    .unwrap();
    let caught_cells = cells.values().filter(|&&c| c).count();
    assert!(caught_cells > 0, "nothing caught");
    // One dot per marked cell, plus one in the legend for each kind.
    assert_eq!(dots(&svg, "#D62728"), caught_cells + 1);
    assert_eq!(dots(&svg, "#1E1E1E"), cells.len() - caught_cells + 1);

    // What it sampled is what the live run sampled.
    let rows = read_timeseries(&dir.join("timeseries.csv")).unwrap();
    let live: u64 = rows.iter().map(|r| r.sampled_pages).sum();
    assert_eq!(sampled, live);
    assert!(
        stderr(&plot).contains(&format!("{live} pages sampled in {} cells", cells.len())),
        "{}",
        stderr(&plot)
    );

    // --out and --written; a folder without a trace is a usage error.
    let base = tmp.path().join("w");
    let o = kvm_wss(&["plot", "--heatmap", "--written", "--out"], &base);
    assert_eq!(o.status.code(), Some(2), "--out takes the run dir after it");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvm-wss"));
    let o = cmd
        .args(["plot", "--heatmap", "--written", "--out"])
        .arg(&base)
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let svg = std::fs::read_to_string(tmp.path().join("w.svg")).unwrap();
    assert!(svg.contains("share of "), "no colour bar label");
    assert!(svg.contains(" pages written"));
    assert!(tmp.path().join("w.png").is_file());
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = kvm_wss(&["plot", "--heatmap"], &empty);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("trace.bin"), "{}", stderr(&o));
}
