-- Emits one JSON line with throughput and latency percentiles (µs) after a wrk run.
-- Varies the `account` header over 1000 accounts so the proxy's bucketing really splits traffic.
-- BENCH_WRITE_SHARE (0..1, default 0) sends that fraction of requests as a small JSON POST
-- (hook for the dual-write scenario).
local counter = 0
local write_share = tonumber(os.getenv("BENCH_WRITE_SHARE") or "0") or 0
local writes_every = 0
if write_share > 0 then writes_every = math.floor(1 / write_share + 0.5) end
local write_body = '{"bench": true}'

request = function()
  counter = counter + 1
  local acct = "bench" .. (counter % 1000) .. "@example.com"
  if writes_every > 0 and counter % writes_every == 0 then
    return wrk.format("POST", nil, {["account"] = acct, ["content-type"] = "application/json"}, write_body)
  end
  wrk.headers["account"] = acct
  return wrk.format(nil, nil)
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "non2xx": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
