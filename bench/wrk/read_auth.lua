-- read.lua with a bearer token: GET /fhir/Patient/p<random> with Authorization: Bearer $TOKEN.
dofile(os.getenv("BENCH_DIR") .. "/wrk/read.lua")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
