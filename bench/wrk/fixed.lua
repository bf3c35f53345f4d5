-- GET the URL given to wrk, unchanged, and print the RESULT line.
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")
