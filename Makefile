# kvm-wss: build, demo, tests, benchmarks.
# A Rust toolchain is all the build needs: no target installs system
# packages (tests/no_bindgen.rs keeps libclang-needing crates out).

CARGO ?= cargo
BIN := target/release/kvm-wss

.PHONY: all build run test lint fuzz bench bench-placement bench-arming bench-hold bench-slowdown bench-slowdown-busy examples study exactness curve compare-estimators coordinate coordinate-headroom clean

all: build

build:
	$(CARGO) build --release --locked

# A demo: the working set changes size every 5 s; uffd tracking with the
# follow estimator (resident pages only, a fall followed as fast as a rise)
# follows it. Output goes to runs/demo.
run: build
	$(BIN) run --guest phases --wss 128M --duration 20s --interval 1s --tracker uffd --estimator follow --sample-pages 400 --out runs/demo

test:
	$(CARGO) test --release --locked --workspace

# Seeded mutation fuzzing (tests/fuzz.rs) of the ELF loader, doorbell and
# exit decoding, the page walker, the instruction decoder and the unit and
# parameter parsers: 250,000 iterations per target, 1.25 M in all. `make
# test` runs the same targets for 20,000 iterations each.
FUZZ_ITERS ?= 250000
fuzz:
	KVM_WSS_FUZZ_ITERS=$(FUZZ_ITERS) $(CARGO) test --release --locked --test fuzz -- --nocapture

lint:
	$(CARGO) fmt --all --check
	cd guest-programs && $(CARGO) fmt --check
	$(CARGO) clippy --release --locked --workspace --all-targets -- -D warnings
	cd guest-programs && $(CARGO) clippy --release --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --locked --workspace --no-deps

# Replaces the lines between <!-- BEGIN $(1) --> and <!-- END $(1) --> in
# README.md with the contents of file $(2).
define splice
	awk -v block=$(2) \
		'/<!-- BEGIN $(1) -->/ { print; while ((getline line < block) > 0) print line; skip = 1; next } \
		 /<!-- END $(1) -->/ { skip = 0 } !skip' README.md > README.md.new && mv README.md.new README.md
endef

# esx, damon and follow at equal tracked faults, by replay of the nine
# built-in programs (issue 11; the study's question 6 shows the same
# comparison, from the same recordings under docs/study/runs):
# docs/estimators.md and docs/estimators.csv, and the tables spliced into
# the README, with follow's band coverage over nine 120 s live runs (three
# programs, three seeds; runs/compare-estimators). About 22 minutes when
# every run must be made (3 for the recordings, 18 for the long runs); not
# in `make test`.
compare-estimators: build
	$(BIN) compare-estimators --out docs --runs runs/compare-estimators
	tail -n +3 docs/estimators.md > docs/estimators.body.md
	$(call splice,estimators,docs/estimators.body.md)
	rm docs/estimators.body.md

# The figures the README quotes, each measured side by side in one run, and
# spliced into the README verbatim.
bench: build
	mkdir -p docs/bench
	$(BIN) bench native > docs/bench/native.json
	$(BIN) bench trackers --detail docs/bench/trackers-detail.json > docs/bench/trackers.json
	$(BIN) bench trackers --guest-pages 4k > docs/bench/trackers-4k-guest-pages.json
	$(BIN) bench overcommit > docs/bench/overcommit.json
	{ echo '```json'; cat docs/bench/native.json; echo '```'; } > docs/bench/native.md
	{ echo '```json'; cat docs/bench/trackers.json; echo '```'; } > docs/bench/trackers.md
	$(call splice,bench-native,docs/bench/native.md)
	$(call splice,bench-trackers,docs/bench/trackers.md)
	$(MAKE) bench-placement
	$(MAKE) bench-arming
	$(MAKE) bench-hold
	$(MAKE) bench-slowdown

# A uffd-tracked touch with the vCPU and its handler on one CPU against both
# left to the scheduler, alternating (about a minute); its table is spliced
# into the README.
bench-placement: build
	mkdir -p docs/bench
	$(BIN) bench placement --markdown docs/bench/placement.md > docs/bench/placement.json
	$(call splice,bench-placement,docs/bench/placement.md)

