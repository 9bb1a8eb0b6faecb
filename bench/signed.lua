-- wrk script: sends pre-signed KooGallery V2 calls written by gen_requests.py, one unique call per request.
--
-- Environment (read by every wrk thread):
--   BENCH_REQUESTS  file prefix; thread i reads "<prefix>.<i>" (lines "<path?query>\t<json body>")
--   BENCH_CHECK     "koogate": a good answer is HTTP 200 carrying "resultCode":"000000" and a Body-Sign header;
--                   "plain":   a good answer is HTTP 200 (the nginx path just relays the upstream's "{}")
--                   "refused": a good answer is a signed refusal: a Body-Sign header and a resultCode other
--                              than "000000" (the forged-signature flood)
--   BENCH_DELAY_MS  optional; when set (> 0) each connection waits a random 0.5x..1.5x this many ms between
--                   calls, which paces the run at about connections * 1000 / BENCH_DELAY_MS calls/s
--   BENCH_RESULT    file the summary is written to (key=value lines), read by run.sh
--   BENCH_STOP_AFTER optional; when set (> 0) each thread stops after this many answers and creates the file
--                   "<BENCH_RESULT>.stopped.<thread>" (a fixed-count run: the request files then hold a few more
--                   calls than that, for the calls still in flight; run.sh interrupts wrk when all threads stopped)
--
-- A thread that reaches the end of its file starts again from the top and counts a wrap: for koogate that
-- replays nonces (which it must refuse), so run.sh treats any wrap in a koogate run as an invalid benchmark.

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local data, pos, size
local host_header
local check = "plain"
local stop_after = 0
local bad, wraps, sent, answered = 0, 0, 0, 0
local bad_example = nil

function init(args)
   local prefix = assert(os.getenv("BENCH_REQUESTS"), "BENCH_REQUESTS is not set")
   local id = wrk.thread:get("id")
   local path = prefix .. "." .. id
   local f = assert(io.open(path, "rb"))
   data = f:read("*a")
   f:close()
   size = #data
   assert(size > 0, "empty request file " .. path)
   pos = 1
   host_header = wrk.host .. (wrk.port and (":" .. wrk.port) or "")
   check = os.getenv("BENCH_CHECK") or "plain"
   stop_after = tonumber(os.getenv("BENCH_STOP_AFTER") or "0") or 0
   local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
   if delay_ms > 0 then
      math.randomseed(1000 + id)
      local low, span = delay_ms * 0.5, delay_ms
      -- Random spacing keeps connections from firing in lock-step bursts.
      delay = function()
         return math.floor(low + math.random() * span + 0.5)
      end
   end
end

function request()
   if pos > size then
      pos = 1
      wraps = wraps + 1
      wrk.thread:set("wraps", wraps)
   end
   local nl = string.find(data, "\n", pos, true) or (size + 1)
   local tab = string.find(data, "\t", pos, true)
   local target = string.sub(data, pos, tab - 1)
   local body = string.sub(data, tab + 1, nl - 1)
   pos = nl + 1
   sent = sent + 1
   return "POST " .. target .. " HTTP/1.1\r\nHost: " .. host_header ..
      "\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: " .. #body ..
      "\r\n\r\n" .. body
end

function response(status, headers, body)
   local signed = headers["body-sign"] ~= nil or headers["Body-Sign"] ~= nil
   local ok
   if check == "koogate" then
      ok = status == 200 and signed and string.find(body, '"resultCode":"000000"', 1, true) ~= nil
   elseif check == "refused" then
      ok = signed and string.find(body, '"resultCode":"', 1, true) ~= nil
         and string.find(body, '"resultCode":"000000"', 1, true) == nil
   else
      ok = status == 200
   end
   answered = answered + 1
   if stop_after > 0 and answered == stop_after then
      -- wrk itself runs for its -d duration whatever its threads do: tell run.sh, which interrupts wrk (SIGINT
      -- makes wrk stop and print its summary) once every thread is done.
      local f = io.open((os.getenv("BENCH_RESULT") or "wrk") .. ".stopped." .. wrk.thread:get("id"), "w")
      if f then f:close() end
      wrk.thread:stop()
   end
   if not ok then
      bad = bad + 1
      wrk.thread:set("bad", bad)
      if bad_example == nil then
         bad_example = tostring(status) .. " " .. string.sub(body or "", 1, 200)
         wrk.thread:set("bad_example", bad_example)
      end
   end
end

function done(summary, latency, requests)
   local total_bad, total_wraps = 0, 0
   local example = ""
   for _, t in ipairs(threads) do
      total_bad = total_bad + (t:get("bad") or 0)
      total_wraps = total_wraps + (t:get("wraps") or 0)
      if example == "" and t:get("bad_example") then
         example = t:get("bad_example")
      end
   end
   local e = summary.errors
   local secs = summary.duration / 1e6
   local out = {
      string.format("requests=%d", summary.requests),
      string.format("duration_s=%.3f", secs),
      string.format("rps=%.1f", summary.requests / secs),
      string.format("p50_ms=%.3f", latency:percentile(50) / 1000),
      string.format("p90_ms=%.3f", latency:percentile(90) / 1000),
      string.format("p99_ms=%.3f", latency:percentile(99) / 1000),
      string.format("p999_ms=%.3f", latency:percentile(99.9) / 1000),
      string.format("max_ms=%.3f", latency.max / 1000),
      string.format("mean_ms=%.3f", latency.mean / 1000),
      string.format("err_connect=%d", e.connect),
      string.format("err_read=%d", e.read),
      string.format("err_write=%d", e.write),
      string.format("err_timeout=%d", e.timeout),
      string.format("err_status=%d", e.status),
      string.format("bad=%d", total_bad),
      string.format("wraps=%d", total_wraps),
      "bad_example=" .. string.gsub(example, "[\r\n]", " "),
   }
   local text = table.concat(out, "\n") .. "\n"
   local path = os.getenv("BENCH_RESULT")
   if path then
      local f = assert(io.open(path, "w"))
      f:write(text)
      f:close()
   else
      io.write(text)
   end
end
