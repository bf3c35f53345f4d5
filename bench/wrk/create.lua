-- POST /fhir/Patient with a small valid Patient.
dofile(os.getenv("BENCH_DIR") .. "/wrk/report.lua")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.body = '{"resourceType":"Patient","active":true,"name":[{"family":"Bench","given":["Create"]}],"gender":"female","birthDate":"1980-05-17"}'
