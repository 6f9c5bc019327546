-- One request shape per run, chosen by environment variables (wrk passes no arguments
-- to every thread, but every thread sees the environment):
--   BENCH_METHOD, BENCH_PATH (may contain {id}), BENCH_BODY, BENCH_HEADERS ("k: v|k: v"),
--   BENCH_IDS (comma-separated values for {id}), BENCH_STATUSES (cycled into ?status=).
-- A "{n}" in the body becomes a value unique to the request (thread number and counter),
-- so that a ceiling transaction writes a new key each time, as a create does.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local report = require("report")

local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local ids, statuses = {}, {}
for id in string.gmatch(os.getenv("BENCH_IDS") or "", "[^,]+") do ids[#ids + 1] = id end
for s in string.gmatch(os.getenv("BENCH_STATUSES") or "", "[^,]+") do statuses[#statuses + 1] = s end
local headers = {}
for pair in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^|]+") do
  local name, value = string.match(pair, "^%s*([^:]+):%s*(.*)$")
  headers[name] = value
end

local counter = 0
math.randomseed(os.time())

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function request()
  counter = counter + 1
  local p = path
  if #ids > 0 then p = string.gsub(p, "{id}", ids[math.random(#ids)]) end
  if #statuses > 0 then p = p .. "?status=" .. statuses[(counter % #statuses) + 1] end
  local b = body
  if b then b = string.gsub(b, "{n}", (thread_number or 0) .. "-" .. counter) end
  return wrk.format(method, p, headers, b)
end

done = report.done
