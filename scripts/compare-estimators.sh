#!/usr/bin/env bash
# Compares esx and follow at equal tracked faults, by replay (issue 11).
#
# Records each of the nine built-in programs once (uffd, 1 s interval,
# paced as the study paces them: `study/plan.rs`, Scale::full), replays
# every trace with esx and follow at several sample sizes and seeds
# (`sweep --replay`), and writes docs/estimators.csv (one row per program,
# estimator and sample size: MAPE, policy MAPE, lags, band coverage,
# faults/s, averaged over the seeds) and docs/estimators.md (the table, the
# equal-fault comparison and the large-RAM live check). Every number comes
# from the runs. About 5 minutes.
set -euo pipefail

BIN=${BIN:-target/release/kvm-wss}
OUT=${1:-runs/compare-estimators}
DOCS=${DOCS:-docs}
SECS=${SECS:-16}
SEEDS=${SEEDS:-1,2,3,4,5}
ESX_N=${ESX_N:-100,200,400,800,1600,3200}
FOLLOW_N=${FOLLOW_N:-50,100,200,400}

# The study's scale: 512 MiB of RAM, a 256 MiB region (65536 pages), 1 s
# intervals; a rate of per_wss × 65536 accesses per second, a 5 s period.
programs=(
  "chase rate=32768"
  "hotset rate=65536"
  "idle"
  "phases period=5s"
  "ramp grow=5s hold=5s shrink=5s"
  "random rate=32768"
  "seq rate=32768"
  "stride k=4 rate=8192"
  "zipf rate=65536"
)

rm -rf "$OUT"
mkdir -p "$OUT" "$DOCS"
csv="$DOCS/estimators.csv"
echo "program,estimator,sample_pages,mape,policy_mape,lag_up,lag_down,band_coverage,faults_per_s,armed_per_interval" > "$csv"

for p in "${programs[@]}"; do
  read -r name params <<< "$p"
  args=()
  for kv in $params; do args+=(--param "$kv"); done
  "$BIN" run --guest "$name" --mem 512M --wss 256M "${args[@]}" \
    --duration "${SECS}s" --interval 1s --warmup 2 --tracker uffd \
    --estimator esx --sample-pages 400 --record --no-plot --quiet \
    --out "$OUT/$name" > /dev/null
  for est in esx follow; do
    n=$ESX_N
    [ "$est" = follow ] && n=$FOLLOW_N
    "$BIN" sweep --replay "$OUT/$name" --estimator "$est" --sample-pages "$n" \
      --seeds "$SEEDS" --out "$OUT/$name-$est" > /dev/null 2>&1
    # Mean over the seeds of each sample size; faults/s over the guest's run.
    awk -F, -v prog="$name" -v est="$est" '
      NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      {
        n = $col["sample_pages"]; k[n]++
        mape[n] += $col["mape"]; pol[n] += $col["policy_mape"]
        cov[n] += $col["band_coverage"]
        up[n] += ($col["lag_up_intervals"] == "" ? 0 : $col["lag_up_intervals"])
        dn[n] += ($col["lag_down_intervals"] == "" ? 0 : $col["lag_down_intervals"])
        f[n] += $col["tracked_faults"] / $col["duration_s"]
        armed[n] += $col["armed_pages_total"] / $col["intervals"]
        if (!(n in seen)) { seen[n] = 1; order[++m] = n }
      }
      END {
        for (j = 1; j <= m; j++) {
          n = order[j]
          printf "%s,%s,%s,%.4f,%.4f,%.2f,%.2f,%.3f,%.1f,%.0f\n", prog, est, n,
            mape[n] / k[n], pol[n] / k[n], up[n] / k[n], dn[n] / k[n],
            cov[n] / k[n], f[n] / k[n], armed[n] / k[n]
        }
      }' "$OUT/$name-$est/sweep.csv" >> "$csv"
  done
done

# Large RAM, live: hotset with a 64 MiB region in 8 GiB, 400 samples.
big() {
  "$BIN" run --guest hotset --mem 8G --wss 64M --param rate=16384 --duration 12s \
    --interval 1s --warmup 2 --tracker uffd --estimator "$1" --sample-pages 400 \
    --no-plot --quiet --out "$OUT/big-$1" > /dev/null
  sed -n 's/^ *"mape": *\([^,]*\),*$/\1/p' "$OUT/big-$1/summary.json"
}
big_esx=$(big esx)
big_follow=$(big follow)

