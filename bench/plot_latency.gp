# gnuplot: latency distributions by percentile, one line per rate (HdrHistogram-style plot).
# Variables: files and titles (space-separated lists of the same length; "_" in a title
# becomes a space), out (PNG path), heading.
set terminal pngcairo size 960,600 font "sans,10"
set output out
set datafile separator ","
set title heading
set xlabel "percentile"
set ylabel "latency (ms)"
set logscale x
set logscale y
set grid
set key top left
set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000)
plot for [i=1:words(files)] word(files, i) skip 1 using 4:1 with steps lw 2 \
     title system(sprintf("echo '%s' | tr '_' ' '", word(titles, i)))
