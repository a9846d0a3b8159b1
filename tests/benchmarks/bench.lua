-- wrk script for every scenario of tests/benchmarks/run.py (which sets the environment).
--
--   BENCH_QUERY    the GraphQL document, already a JSON string literal (quotes included)
--   BENCH_VARS     comma-separated variable names, each given {"campaignId": N} with a
--                  fresh N on every request
--   BENCH_INLINE   the number of "@ID@" marks in BENCH_QUERY, each replaced by a fresh N
--                  on every request (a new document text each time); 0 or unset: none.
--                  With neither, the same body on every request
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
local pieces = {} -- an inline document: the text around each "@ID@"
local ids = 0 -- campaignIds per request
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
  ids = #names
  if tonumber(os.getenv("BENCH_INLINE") or "0") > 0 then
    local at = 1
    while true do
      local mark = string.find(query, "@ID@", at, true)
      if not mark then break end
      table.insert(pieces, string.sub(query, at, mark - 1))
      at = mark + 4
    end
    table.insert(pieces, string.sub(query, at))
    ids = #pieces - 1
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-DeepCall-SSID"] = os.getenv("BENCH_SSID") or "bench-ssid"
  if ids == 0 then
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
  local first = base + (counter * stride + thread_index) * ids
  counter = counter + 1
  max_id = first + ids - 1
  local parts = {}
  if #pieces > 0 then
    -- One concatenation of the document's pieces and the ids: cheap enough for wrk.
    parts[1] = pieces[1]
    for i = 1, ids do
      parts[2 * i] = first + i - 1
      parts[2 * i + 1] = pieces[i + 1]
    end
    return wrk.format(nil, nil, nil, '{"query":' .. table.concat(parts) .. '}')
  end
  for i, name in ipairs(names) do
    parts[i] = '"' .. name .. '":{"campaignId":' .. (first + i - 1) .. '}'
  end
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
