-- wrk script for bench/flash_sale.py: POST /api/v1/orders as many buyers at once.
-- Each request takes the next buyer's token (from the file in TOKENS_FILE) and a fresh
-- Idempotency-Key; the body (from BODY_FILE) names the offer. Counts answers by status.
local tokens = {}
local body = nil
local threads = {}
local counter = 0
local prefix = os.getenv("KEY_PREFIX") or "w"
statuses = {}  -- global: done() reads it from each thread

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    tokens[#tokens + 1] = line
  end
  local f = io.open(os.getenv("BODY_FILE"), "r")
  body = f:read("*a")
  f:close()
end

function request()
  counter = counter + 1
  -- Threads start far apart in the token list and walk it one buyer per request.
  local token = tokens[((counter + id * 7919) % #tokens) + 1]
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = prefix .. id .. "-" .. counter,
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", "/api/v1/orders", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for status, n in pairs(counts) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    parts[#parts + 1] = string.format('"%d": %d', status, n)
  end
  io.write("STATUSES {" .. table.concat(parts, ", ") .. "}\n")
end
