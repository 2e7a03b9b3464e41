# kvm-wss: build, demo, tests, benchmarks.
# A Rust toolchain is all the build needs: no target installs system
# packages (tests/no_bindgen.rs keeps libclang-needing crates out).

CARGO ?= cargo
BIN := target/release/kvm-wss

.PHONY: all build run test lint fuzz bench bench-arming bench-hold examples study exactness coordinate clean

all: build

build:
	$(CARGO) build --release --locked

# A demo: the working set changes size every 5 s; uffd tracking with ESX
# sampling follows it. Output goes to runs/demo.
run: build
	$(BIN) run --guest phases --wss 128M --duration 20s --interval 1s --tracker uffd --sample-pages 400 --out runs/demo

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
	$(MAKE) bench-arming
	$(MAKE) bench-hold

# How long the guest is held at each boundary at the default settings
# (--interval 1s, 400 samples), per tracker: hold_us_mean and hold_us_max
# in each run's summary; the README quotes them.
bench-hold: build
	mkdir -p docs/bench
	for t in uffd mprotect dirty-log; do \
		$(BIN) run --guest hotset --wss 64M --tracker $$t --duration 20s --json --no-plot --quiet \
			--out runs/bench-hold-$$t > docs/bench/hold-$$t.json || exit 1; \
	done

# What arming a sample costs the guest (the `arming` part of bench trackers),
# with the load average around it; the README quotes it.
bench-arming: build
	mkdir -p docs/bench
	$(BIN) bench trackers > docs/bench/trackers-arming.json

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

# The study (docs/study.md, its figures and data): about 35 minutes of runs.
# Finished runs under docs/study/runs/ are reused, so an interrupted study
# continues; `$(BIN) study --out docs --fresh` measures everything again.
study: build
	$(BIN) study --out docs

# The three coordinator scenarios under the four policies (12 runs of
# four VMs, each followed by its uncoordinated twins: about 12 minutes),
# then docs/coordinate.md with every number read from their outputs.
COORD_SCENARIOS := consume-one consume-all shift
COORD_POLICIES := static esx wss oracle
coordinate: build
	for s in $(COORD_SCENARIOS); do for p in $(COORD_POLICIES); do \
		rm -rf docs/coordinate/$$s-$$p; \
		$(BIN) coordinate --scenario $$s --policy $$p --host-mem 1536M --twins --quiet \
			--out docs/coordinate/$$s-$$p > /dev/null || exit 1; \
	done; done
	$(BIN) coordinate-doc --out docs

clean:
	$(CARGO) clean
