-- The Redis store's scripts (up42webhooks/store_redis.lua), each run atomically in Redis by its
-- digest (and loaded when Redis has not seen it): ADD stores a delivery or finds its mark; the
-- consumer scripts read and move consumer groups (GROUPS: what they share); TRIM is retention.
local ngx = ngx
local concat = table.concat
local byte, format = string.byte, string.format

local _M = {}

local ADD = [[
local mark = redis.call('GET', KEYS[1])
if mark then
  return {0, mark}
end
local args = {KEYS[2]}
if ARGV[3] ~= '' then
  args[#args + 1] = 'MAXLEN'; args[#args + 1] = '~'; args[#args + 1] = ARGV[3]
end
args[#args + 1] = '*'
for i = 4, #ARGV do args[#args + 1] = ARGV[i] end
local id = redis.call('XADD', unpack(args))
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. id, 'EX', tonumber(ARGV[2]))
return {1, id}
]]

local function hex(s)
    local out = {}
    for i = 1, #s do
        out[i] = format("%02x", byte(s, i))
    end
    return concat(out)
end

local ADD_SHA = hex(ngx.sha1_bin(ADD))

-- Runs a script by its digest, loading it when Redis has not seen it (NOSCRIPT): its answer, or
-- nil and "Redis: <why>".
local function script(red, sha, text, ...)
    local out, err = red:evalsha(sha, ...)
    if not out and err and err:find("NOSCRIPT", 1, true) then
        out, err = red:eval(text, ...)
    end
    if not out then
        return nil, "Redis: " .. tostring(err)
    end
    return out
end

local GROUPS = [==[
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  if not ms then return tonumber(id), 0 end
  return tonumber(ms), tonumber(seq)
end
local function cmp(a, b)
  local ams, aseq = parts(a)
  local bms, bseq = parts(b)
  if ams ~= bms then return ams < bms and -1 or 1 end
  if aseq ~= bseq then return aseq < bseq and -1 or 1 end
  return 0
end
local function after(id)
  local ms, seq = parts(id)
  return ms .. '-' .. (seq + 1)
end
local function fields(list)
  local t = {}
  for i = 1, #list, 2 do t[list[i]] = list[i + 1] end
  return t
end
local function groups(stream)
  local out = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local t = fields(g)
    out[t['name']] = t
  end
  return out
end
local function position(stream, g, info)
  if tonumber(info['pending']) > 0 then
    local first = redis.call('XPENDING', stream, g)[2]
    local prev = redis.call('XREVRANGE', stream, '(' .. first, '-', 'COUNT', 1)
    return prev[1] and prev[1][1] or '0-0', first
  end
  return info['last-delivered-id'], nil
end
local function count_between(stream, from, to, cap)
  local n, start = 0, '(' .. from
  while not cap or n < cap do
    local e = redis.call('XRANGE', stream, start, to, 'COUNT', 1000)
    n = n + #e
    if #e < 1000 then return n end
    start = '(' .. e[#e][1]
  end
  return n
end
local function keep_from(stream, names, infos)
  local keep
  for _, g in ipairs(names) do
    local info = infos[g]
    if info then
      local pos, first = position(stream, g, info)
      local k = first or after(pos)
      if not keep or cmp(k, keep) < 0 then keep = k end
    end
  end
  return keep
end
]==]

-- Each group of ARGV: its name, position, pending entries, entries after its position (the lag)
-- and, when retention removed entries after its position, the highest it removed (KEYS[2]: a
-- gap).
local CONSUMERS = GROUPS .. [==[
local infos = groups(KEYS[1])
local retained = redis.call('GET', KEYS[2])
local out = {}
for _, g in ipairs(ARGV) do
  local info = infos[g]
  if info then
    local pos = position(KEYS[1], g, info)
    local gap = (retained and cmp(retained, pos) > 0) and retained or ''
    -- Redis's own lag (entries not yet delivered to the group) when it knows it; else counted.
    local lag = tonumber(info['lag'])
    lag = lag and (lag + tonumber(info['pending'])) or count_between(KEYS[1], pos, '+', 100000)
    out[#out + 1] = {g, pos, tonumber(info['pending']), lag, gap}
  end
end
return out
]==]
local CONSUMERS_SHA = hex(ngx.sha1_bin(CONSUMERS))

-- Moves group ARGV[1] to ARGV[2] (no further than the newest entry; never back): acknowledges its
-- pending entries up to there and sets its last delivered id. Returns the entries it passed and
-- its position.
local ACK_CONSUMER = GROUPS .. [==[
local stream, g = KEYS[1], ARGV[1]
local infos = groups(stream)
local info = infos[g]
if not info then return redis.error_reply('NOGROUP no consumer group ' .. g) end
local pos = position(stream, g, info)
local upto = ARGV[2]
local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
if not newest then upto = pos elseif cmp(upto, newest[1]) > 0 then upto = newest[1] end
local passed = 0
if cmp(upto, pos) > 0 then
  passed = count_between(stream, pos, upto)
  while true do
    local p = redis.call('XPENDING', stream, g, '-', upto, 1000)
    if #p == 0 then break end
    local ids = {}
    for i, e in ipairs(p) do ids[i] = e[1] end
    redis.call('XACK', stream, g, unpack(ids))
    if #p < 1000 then break end
  end
  if cmp(upto, info['last-delivered-id']) > 0 then
    -- Redis keeps the group's lag when it is told how many entries the group has read.
    local read = tonumber(info['entries-read'])
    if read and tonumber(info['pending']) == 0 then
      redis.call('XGROUP', 'SETID', stream, g, upto, 'ENTRIESREAD', read + passed)
    else
      redis.call('XGROUP', 'SETID', stream, g, upto)
    end
  end
  pos = upto
end
return {passed, pos}
]==]
local ACK_CONSUMER_SHA = hex(ngx.sha1_bin(ACK_CONSUMER))

-- Moves the default consumer's mark KEYS[2] to ARGV[1] (no further than the newest entry; never
-- back). Returns the entries it passed and the mark.
local ACK_DEFAULT = GROUPS .. [==[
local stream, mark = KEYS[1], redis.call('GET', KEYS[2]) or '0-0'
local upto = ARGV[1]
local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
if not newest then return {0, mark} end
if cmp(upto, newest[1]) > 0 then upto = newest[1] end
if cmp(upto, mark) <= 0 then return {0, mark} end
local passed = count_between(stream, mark, upto)
redis.call('SET', KEYS[2], upto)
return {passed, upto}
]==]
local ACK_DEFAULT_SHA = hex(ngx.sha1_bin(ACK_DEFAULT))

-- Retention: the first entry to keep by age (ARGV[1], or ''), by count (ARGV[2], or '') and,
-- for entries every consumer has acknowledged, by acked_max_age (ARGV[3], or ''): the groups of
-- ARGV[4..], or without any, the default consumer's mark KEYS[3]. Counts the entries each group
-- loses (after its position, before that entry), then trims; the highest entry it removed is
-- kept in KEYS[2] (the gaps). Returns the entries trimmed, then each group's loss.
local TRIM = GROUPS .. [==[
local stream = KEYS[1]
local function later(a, b)
  if not a then return b end
  if not b then return a end
  return cmp(a, b) > 0 and a or b
end
local keep = ARGV[1] ~= '' and ARGV[1] or nil
if ARGV[2] ~= '' then
  local over = redis.call('XLEN', stream) - tonumber(ARGV[2])
  if over > 0 then
    local e = redis.call('XRANGE', stream, '-', '+', 'COUNT', over + 1)
    keep = later(keep, e[over + 1] and e[over + 1][1] or after(e[#e][1]))
  end
end
local infos = groups(stream)
if ARGV[3] ~= '' then
  local acked
  if #ARGV > 3 then
    local names = {}
    for i = 4, #ARGV do names[#names + 1] = ARGV[i] end
    acked = keep_from(stream, names, infos)
  else
    local mark = redis.call('GET', KEYS[3])
    acked = mark and after(mark)
  end
  if acked then
    keep = later(keep, cmp(acked, ARGV[3]) < 0 and acked or ARGV[3])
  end
end
local out = {0}
if not keep then return out end
local last = redis.call('XREVRANGE', stream, '(' .. keep, '-', 'COUNT', 1)[1]
if not last then return out end
local retained = redis.call('GET', KEYS[2])
if not retained or cmp(last[1], retained) > 0 then redis.call('SET', KEYS[2], last[1]) end
for i = 4, #ARGV do
  local info, lost = infos[ARGV[i]], 0
  if info then
    local pos = position(stream, ARGV[i], info)
    if cmp(after(pos), keep) < 0 then lost = count_between(stream, pos, '(' .. keep) end
  end
  out[#out + 1] = lost
end
out[1] = redis.call('XTRIM', stream, 'MINID', keep)
return out
]==]
local TRIM_SHA = hex(ngx.sha1_bin(TRIM))

_M.hex, _M.run = hex, script
_M.ADD, _M.ADD_SHA = ADD, ADD_SHA
_M.CONSUMERS, _M.CONSUMERS_SHA = CONSUMERS, CONSUMERS_SHA
_M.ACK_CONSUMER, _M.ACK_CONSUMER_SHA = ACK_CONSUMER, ACK_CONSUMER_SHA
_M.ACK_DEFAULT, _M.ACK_DEFAULT_SHA = ACK_DEFAULT, ACK_DEFAULT_SHA
_M.TRIM, _M.TRIM_SHA = TRIM, TRIM_SHA

return _M
