# gnuplot: outbox rows left while the relay drains a pre-filled outbox.
# Variables: data (drain.csv), out (PNG path).
set terminal pngcairo size 960,600 font "sans,10"
set output out
set datafile separator ","
set title "Outbox relay: rows left after one transaction filled the outbox"
set xlabel "seconds since the commit"
set ylabel "rows left in the outbox"
set grid
set key off
plot data skip 1 using 1:2 with lines lw 2
