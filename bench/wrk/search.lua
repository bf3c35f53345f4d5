-- GET /fhir/Patient?_id=p<a>,p<b>,...: a search answering 10 Patients, ids drawn from p1..pN
-- (N from the COUNT environment variable).
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")
local count = tonumber(os.getenv("COUNT") or "1000000")
math.randomseed(os.time())
request = function()
  local ids = {}
  for i = 1, 10 do ids[i] = "p" .. math.random(1, count) end
  return wrk.format("GET", "/fhir/Patient?_total=none&_id=" .. table.concat(ids, ","))
end
