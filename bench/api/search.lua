-- GET /persons?family_name=... for a random name of the caller's caseload (scoped search).
local names = {}
for line in io.lines(os.getenv("BENCH_DIR") .. "/names") do names[#names + 1] = line end
local token = os.getenv("TOKEN")
request = function()
  return wrk.format("GET", "/persons?family_name=" .. names[math.random(#names)] .. "&limit=20",
    { ["Authorization"] = "Bearer " .. token })
end
