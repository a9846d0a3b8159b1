-- wrk script for every scenario of tests/benchmarks/run.py (which sets the environment).
--
--   BENCH_QUERY    the GraphQL document, already a JSON string literal (quotes included)
--   BENCH_VARS     comma-separated variable names, each given {"campaignId": N} with a
--                  fresh N on every request; empty: the same body on every request
--   BENCH_BASE     the first campaignId this run may use (run.py moves it past the
--                  last one used, so no filter ever repeats within an invocation)
--   BENCH_SSID     the X-DeepCall-SSID header
--
-- Every request sent is counted (the denominator of CPU and upstream calls per request:
-- requests still in flight when wrk stops were sent, and cost, but are not "completed").
-- Every response is checked: HTTP status 200 and no "errors" member in the body
-- (a GraphQL error is HTTP 200 too). done() prints the counts and the highest
-- campaignId used as "bench:<name> <value>" lines, which run.py parses.

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

local names = {}
local base, stride, counter = 0, 1, 0
local static_body = nil -- the whole formatted request, when it never changes
local query = nil

function init(args)
  query = os.getenv("BENCH_QUERY")
  base = tonumber(os.getenv("BENCH_BASE") or "0")
  stride = tonumber(os.getenv("BENCH_THREADS") or "1")
  for name in string.gmatch(os.getenv("BENCH_VARS") or "", "[^,]+") do
    table.insert(names, name)
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-DeepCall-SSID"] = os.getenv("BENCH_SSID") or "bench-ssid"
  if #names == 0 then
    static_body = wrk.format(nil, nil, nil, '{"query":' .. query .. '}')
  end
  sent, bad_status, graphql_errors, max_id, first_error = 0, 0, 0, -1, ""
end

function request()
  sent = sent + 1
  if static_body then
    return static_body
  end
  -- Request r of this thread is number r * threads + thread_index across the run;
  -- its aliases take consecutive campaignIds, so no two ever share one.
  local first = base + (counter * stride + thread_index) * #names
  counter = counter + 1
  local parts = {}
  for i, name in ipairs(names) do
    parts[i] = '"' .. name .. '":{"campaignId":' .. (first + i - 1) .. '}'
  end
  max_id = first + #names - 1
  return wrk.format(nil, nil, nil, '{"query":' .. query .. ',"variables":{' .. table.concat(parts, ",") .. '}}')
end

function response(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
  elseif string.find(body, '"errors"', 1, true) then
    graphql_errors = graphql_errors + 1
  else
    return
  end
  if first_error == "" then
    first_error = status .. " " .. string.gsub(string.sub(body, 1, 400), "\n", " ")
  end
end

function done(summary, latency, requests)
  local total, status, errors, highest, sample = 0, 0, 0, -1, ""
  for _, thread in ipairs(threads) do
    if sample == "" then sample = thread:get("first_error") end
    total = total + thread:get("sent")
    status = status + thread:get("bad_status")
    errors = errors + thread:get("graphql_errors")
    highest = math.max(highest, thread:get("max_id"))
  end
  io.write(string.format("bench:sent %d\n", total))
  io.write(string.format("bench:bad_status %d\n", status))
  io.write(string.format("bench:graphql_errors %d\n", errors))
  io.write(string.format("bench:max_id %d\n", highest))
  if sample ~= "" then io.write("bench:first_error " .. sample .. "\n") end
end
