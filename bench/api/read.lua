-- GET /persons/{id} for a random person of the caller's caseload.
local ids = {}
for line in io.lines(os.getenv("BENCH_DIR") .. "/ids") do ids[#ids + 1] = line end
local token = os.getenv("TOKEN")
request = function()
  return wrk.format("GET", "/persons/" .. ids[math.random(#ids)], { ["Authorization"] = "Bearer " .. token })
end
