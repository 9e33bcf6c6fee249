# SPDX-License-Identifier: Apache-2.0
-- wrk script of scripts/bench: cycles through the requests of a mix file
-- (METHOD PATH HOST CLIENT per line, "-" for an absent header), given after
-- "--" on wrk's command line.
local requests = {}
local n = 0

function init(args)
  for line in io.lines(args[1]) do
    local method, path, host, client = line:match("^(%S+)%s+(%S+)%s+(%S+)%s+(%S+)")
    if method and method:sub(1, 1) ~= "#" then
      local headers = {}
      if host ~= "-" then headers["Host"] = host end
      if client ~= "-" then headers["X-Api-Client"] = client end
      requests[#requests + 1] = wrk.format(method, path, headers)
    end
  end
  if #requests == 0 then error("no requests in " .. args[1]) end
end

function request()
  n = n % #requests + 1
  return requests[n]
end
