-- POST /fhir with a transaction Bundle: one Patient and one Observation that refers to it by its
-- urn:uuid fullUrl (the server assigns both ids). The resources come from PATIENT_JSON and
-- OBSERVATION_JSON (bench/transactions.sh), which the ceiling inserts too.
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")
wrk.method = "POST"
wrk.path = "/fhir"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.headers["Prefer"] = "return=minimal"
wrk.body = '{"resourceType":"Bundle","type":"transaction","entry":[' ..
  '{"fullUrl":"urn:uuid:6f1a3c52-4d7e-4b8a-9c2f-1e5d7a9b3c41","resource":' ..
  os.getenv("PATIENT_JSON") .. ',"request":{"method":"POST","url":"Patient"}},' ..
  '{"fullUrl":"urn:uuid:0b7e2d94-8a61-4f3c-b5d2-7c9e1a4f6b28","resource":' ..
  os.getenv("OBSERVATION_JSON") .. ',"request":{"method":"POST","url":"Observation"}}]}'