awk -F, -v seeds="$SEEDS" -v secs="$SECS" -v big_esx="$big_esx" -v big_follow="$big_follow" '
  function pct(x) { return sprintf("%.1f%%", 100 * x) }
  # ESX MAPE at `faults` faults/s on program `p`: linear in log(faults/s)
  # between its two nearest sample sizes, clamped to its range.
  function esx_at(p, faults,   j, lo, hi, t) {
    lo = 0; hi = 0
    for (j = 1; j <= ne[p]; j++) {
      if (ef[p, j] <= faults && (lo == 0 || ef[p, j] > ef[p, lo])) lo = j
      if (ef[p, j] >= faults && (hi == 0 || ef[p, j] < ef[p, hi])) hi = j
    }
    if (lo == 0) return em[p, hi]
    if (hi == 0 || hi == lo) return em[p, lo]
    t = (log(faults) - log(ef[p, lo])) / (log(ef[p, hi]) - log(ef[p, lo]))
    return em[p, lo] + t * (em[p, hi] - em[p, lo])
  }
  function median(a, n,   i, j, t) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  NR == 1 { next }
  {
    p = $1
    if (!(p in known)) { known[p] = 1; progs[++np] = p }
    rows[++nr] = $0
    if ($2 == "esx") { ne[p]++; ef[p, ne[p]] = ($9 > 0 ? $9 : 0.01); em[p, ne[p]] = $4; ep[p, ne[p]] = $5
      if ($3 == 400) { esx400[p] = $4; esxpol400[p] = $5 } }
    else { fn_[p]++; ff[p, fn_[p]] = ($9 > 0 ? $9 : 0.01); fm[p, fn_[p]] = $4; fs[p, fn_[p]] = $3
      if ($3 == 400) { f400[p] = $0 } }
  }
  END {
    print "# follow against esx, by replay at equal tracked faults"
    print ""
    print "Made by `make compare-estimators` (scripts/compare-estimators.sh): each of the nine"
    print "built-in programs recorded once (uffd, 1 s interval, " secs " s, paced as the study paces"
    print "them), then replayed with esx and follow at several sample sizes, seeds " seeds "."
    print "MAPE is of the measurement (esx: the interval'"'"'s sampled fraction; follow: the regime"
    print "estimate), warm-up (2 intervals) excluded; esx'"'"'s policy (max of averages) is shown too."
    print "faults/s are the tracked faults the replay caught, per second of guest run."
    print ""
    print "#### At equal faults"
    print ""
    print "For every follow sample size, esx'"'"'s MAPE at the same faults/s on the same trace"
    print "(interpolated in log(faults/s) between its sample sizes, clamped to their range)."
    print ""
    print "| follow sample cap | median follow MAPE | median esx MAPE at equal faults | ratio |"
    print "|---|---|---|---|"
    for (s = 1; s <= fn_[progs[1]]; s++) {
      nm = 0
      for (i = 1; i <= np; i++) {
        p = progs[i]
        a[i] = fm[p, s]; b[i] = esx_at(p, ff[p, s])
      }
      ma = median(a, np); mb = median(b, np)
      printf "| %s | %s | %s | %s |\n", fs[progs[1], s], pct(ma), pct(mb), (mb > 0 ? sprintf("%.2f", ma / mb) : "-")
    }
    print ""
    print "#### Per program at 400 samples per 1 s"
    print ""
    print "follow'"'"'s sample is capped at 400 and sized to --band-target 0.05; \"armed\" is the"
    print "pages it actually armed per interval (esx always arms 400), which is what the target saves."
    print ""
    print "| program | follow MAPE | lag up | lag down | band coverage | faults/s | armed | esx MAPE at equal faults | esx MAPE at 400 | esx policy MAPE at 400 |"
    print "|---|---|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= np; i++) {
      p = progs[i]; split(f400[p], r, ",")
      printf "| %s | %s | %s | %s | %s | %.0f | %s | %s | %s | %s |\n", p, pct(r[4]), r[6], r[7], pct(r[8]), r[9], r[10], pct(esx_at(p, (r[9] > 0 ? r[9] : 0.01))), pct(esx400[p]), pct(esxpol400[p])
    }
    print ""
    print "#### Large RAM, live"
    print ""
    print "hotset, `--mem 8G --wss 64M`, 400 samples per 1 s, 12 s, uffd: esx MAPE " pct(big_esx) ", follow MAPE " pct(big_follow) "."
    print ""
    print "All rows (means over the seeds) are in estimators.csv."
  }' "$csv" > "$DOCS/estimators.md"
echo "wrote $DOCS/estimators.md and $csv"
