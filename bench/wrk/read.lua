-- GET /fhir/Patient/p<random> over ids p1..pN (N from the COUNT environment variable).
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")
local count = tonumber(os.getenv("COUNT") or "1000000")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/fhir/Patient/p" .. math.random(1, count))
end