# How long the guest is held at each boundary at the default settings
# (--interval 1s, 400 samples), per tracker: hold_us_mean and hold_us_max
# in each run's summary; the README quotes them.
bench-hold: build
	mkdir -p docs/bench
	for t in uffd mprotect dirty-log; do \
		$(BIN) run --guest hotset --wss 64M --tracker $$t --duration 20s --json --no-plot --quiet \
			--out runs/bench-hold-$$t > docs/bench/hold-$$t.json || exit 1; \
	done

# What arming a sample costs the guest (the `arming` part of bench trackers:
# held and with the vCPU running), with the load average around it; its
# table is spliced into the README.
bench-arming: build
	mkdir -p docs/bench
	$(BIN) bench trackers --arming-markdown docs/bench/trackers-arming.md > docs/bench/trackers-arming.json
	$(call splice,bench-arming,docs/bench/trackers-arming.md)

# Issue 9's slowdown per tracker (seq --wss 4M --mem 512M, 3200 sampled
# pages per 100 ms, 6 s runs), 10 rounds, each tracked run between two
# untracked ones (about 9 minutes; 5 rounds left a median that moved by
# more than a point between two runs): docs/bench/slowdown.json, and its
# table spliced into the README.
bench-slowdown: build
	mkdir -p docs/bench
	$(BIN) bench slowdown --rounds 10 --markdown docs/bench/slowdown.md > docs/bench/slowdown.json
	$(call splice,bench-slowdown,docs/bench/slowdown.md)

# Issue 9's uffd slowdown with another guest busy on the second core: an
# unpaced, untracked `random` guest runs for the whole benchmark and is
# interrupted after it (about 2 minutes).
bench-slowdown-busy: build
	mkdir -p docs/bench runs
	rm -rf runs/busy-neighbour
	$(BIN) run --guest random --wss 64M --tracker none --duration 600s --quiet --no-plot \
		--out runs/busy-neighbour > /dev/null 2>&1 & pid=$$!; sleep 3; \
	$(BIN) bench slowdown --trackers uffd --markdown docs/bench/slowdown-busy.md \
		> docs/bench/slowdown-busy.json; rc=$$?; kill -INT $$pid; wait $$pid; exit $$rc
	$(call splice,bench-slowdown-busy,docs/bench/slowdown-busy.md)

# The plot and the sweep table the README shows. The table is spliced into
# README.md between its markers, so no number there is typed in.
EXAMPLE_RUN := docs/examples/phases
EXAMPLE_SWEEP := docs/examples/sweep
EXAMPLE_HEATMAP := docs/examples/heatmap
examples: build
	rm -rf $(EXAMPLE_RUN) $(EXAMPLE_SWEEP)
	$(BIN) run --guest phases --wss 128M --duration 30s --interval 1s --tracker uffd --param period=6s --quiet --out $(EXAMPLE_RUN)
	$(BIN) sweep --guest hotset --wss 64M --param rate=1000000 --duration 12s --tracker uffd --sample-pages 100,400,1600 --interval 500ms,1s,2s --no-plot --quiet --out $(EXAMPLE_SWEEP)
	tail -n +3 $(EXAMPLE_SWEEP)/sweep.md > $(EXAMPLE_SWEEP)/table.md
	$(call splice,sweep.md,$(EXAMPLE_SWEEP)/table.md)
	rm -rf $(EXAMPLE_HEATMAP)
	$(BIN) run --guest phases --wss 64M --mem 256M --tracker uffd --sample-pages 400 --interval 1s --duration 20s --record --quiet --out $(EXAMPLE_HEATMAP)
	$(BIN) plot --heatmap $(EXAMPLE_HEATMAP)

# Exhaustive tracking against the truth for every program, pacing, size,
# guest page size and tracker (about 15 minutes): docs/exactness.md.
exactness: build
	EXACTNESS_OUT=$(CURDIR)/docs/exactness.md $(CARGO) test --release --locked --test exactness -- --ignored --nocapture

