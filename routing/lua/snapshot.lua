-- Read-only: the whole live state of a line at one instant, as JSON, for invariant checks.
local function hash(key)
  local flat, h = redis.call('HGETALL', key), {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end
local function zset(key)
  local flat, z = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES'), {}
  for i = 1, #flat, 2 do z[flat[i]] = flat[i + 1] end
  return z
end
local function scan(pattern)
  local found, cursor = {}, '0'
  repeat
    local res = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = res[1]
    for _, key in ipairs(res[2]) do found[#found + 1] = key end
  until cursor == '0'
  return found
end
local escaped = string.gsub(B, '([%[%]%*%?{}\\])', '\\%1')
local snap = {tasks = {}, vols = {}, sets = {}, on = hash(K.on()), timers = zset(K.timers()),
  cfg = hash(K.cfg()), staff = hash(K.staff())}
for _, id in ipairs(redis.call('SMEMBERS', K.live())) do snap.tasks[id] = hash(K.task(id)) end
for _, id in ipairs(redis.call('SMEMBERS', K.vols())) do snap.vols[id] = hash(K.vol(id)) end
for _, prefix in ipairs({'w:', 'f:'}) do
  for _, key in ipairs(scan(escaped .. prefix .. '*')) do
    snap.sets[string.sub(key, #B + 1)] = zset(key)
  end
end
return cjson.encode(snap)
