-- Services SLA load: one fixed request (method, JSON body, bearer token) from the environment, and the
-- same JSON summary line as wrk_report.lua. The token comes from the environment so it never appears
-- on a command line (ps) or in a log.
--   SLA_METHOD (GET|POST), SLA_BODY (JSON text, POST only), SLA_TOKEN (bearer token)
local method = os.getenv("SLA_METHOD") or "GET"
local body = os.getenv("SLA_BODY")
if body == "" then body = nil end
wrk.method = method
wrk.headers["authorization"] = "Bearer " .. (os.getenv("SLA_TOKEN") or "")
if body then
  wrk.body = body
  wrk.headers["content-type"] = "application/json"
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