# The study (docs/study.md, its figures and data): about 57 minutes of runs.
# Finished runs under docs/study/runs/ are reused, so an interrupted study
# continues; `$(BIN) study --out docs --fresh` measures everything again.
study: build
	$(BIN) study --out docs

# The three coordinator scenarios under the four policies, each run with
# its uncoordinated twins taking turns with it on the host every 50 ms
# (--interleave: the two sides at once, as two processes, so that the
# host's drift falls on both alike; each side runs the scenario at twice
# its times, so that its turns meet it at the pace of a run alone); wss
# (the policy issue 13's targets are for) over 5 rounds, static (which
# evicts nothing: the control) over 3, esx and oracle over one (30 rounds
# of about a minute), then docs/coordinate.md with every number read from
# their outputs.
COORD_SCENARIOS := consume-one consume-all shift
# Each policy as policy:rounds.
COORD_POLICIES := static:3 esx:1 wss:5 oracle:1
# How long each side's turn on the host is.
COORD_TURN := 50ms
coordinate: build
	for s in $(COORD_SCENARIOS); do for pr in $(COORD_POLICIES); do \
		p=$${pr%%:*}; rm -rf docs/coordinate/$$s-$$p; \
		$(BIN) coordinate --scenario $$s --policy $$p --host-mem 1536M --twins \
			--rounds $${pr##*:} --interleave $(COORD_TURN) --quiet \
			--out docs/coordinate/$$s-$$p > /dev/null || exit 1; \
	done; done
	$(BIN) coordinate-doc --out docs

# The headroom frontier: each scenario again under oracle and wss with
# less and more headroom than the default 10% (18 runs without twins:
# about 9 minutes), then docs/coordinate.md again, with its section.
# Each headroom as fraction:percent (the percent names the folder).
COORD_HEADROOMS := 0:0 0.05:5 0.2:20
coordinate-headroom: build
	for s in $(COORD_SCENARIOS); do for p in oracle wss; do for hp in $(COORD_HEADROOMS); do \
		h=$${hp%%:*}; d=docs/coordinate/$$s-$$p-headroom$${hp##*:}; rm -rf $$d; \
		$(BIN) coordinate --scenario $$s --policy $$p --host-mem 1536M --headroom $$h --quiet \
			--out $$d > /dev/null || exit 1; \
	done; done; done
	$(BIN) coordinate-doc --out docs

clean:
	$(CARGO) clean

# The working-set curve W(τ) (estimator `curve`) against the exact curve of
# recorded traces: hotset, zipf and phases, paced as the study paces them,
# recorded at the curve's own tick (interval/4), then replayed; the tables
# and figures in docs/curve.md are the replays' own output (about 2 minutes).
CURVE_DIR := docs/curve
CURVE_SAMPLES := 4800
CURVE_THIRD := 1600
CURVE_SEEDS := 2 3 4 5 6 7 8 9
CURVE_RUN := --mem 512M --wss 256M --tracker uffd --interval 1s --duration 20s --seed 1
curve: build
	rm -rf $(CURVE_DIR)
	mkdir -p $(CURVE_DIR)
	$(BIN) run --guest hotset --param rate=65536 $(CURVE_RUN) --estimator curve --sample-pages $(CURVE_SAMPLES) --record --quiet --no-plot --out $(CURVE_DIR)/hotset
	$(BIN) run --guest zipf --param rate=65536 $(CURVE_RUN) --estimator curve --sample-pages $(CURVE_SAMPLES) --record --quiet --no-plot --out $(CURVE_DIR)/zipf
	$(BIN) run --guest phases --param period=5s $(CURVE_RUN) --estimator curve --sample-pages $(CURVE_SAMPLES) --record --quiet --no-plot --out $(CURVE_DIR)/phases
	{ \
	  echo '# The working-set curve W(τ), estimated and exact'; echo; \
	  echo 'Made by `make curve` from the runs under `docs/curve/`; every number below is'; \
	  echo 'printed by `kvm-wss replay` from those runs'"'"' traces. Each program ran for 20 s'; \
	  echo 'under uffd at the study'"'"'s setting (`$(CURVE_RUN)`, paced as the study'; \
	  echo 'paces it) with `--estimator curve --sample-pages $(CURVE_SAMPLES)`, recording'; \
	  echo 'the exact touched pages of every 250 ms tick. The replay with the recorded'; \
	  echo 'settings reproduces the live estimates (its first line says so), and holds'; \
	  echo 'each estimated W(t, τ) against the exact one of the trace at the same t.'; \
	  echo 'Points are scored over full intervals after the 2-interval warm-up. The'; \
	  echo 'replays with other seeds draw other samples from the same trace: how much'; \
	  echo 'the MAPE of 17 points varies with the sample alone.'; echo; \
	  echo 'For comparison, the same trace replayed by esx at 400 and at $(CURVE_SAMPLES) sampled'; \
	  echo 'pages per interval: its MAPE is of W(t, interval) only, and its cost in the same'; \
	  echo 'tracked faults.'; \
	} > $(CURVE_DIR)/head.md
	for g in hotset zipf phases; do \
	  $(BIN) replay $(CURVE_DIR)/$$g > $(CURVE_DIR)/$$g/replay.txt 2> $(CURVE_DIR)/$$g/replay.err || exit 1; \
	  rm -f $(CURVE_DIR)/$$g/wss_curve.png; \
	  { echo; echo "## $$g"; echo; \
	    echo '```'; grep 'live estimates' $(CURVE_DIR)/$$g/replay.err; echo '```'; echo; \
	    cat $(CURVE_DIR)/$$g/curve.md; echo; \
	    echo '```'; \
	    for n in 400 $(CURVE_SAMPLES); do \
	      echo "esx, $$n sampled pages per interval:"; \
	      $(BIN) replay $(CURVE_DIR)/$$g --estimator esx --sample-pages $$n 2>/dev/null | grep -E '^(measured|cost)'; \
	    done; \
	    echo '```'; echo; \
	    echo "The same trace replayed by curve with other seeds (other samples), MAPE per window τ:"; echo; \
	    echo '| seed | tracked faults | 0.25 s | 0.5 s | 1 s | 2 s | 4 s |'; echo '|---:|---:|---:|---:|---:|---:|---:|'; \
	    for seed in $(CURVE_SEEDS); do \
	      $(BIN) replay $(CURVE_DIR)/$$g --seed $$seed --out $(CURVE_DIR)/$$g/seed > /dev/null 2>&1 || exit 1; \
	      awk -F'|' -v seed=$$seed 'NR == 1 { faults = $$0; sub(/ tracked faults.*/, "", faults); sub(/.*, /, "", faults) } /^\| [0-9]/ { row = row " " $$6 " |" } END { print "| " seed " | " faults " |" row }' $(CURVE_DIR)/$$g/seed/curve.md; \
	    done; rm -rf $(CURVE_DIR)/$$g/seed; echo; \
	    echo "The same trace replayed by curve with a third of the pages, $(CURVE_THIRD) per interval:"; echo; \
	    $(BIN) replay $(CURVE_DIR)/$$g --sample-pages $(CURVE_THIRD) --out $(CURVE_DIR)/$$g/third > /dev/null 2>&1 || exit 1; \
	    cat $(CURVE_DIR)/$$g/third/curve.md; rm -rf $(CURVE_DIR)/$$g/third; echo; \
	    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($$i == "interval_s") c = i; next } c && $$c > 1.2 { l = l sep sprintf("%.1f s ending at t = %.1f s", $$c, $$1); sep = "; " } END { if (l) print "Intervals that ran long (the boundary came late on the loaded host; points are compared with the exact curve tick for tick, so they stay like for like, but their τ in seconds is longer): " l ".\n" }' $(CURVE_DIR)/$$g/timeseries.csv; \
	    echo "![W(τ) of $$g, estimated and exact]($$g/wss_curve.svg)"; \
	  } > $(CURVE_DIR)/$$g.md; \
	done
	cat $(CURVE_DIR)/head.md $(CURVE_DIR)/hotset.md $(CURVE_DIR)/zipf.md $(CURVE_DIR)/phases.md > docs/curve.md
	rm -f $(CURVE_DIR)/*.md $(CURVE_DIR)/*/replay.txt $(CURVE_DIR)/*/replay.err
