-- wrk: print the latency percentiles the harness reads (microseconds).
done = function(summary, latency, requests)
  io.write(string.format("BENCH p50=%d p95=%d requests=%d non2xx=%d errors=%d\n",
    latency:percentile(50), latency:percentile(95), summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
