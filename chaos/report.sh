#!/usr/bin/env bash
# Writes a chaos run's report.md and its timeline PNG (throughput, errors, completions, fault markers) from the files the driver, the fault scheduler and the audit left in the run's folder.
set -euo pipefail

OUT=${1:-}
[[ -n "$OUT" && -d "$OUT" && -s "$OUT/timeline.csv" ]] || {
    echo "usage: chaos/report.sh RUN_DIR   (a folder written by chaos/run.sh)" >&2
    exit 2
}
command -v gnuplot >/dev/null || {
    echo "chaos/report.sh: gnuplot is missing; run deploy/install-deps.sh" >&2
    exit 1
}
# shellcheck disable=SC1091
. "$OUT/params.env"
START_MS="$(awk -F, 'NR == 2 { print $2 }' "$OUT/timeline.csv")"

# Completions per second: when the gateway's view of each payment became final.
: >"$OUT/completed.csv"
if [[ -n "${KEEL_GATEWAY_DB_URL:-}" ]]; then
    # Every second of the run, zeros included, so the line drops to 0 during a stall.
    psql "$KEEL_GATEWAY_DB_URL" -XAtq -F, -c "WITH done AS (
            SELECT floor((extract(epoch FROM updated_at) * 1000 - $START_MS) / 1000)::int AS s
              FROM payments WHERE merchant_id = '$MERCHANT' AND status <> 'pending')
        SELECT g.s, count(d.s) FROM generate_series(0, (SELECT coalesce(max(s), 0) FROM done)) AS g (s)
          LEFT JOIN done d ON d.s = g.s GROUP BY g.s ORDER BY g.s" >"$OUT/completed.csv" 2>/dev/null ||
        : >"$OUT/completed.csv"
fi

# One shaded band and one label per fault; a colour per kind.
colour() {
    case "$1" in
    kill) echo '#e41a1c' ;;
    crashpoint) echo '#984ea3' ;;
    pause) echo '#ff7f00' ;;
    kafka | leader) echo '#377eb8' ;;
    postgres) echo '#4daf4a' ;;
    provider) echo '#a65628' ;;
    *) echo '#999999' ;;
    esac
}
objects="$OUT/.faults.gp"
: >"$objects"
i=0
while IFS=$'\t' read -r start end kind target detail result; do
    [[ "$start" =~ ^[0-9]+$ ]] || continue
    i=$((i + 1))
    x1="$(awk -v a="$start" -v b="$START_MS" 'BEGIN { printf "%.2f", (a - b) / 1000 }')"
    x2="$(awk -v a="$end" -v b="$START_MS" 'BEGIN { printf "%.2f", (a - b) / 1000 }')"
    printf 'set object %d rect from %s, graph 0 to %s, graph 1 fc rgb "%s" fs transparent solid 0.25 noborder behind\n' \
        "$i" "$x1" "$x2" "$(colour "$kind")" >>"$objects"
    printf 'set label %d "%s %s" at %s, graph 0.99 rotate by 90 right font ",7" tc rgb "%s"\n' \
        "$i" "$kind" "$target" "$x1" "$(colour "$kind")" >>"$objects"
done <"$OUT/faults.log"

completed_plot=""
# Completions come in bursts after each stall: on their own axis, so the load stays readable.
[[ -s "$OUT/completed.csv" ]] && completed_plot=", '$OUT/completed.csv' using 1:2 axes x1y2 with lines lw 1 lc rgb '#1b9e77' title 'completed/s, gateway final (right axis)'"
gnuplot <<EOF 2>"$OUT/gnuplot.log"
set terminal pngcairo size 1600,650 font ",10"
set output '$OUT/timeline.png'
set title "keel chaos run $RUN_ID (seed $SEED, $RATE payments/s, faults: $FAULTS)"
set datafile separator ','
set xlabel 'seconds since the load started'
set ylabel 'per second'
set key outside bottom center horizontal
set grid ytics
set yrange [0:*]
set y2range [0:*]
set y2label 'completed per second'
set y2tics
set ytics nomirror
load '$objects'
plot '$OUT/timeline.csv' every ::1 using 1:4 with lines lw 1.5 lc rgb '#222222' title 'accepted/s', \
     '' every ::1 using 1:(\$6+\$7+\$8) with lines lw 1.5 lc rgb '#e7298a' title 'errors/s (5xx, no answer, 409/429)', \
     '' every ::1 using 1:5 with lines lw 1 dt 2 lc rgb '#7570b3' title 'client retries/s'$completed_plot
EOF
rm -f "$objects"

# ---- report.md ---------------------------------------------------------------------------
verdict="every invariant held"
if awk -F'\t' '$2 ~ /^[0-9]+$/ && $2 > 0 { f = 1 } END { exit !f }' "$OUT/invariants.tsv" 2>/dev/null; then
    verdict="**invariants broken** (see samples.txt)"
fi
{
    echo "# keel chaos run $RUN_ID"
    echo
    echo "Result: $verdict."
    echo
    echo "| parameter | value |"
    echo "|---|---|"
    echo "| stack | $STACK ($BROKERS Kafka node(s), $GATEWAYS gateway instance(s)) |"
    echo "| seed | $SEED |"
    echo "| load | $DURATION s at $RATE payments/s, $CONCURRENCY client threads |"
    echo "| faults | $FAULTS |"
    echo "| merchant | $MERCHANT |"
    echo
    echo "Reproduce: \`make chaos DURATION=$DURATION SEED=$SEED RATE=$RATE FAULTS=$FAULTS BROKERS=$BROKERS\`"
    echo "(the schedule of faults repeats exactly; the stack's timing does not)."
    echo
    echo "![timeline](timeline.png)"
    echo
    echo "## Figures"
    echo
    echo '```'
    cat "$OUT/figures.txt" 2>/dev/null || echo "(the audit did not finish)"
    echo '```'
    echo
    echo "## Invariants"
    echo
    echo "| invariant | count | what a violation means |"
    echo "|---|---:|---|"
    while IFS=$'\t' read -r name count meaning; do
        echo "| $name | $count | $meaning |"
    done <"$OUT/invariants.tsv"
    echo
    echo "## Faults"
    echo
    echo "| at (s) | lasted (s) | kind | target | what | result |"
    echo "|---:|---:|---|---|---|---|"
    while IFS=$'\t' read -r start end kind target detail result; do
        [[ "$start" =~ ^[0-9]+$ ]] || continue
        awk -v a="$start" -v b="$end" -v s="$START_MS" -v k="$kind" -v t="$target" -v d="$detail" -v r="$result" \
            'BEGIN { printf "| %.1f | %.1f | %s | %s | %s | %s |\n", (a - s) / 1000, (b - a) / 1000, k, t, d, r }'
    done <"$OUT/faults.log"
    echo
    echo "Files: accepted.tsv (every payment id the gateway accepted), refunds.tsv, abandoned.tsv,"
    echo "rejected.tsv, violations.tsv, timeline.csv, faults.log, invariants.tsv, samples.txt,"
    echo "driver.log, faults-run.log, audit.log."
} >"$OUT/report.md"
