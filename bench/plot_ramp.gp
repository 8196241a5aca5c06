# gnuplot: accept latency (p50, p99) by offered rate for both ramps, with the p99 target line.
# Variables: alone and pipeline (ramp-*.csv), out (PNG path), limit (the p99 target in ms).
set terminal pngcairo size 960,600 font "sans,10"
set output out
set datafile separator ","
set title "POST /v1/payments: latency by offered rate (open loop)"
set xlabel "offered rate (requests/s)"
set ylabel "latency (ms)"
set logscale y
set grid
set key top left
# Steps sorted by rate: the bisecting steps and repeated ones come after the ramp in the file.
a = "< tail -n +2 '".alone."' | sort -t, -k1,1n -s"
p = "< tail -n +2 '".pipeline."' | sort -t, -k1,1n -s"
plot a using 1:5 with linespoints lc rgb "#1f77b4" dashtype 2 title "p50, gateway alone", \
     a using 1:7 with linespoints lc rgb "#1f77b4" lw 2 title "p99, gateway alone", \
     p using 1:5 with linespoints lc rgb "#ff7f0e" dashtype 2 title "p50, whole pipeline", \
     p using 1:7 with linespoints lc rgb "#ff7f0e" lw 2 title "p99, whole pipeline", \
     limit with lines dashtype 3 lc rgb "red" title sprintf("target p99 %g ms", limit)
