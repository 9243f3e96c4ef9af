-- Shared by every transition script: each carries the definitions it uses (scripts.py).
-- ARGV[1] is now (ms, UTC), its 15-minute bucket (Europe/Paris, which starts with the day's) and
-- then the script's own fields, all joined by '|': '1764667200000|2026-12-02T09:15|v12|t34'. One
-- argument, because the client's cost grows with each one it packs, by more than splitting costs
-- here (bench/README.md, 2026-12-03). No field holds a '|' (the engine refuses one); free text, a
-- name or a reason, comes alone as ARGV[2].
local NOW_S, INTERVAL, FIELDS = string.match(ARGV[1], '^(%d+)|([^|]*)|(.*)$')
local NOW = tonumber(NOW_S) -- the engine sends whole milliseconds
local BUCKETS = {string.sub(INTERVAL, 1, 10), INTERVAL} -- the day's and the quarter-hour's counters
local RINGS = 3 -- 0 département, 1 groups, 2 région, 3 national

-- Lua would print large numbers as 1.8e+12: always format them ourselves (whole milliseconds,
-- counts; '%d' costs half of '%.0f' in Redis' Lua). Passing a Lua number to redis.call costs more:
-- Redis formats it with '%.17g'; strings go as they are.
local function n2s(x) return string.format('%d', x) end

-- The script's own n fields of ARGV[1]. Another count is the engine's mistake, not bad input:
-- the script stops before it writes anything. (string.match gives one nil when it fails, the n
-- fields when it matches; no table, which would cost twice as much.)
local function present(first, ...)
  if first == nil then error('routing: another number of fields expected in ' .. ARGV[1]) end
  return first, ...
end
local function fields(n)
  return present(string.match(FIELDS, '^' .. string.rep('([^|]*)|', n - 1) .. '([^|]*)$'))
end

local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- The line's parameters, each read where it is used (the line's hash is KEYS[1]): a script needs
-- a few, and loading them all (HGETALL, then tonumber on each) was a tenth of a task life
-- cycle's cost in Redis; one HMGET of all a script may read costs more than the few HGETs it
-- does, and so did memoising them: a table with an __index metamethod, and two tables made
-- and grown on every call, were 5 % of a life cycle's instructions in Redis (bench/README.md).
-- cfg(name) is a number; cfg_s(name) the same as stored, to pass on to Redis.
local function cfg_s(name) return redis.call('HGET', KEYS[1], name) end
local function cfg(name) return tonumber(redis.call('HGET', KEYS[1], name)) end

local function split(s)
  local out = {}
  if s == nil or s == '' then return out end
  for part in string.gmatch(s, '[^,]+') do out[#out + 1] = part end
  return out
end

local function has(csv, item) return string.find(',' .. csv .. ',', ',' .. item .. ',', 1, true) ~= nil end

-- A script answers with its outcome (one string; enqueue's, a list that never starts with
-- 'err'), or with this list when it refused and changed nothing.
local function fail(code, detail) return {'err', code, detail or ''} end

local function emit(kind, task_id, vol_id, ...)
  redis.call('XADD', K.events(), 'MAXLEN', '~', cfg_s('stream_maxlen'), '*',
    'type', kind, 'at', NOW_S, 'task', task_id or '', 'volunteer', vol_id or '', ...)
end

-- A counter key gets its deadline when one of its fields is first written (a new key's first
-- field always is): stats_ttl after the bucket's first use of each counter, not after its last
-- write. Setting it on every write cost a tenth of a task life cycle's Redis calls.
local function stat(field, n)
  local by = n and n2s(n) or '1'
  n = n or 1
  for i = 1, 2 do
    local key = K.stats(BUCKETS[i])
    if redis.call('HINCRBY', key, field, by) == n then redis.call('PEXPIRE', key, cfg_s('stats_ttl_ms')) end
  end
end

-- Tasks ----------------------------------------------------------------------

local function load_task(id)
  local t = hgetall(K.task(id))
  if t then t.id = id end
  return t
end

-- A task's state and these fields only (nil when there is no such task): a transition that
-- needs a few of them spares reading a 24-field hash whole, which costs as much as five calls.
local function load_task_fields(id, ...)
  local names, values = {...}, redis.call('HMGET', K.task(id), 'state', ...)
  if not values[1] then return nil end
  local t = {id = id, state = values[1]}
  for i, name in ipairs(names) do t[name] = values[i + 1] or nil end
  return t
end

local function task_score(t) return (9 - tonumber(t.priority)) * 1e13 + tonumber(t.enq) end

local function ring_scopes(t, ring)
  if ring == 0 then return {'d:' .. t.dept} end
  if ring == 1 then
    local s = {}
    for _, g in ipairs(split(t.groups)) do s[#s + 1] = 'g:' .. g end
    return s
  end
  if ring == 2 then return {'r:' .. t.region} end
  return {'n'}
end

local function on_duty_in(t, ring)
  for _, scope in ipairs(ring_scopes(t, ring)) do
    if tonumber(redis.call('HGET', K.on(), scope) or '0') > 0 then return true end
  end
  return false
end

-- Somebody on duty (available or busy, not paused) in rings 0..ring of the task.
local function ring_on_duty(t, ring)
  for r = 0, ring do if on_duty_in(t, r) then return true end end
  return false
end

local THRESHOLDS = {'widen_group_ms', 'widen_region_ms', 'widen_national_ms'}

-- The ring a task may reach now: by age, then skipping rings with nobody on duty.
local function target_level(t)
  local age, level = NOW - tonumber(t.enq), tonumber(t.level or '0')
  for i = level + 1, RINGS do
    if age >= cfg(THRESHOLDS[i]) then level = i end
  end
  while level < RINGS and not ring_on_duty(t, level) do level = level + 1 end
  return level
end

local function wait_add(t, from_ring)
  local score = n2s(task_score(t))
  for r = from_ring, tonumber(t.level) do
    for _, scope in ipairs(ring_scopes(t, r)) do redis.call('ZADD', K.wait(t.cls, scope), score, t.id) end
  end
  redis.call('ZADD', K.wait(t.cls, 'all'), score, t.id)
  if t.pref ~= '' then redis.call('ZADD', K.wait(t.cls, 'p:' .. t.pref), score, t.id) end
end

-- Only a waiting task is queued, and only in the rings it reached (wait_add, set_level).
local function wait_remove(t)
  if t.state ~= 'waiting' then return end
  for r = 0, tonumber(t.level) do
    for _, scope in ipairs(ring_scopes(t, r)) do redis.call('ZREM', K.wait(t.cls, scope), t.id) end
  end
  redis.call('ZREM', K.wait(t.cls, 'all'), t.id)
  if t.pref ~= '' then redis.call('ZREM', K.wait(t.cls, 'p:' .. t.pref), t.id) end
end

local function set_level(t, level)
  local old = tonumber(t.level)
  if level <= old then return end
  t.level = tostring(level)
  redis.call('HSET', K.task(t.id), 'level', t.level)
  wait_add(t, old + 1)
  emit('task_widened', t.id, '', 'level', t.level)
end

-- The next moment something changes for a waiting task without any event:
-- a widening threshold, a skill requirement relaxing, a preferred volunteer's turn ending.
local function schedule_task_timer(t)
  local due = nil
  local function consider(at) if at > NOW and (due == nil or at < due) then due = at end end
  for i = tonumber(t.level) + 1, RINGS do consider(tonumber(t.enq) + cfg(THRESHOLDS[i])) end
  consider(tonumber(t.need_until or '0'))
  consider(tonumber(t.pref_until or '0'))
  if due then redis.call('ZADD', K.timers(), n2s(due), 'w:' .. t.id)
  else redis.call('ZREM', K.timers(), 'w:' .. t.id) end
end

-- Volunteers -----------------------------------------------------------------

-- A volunteer as their hash holds them (nil if there is none), every field by name: one HMGET
-- into a table made in one go costs Redis half of HGETALL and a table grown field by field.
-- It lists every field a script writes into a volunteer's hash (tests/routing/test_scripts.py
-- checks it). A missing field is nil, as in the hash; 'presence' is always there.
local function load_vol(id)
  local f = redis.call('HMGET', K.vol(id), 'presence', 'reason', 'presence_since', 'dept', 'region',
    'groups', 'skills', 'langs', 'chat_cap', 'name', 'load_voice', 'load_chat', 'reserved', 'misses',
    'blocked_until', 'idle_since', 'fs')
  if not f[1] then return nil end
  return {id = id, presence = f[1], reason = f[2] or nil, presence_since = f[3] or nil, dept = f[4] or nil,
    region = f[5] or nil, groups = f[6] or nil, skills = f[7] or nil, langs = f[8] or nil,
    chat_cap = f[9] or nil, name = f[10] or nil, load_voice = f[11] or nil, load_chat = f[12] or nil,
    reserved = f[13] or nil, misses = f[14] or nil, blocked_until = f[15] or nil,
    idle_since = f[16] or nil, fs = f[17] or nil}
end

local function vol_scopes(v)
  local s = {'d:' .. v.dept}
  for _, g in ipairs(split(v.groups)) do s[#s + 1] = 'g:' .. g end
  s[#s + 1] = 'r:' .. v.region
  s[#s + 1] = 'n'
  return s
end

local function free_for(v, cls)
  if v.presence ~= 'available' or v.reserved ~= '' or tonumber(v.blocked_until) > NOW then return false end
  local lv, lc = tonumber(v.load_voice), tonumber(v.load_chat)
  if cls == 'voice' then return lv == 0 and lc == 0 end
  return lv == 0 and lc < tonumber(v.chat_cap)
end

-- The free sets a volunteer can be in: 'voice' holds those with nothing in hand, who may take a
-- call or a chat; 'chat' those with chats under their capacity and no call. A chat goes to
-- the longest idle of both (FREE_SETS.chat), a call looks at 'voice' only. A call moves its
-- volunteer in and out of one set per scope, not two as when (before 2026-12-02) everyone free
-- for a call was in the chat sets too: 2.6 % less work in Redis per call's life cycle.
local FREE_SETS = {voice = {'voice'}, chat = {'voice', 'chat'}}

-- Put the volunteer in (or out of) the free sets of their scopes as their state now says; only
-- when that changed (most transitions of a busy volunteer leave them out, e.g. accepting a call).
-- 'fs' in their hash records where refresh_free last left them: 'v' or 'c' (the set) and their
-- idle time; '' when in none. 'vc' (written before 2026-12-02, in both sets) and a missing mark
-- are rewritten, leaving every set the volunteer should not be in.
-- `...`: the caller's own changes to the volunteer's hash (field, value...), written with 'fs'
-- in one HSET.
local function refresh_free(v, ...)
  local fields = {...}
  -- Still blocked at this script's NOW, which another process may have taken just before the
  -- unblock timer ran: keep a timer to bring the volunteer back (a no-op when it is there).
  if tonumber(v.blocked_until) > NOW then redis.call('ZADD', K.timers(), v.blocked_until, 'u:' .. v.id) end
  local set = (free_for(v, 'voice') and 'voice') or (free_for(v, 'chat') and 'chat') or nil
  local mark = set and (string.sub(set, 1, 1) .. ':' .. v.idle_since) or ''
  if mark ~= v.fs then
    local was = v.fs and (string.match(v.fs, '^(%a*):') or '') -- nil: unknown, so possibly in both
    local scopes = vol_scopes(v)
    for _, name in ipairs(FREE_SETS.chat) do -- a chat looks in every free set
      if name == set then
        for _, scope in ipairs(scopes) do redis.call('ZADD', K.free(name, scope), v.idle_since, v.id) end
      elseif was == nil or string.find(was, string.sub(name, 1, 1), 1, true) then
        for _, scope in ipairs(scopes) do redis.call('ZREM', K.free(name, scope), v.id) end
      end
    end
    v.fs = mark
    fields[#fields + 1], fields[#fields + 2] = 'fs', mark
  end
  if #fields > 0 then redis.call('HSET', K.vol(v.id), unpack(fields)) end
end

local function set_on_duty(v, delta)
  local emptied = {}
  for _, scope in ipairs(vol_scopes(v)) do
    if redis.call('HINCRBY', K.on(), scope, delta) <= 0 then
      redis.call('HDEL', K.on(), scope)
      emptied[#emptied + 1] = scope
    end
  end
  return emptied
end

-- Keep the staffing counts in step with a change of the volunteer (`before`: their share then),
-- so that reading them costs the same with 20 or 2,000 volunteers. No counts yet: the staffing
-- script makes them, once, by counting every volunteer.
local STAFF_FIELDS = {'logged_in', 'working', 'lanes'}
local function restaff(before, v)
  local after = staff_share(v)
  if after[1] == before[1] and after[2] == before[2] and after[3] == before[3] then return end
  if redis.call('EXISTS', K.staff()) == 0 then return end
  for i, field in ipairs(STAFF_FIELDS) do
    if after[i] ~= before[i] then redis.call('HINCRBY', K.staff(), field, after[i] - before[i]) end
  end
end

-- Record a new presence with its reason (a pause by hand, the auto-pause, logging out...) and
-- announce it; on-duty counts and offers in flight are the caller's business.
local function record_presence(v, presence, reason)
  local before = staff_share(v)
  v.presence, v.reason = presence, reason
  redis.call('HSET', K.vol(v.id), 'presence', presence, 'reason', reason, 'presence_since', NOW_S)
  restaff(before, v)
  emit('volunteer_presence', '', v.id, 'presence', presence, 'reason', reason)
end

-- No offer for a while (mod_callcenter's reject and no-answer delays); the unblock timer ends it.
local function block(v, ms)
  v.blocked_until = n2s(NOW + ms)
  redis.call('HSET', K.vol(v.id), 'blocked_until', v.blocked_until)
  redis.call('ZADD', K.timers(), v.blocked_until, 'u:' .. v.id)
end

-- One more missed offer in a row (`earlier`: misses an accept cleared that turned out void).
local function add_miss(v, earlier)
  v.misses = tostring(tonumber(v.misses) + (earlier or 0) + 1)
  redis.call('HSET', K.vol(v.id), 'misses', v.misses)
end

-- After a miss: paused "sans réponse" once max_no_answer are reached while on duty, else the
-- no-answer delay. Returns the scopes the pause left with nobody on duty (skip_empty_rings).
local function pause_or_block(v)
  if tonumber(v.misses) >= cfg('max_no_answer') and v.presence == 'available' then
    record_presence(v, 'paused', 'sans réponse')
    return set_on_duty(v, -1)
  end
  block(v, cfg('no_answer_delay_ms'))
  return {}
end

-- Matching -------------------------------------------------------------------

-- 0 same département, 1 a shared group, 2 same région, 3 national.
local function ring_of(t, v)
  if v.dept == t.dept then return 0 end
  for _, g in ipairs(split(t.groups)) do if has(v.groups, g) then return 1 end end
  if v.region == t.region then return 2 end
  return 3
end

-- While a preferred volunteer's turn lasts (returning caller, named transfer), only they may take it.
-- Nor is a task offered to a volunteer who passed it on for a skill (excl).
local function eligible(t, v)
  if tonumber(t.pref_until) > NOW then return t.pref == v.id end
  if t.excl and t.excl ~= '' and has(t.excl, v.id) then return false end
  if ring_of(t, v) > tonumber(t.level) then return false end
  if tonumber(t.need_until) > NOW then
    if t.skill ~= '' and not has(v.skills, t.skill) then return false end
    if t.lang ~= '' and not has(v.langs, t.lang) then return false end
  end
  return true
end

-- First entry of a sorted set accepted by `ok(member, score)`, scanning in pages: `size` first
-- (the first entry is usually the one), then 50. A free set is read without its scores (`ok`
-- gets nil): each one Redis formats and Lua parses back cost more than reading the member
-- (ZRANGE of 4 with scores 34 K instructions, without 13 K), and a volunteer's score is the
-- idle_since their loading reads anyway. A waiting set's scores (priority, place) are used.
local function first_in(key, ok, size, scored)
  local start, step = 0, scored and 2 or 1
  while true do
    local stop = start + size - 1
    local page = scored and redis.call('ZRANGE', key, start, stop, 'WITHSCORES')
      or redis.call('ZRANGE', key, start, stop)
    if #page == 0 then return nil end
    for i = 1, #page, step do
      local score = scored and tonumber(page[i + 1]) or nil
      if ok(page[i], score) then return page[i], score end
    end
    start, size = start + size, 50
  end
end

local function better(id, score, best_id, best_score)
  return id and (best_id == nil or score < best_score or (score == best_score and id < best_id))
end

-- Closest ring first, then longest idle, then volunteer id. Returns the volunteer as loaded.
local function find_volunteer(t)
  local loaded = {}
  local function ok(vid)
    loaded[vid] = load_vol(vid)
    return eligible(t, loaded[vid])
  end
  local sets = FREE_SETS[t.cls]
  if tonumber(t.pref_until) > NOW then
    for _, name in ipairs(sets) do
      if redis.call('ZSCORE', K.free(name, 'n'), t.pref) then return ok(t.pref) and loaded[t.pref] or nil end
    end
    return nil
  end
  for ring = 0, tonumber(t.level) do
    local best, best_score = nil, nil
    for _, scope in ipairs(ring_scopes(t, ring)) do
      for _, name in ipairs(sets) do
        local id = first_in(K.free(name, scope), ok, 1, false)
        local score = id and tonumber(loaded[id].idle_since) -- refresh_free scores them so
        if better(id, score, best, best_score) then best, best_score = id, score end
      end
    end
    if best then return loaded[best] end
  end
  return nil
end

-- The volunteer's scopes with their closeness: their own callers first ('p:', the known
-- volunteer's turn), then département, groups, région, national.
local function ranked_scopes(v)
  local out = {{'p:' .. v.id, -1}, {'d:' .. v.dept, 0}}
  for _, g in ipairs(split(v.groups)) do out[#out + 1] = {'g:' .. g, 1} end
  out[#out + 1] = {'r:' .. v.region, 2}
  out[#out + 1] = {'n', 3}
  return out
end

local function queued_before(a, b) return a.score < b.score or (a.score == b.score and a.id < b.id) end

-- Whether a task may be left to a closer volunteer on duty: not once it has been offered
-- (whoever had it declined, missed or passed it on), nor while it needs a skill or language
-- (the on-duty counts do not say whether the closer volunteer has it).
local function leavable(t)
  if t.offered_at then return false end
  return tonumber(t.need_until) <= NOW or (t.skill == '' and t.lang == '')
end

-- How a freed volunteer ranks a task they may take (find_task): tier 0 has waited
-- local_first_max_wait, tier 1 is theirs, tier 2 is left to a closer volunteer on duty
-- (leave_to_closer). rank: -1 their own returning caller, else the ring.
local function choice(t, score, scope_rank, v, cap, leave)
  local rank = math.min(scope_rank, ring_of(t, v))
  local tier = 1
  if cap <= 0 or NOW - (score % 1e13) >= cap then tier = 0 -- task_score: priority * 1e13 + place
  elseif leave and rank > 0 and leavable(t) and ring_on_duty(t, rank - 1) then tier = 2 end
  return {id = t.id, score = score, rank = rank, tier = tier}
end

local function preferred(a, b)
  if a.tier ~= b.tier then return a.tier < b.tier end
  if a.tier == 1 and a.rank ~= b.rank then return a.rank < b.rank end
  return queued_before(a, b)
end

-- The first task of a waiting set this volunteer may take, and while that one is left to a
-- closer volunteer, the first that is not, in the same priority: looking at most LEAVE_SCAN
-- entries further, so that a long queue costs a bounded scan (past it, tier 2 stands).
local LEAVE_SCAN = 64
-- `loaded`: the tasks read so far by this find_task (a task is in every ring it reached).
local function scan_waiting(key, scope_rank, v, cap, leave, found, loaded)
  local seen, first = 0, nil
  first_in(key, function(tid, score) -- true ends the scan
    if first then
      if seen == LEAVE_SCAN or math.floor(score / 1e13) ~= math.floor(first.score / 1e13) then return true end
      seen = seen + 1
    end
    if loaded[tid] == nil then
      local t = load_task(tid)
      loaded[tid] = {task = t, ok = eligible(t, v)}
    end
    if not loaded[tid].ok then return false end
    local t = loaded[tid].task
    local c = choice(t, score, scope_rank, v, cap, leave)
    if first == nil then first = c; found[#found + 1] = c
    elseif c.tier < 2 then found[#found + 1] = c end
    return c.tier < 2
  end, 4, true)
end

-- Among the tasks this volunteer may take now: highest priority first, always. Within it,
-- first the tasks that have waited local_first_max_wait (from their place), longest waiting
-- first, so that nobody waits for ever behind closer callers; then the closest ring, then the
-- longest waiting; and with leave_to_closer, last the tasks for which a volunteer of a closer
-- ring is on duty (they will likely free up for it soon): taken only when nothing else
-- waits, so nobody idles beside a waiting task. local_first_max_wait 0: the longest waiting.
-- `classes`: those the volunteer is free for in which a task waits. Returns the task as loaded.
local function find_in(v, classes)
  local cap, leave = cfg('local_first_max_wait_ms') or 0, (cfg('leave_to_closer') or 0) == 1
  local found, loaded = {}, {}
  for _, cls in ipairs(classes) do
    for _, sr in ipairs(ranked_scopes(v)) do
      scan_waiting(K.wait(cls, sr[1]), sr[2], v, cap, leave, found, loaded)
    end
  end
  local head = nil
  for _, c in ipairs(found) do if head == nil or queued_before(c, head) then head = c end end
  if head == nil then return nil end
  local band, pick = math.floor(head.score / 1e13), head
  for _, c in ipairs(found) do
    if math.floor(c.score / 1e13) == band and preferred(c, pick) then pick = c end
  end
  return loaded[pick.id].task
end

-- The task a freed volunteer takes now, if any (as loaded).
local function find_task(v)
  -- Every waiting task is also in its class's 'all' set (wait_add, wait_remove): when that
  -- is empty (no queue, the usual case when a volunteer frees up) no scope needs a scan.
  local classes = {}
  for _, cls in ipairs({'voice', 'chat'}) do
    if free_for(v, cls) and redis.call('EXISTS', K.wait(cls, 'all')) == 1 then classes[#classes + 1] = cls end
  end
  if #classes == 0 then return nil end
  do -- cold: a freed volunteer usually finds no queue; the scan's definitions are made here
    return find_in(v, classes)
  end
end

-- Offer a task that is not (or no longer) queued to this volunteer, for the ring time.
local function offer(t, v)
  local ring = ring_of(t, v)
  t.state, t.vol, t.ring, t.offered_at = 'reserved', v.id, tostring(ring), NOW_S
  redis.call('HSET', K.task(t.id), 'state', 'reserved', 'vol', v.id, 'ring', t.ring, 'offered_at', t.offered_at)
  local expires = n2s(NOW + cfg('ring_ms'))
  redis.call('ZADD', K.timers(), expires, 'r:' .. t.id)
  v.reserved = t.id
  refresh_free(v, 'reserved', t.id)
  emit('task_offered', t.id, v.id, 'ring', t.ring, 'expires_at', expires, 'channel', t.channel)
end

-- Offer a waiting task: out of the queue (and its widening timer) first.
local function reserve(t, v)
  wait_remove(t)
  redis.call('ZREM', K.timers(), 'w:' .. t.id)
  offer(t, v)
end

local function dispatch_task(t)
  if t.state ~= 'waiting' then return end
  local v = find_volunteer(t)
  if v then reserve(t, v) end
end

local function dispatch_volunteer(v)
  local t = find_task(v)
  if t then -- cold
    reserve(t, v)
  end
end

-- Back in the queue at its original place (decline, no answer, transfer, volunteer gone).
local function requeue(t)
  t.state, t.vol = 'waiting', ''
  redis.call('HSET', K.task(t.id), 'state', 'waiting', 'vol', '')
  redis.call('ZREM', K.timers(), 'r:' .. t.id)
  wait_add(t, 0)
  set_level(t, target_level(t))
  schedule_task_timer(t)
  dispatch_task(t)
end

-- The tasks of these waiting sets, each once, in queue order (priority, place, id): when several
-- become offerable at the same instant, the one that has waited longest must be offered first,
-- whatever its scope or channel.
local function in_queue_order(keys)
  local seen, list = {}, {}
  for _, key in ipairs(keys) do
    local flat = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    for i = 1, #flat, 2 do
      if not seen[flat[i]] then
        seen[flat[i]] = true
        list[#list + 1] = {id = flat[i], score = tonumber(flat[i + 1])}
      end
    end
  end
  table.sort(list, function(a, b) return a.score < b.score or (a.score == b.score and a.id < b.id) end)
  return list
end

-- Widen every waiting task of these scopes whose ring just lost its last volunteer.
local function skip_empty_rings(scopes)
  local keys = {}
  for _, scope in ipairs(scopes) do
    for _, cls in ipairs({'voice', 'chat'}) do keys[#keys + 1] = K.wait(cls, scope) end
  end
  for _, queued in ipairs(in_queue_order(keys)) do
    local t = load_task(queued.id)
    local level = target_level(t)
    if level > tonumber(t.level) then
      set_level(t, level)
      schedule_task_timer(t)
      dispatch_task(t)
    end
  end
end

-- The task no longer waits for one volunteer in particular: the rings apply.
local function forget_preference(t)
  if t.pref == '' then return end
  redis.call('ZREM', K.wait(t.cls, 'p:' .. t.pref), t.id)
  t.pref, t.pref_until = '', '0'
  redis.call('HSET', K.task(t.id), 'pref', '', 'pref_until', '0')
end

-- A preferred volunteer (returning caller's, named transfer) going off duty ends their turn
-- at once: the preference applies only while they are on duty (DESIGN.md), then the rings.
local function end_preferences(vid)
  for _, queued in ipairs(in_queue_order({K.wait('voice', 'p:' .. vid), K.wait('chat', 'p:' .. vid)})) do
    local t = load_task(queued.id)
    forget_preference(t)
    set_level(t, target_level(t))
    schedule_task_timer(t)
    dispatch_task(t)
  end
end

-- Give back a volunteer's capacity held by a task (after wrap-up or a transfer).
local function release(v, t)
  local before = staff_share(v)
  local field = t.cls == 'voice' and 'load_voice' or 'load_chat'
  v[field] = tostring(tonumber(v[field]) - 1)
  local fields = {field, v[field]}
  if tonumber(v.load_voice) == 0 and tonumber(v.load_chat) == 0 then
    v.idle_since = NOW_S
    fields[3], fields[4] = 'idle_since', v.idle_since
  end
  restaff(before, v)
  refresh_free(v, unpack(fields))
  dispatch_volunteer(v)
end

-- A reservation undone without fault of the volunteer (task cancelled, volunteer pausing).
local function drop_reservation(v)
  v.reserved = ''
  redis.call('HSET', K.vol(v.id), 'reserved', '')
end

local function end_task(t, outcome, reason)
  wait_remove(t)
  redis.call('ZREM', K.timers(), 'w:' .. t.id, 'r:' .. t.id, 'x:' .. t.id)
  redis.call('SREM', K.live(), t.id)
  redis.call('HSET', K.task(t.id), 'state', 'ended', 'outcome', outcome, 'reason', reason or '',
    'ended_at', NOW_S)
  redis.call('PEXPIRE', K.task(t.id), cfg_s('ended_ttl_ms'))
  emit('task_ended', t.id, t.vol, 'outcome', outcome, 'reason', reason or '', 'channel', t.channel)
end

local function waited_ms(t) return NOW - tonumber(t.created) end

-- Store a new task and offer it at once if someone may take it, else queue it in its rings.
-- `replaces`: the call this callback replaces, already counted as offered (one contact).
local function create_task(t, replaces)
  t.cls = t.channel == 'chat' and 'chat' or 'voice'
  local level = target_level(t)
  t.level = tostring(level)
  local fields = {}
  for k, v in pairs(t) do fields[#fields + 1] = k; fields[#fields + 1] = v end
  redis.call('HSET', K.task(t.id), unpack(fields))
  redis.call('SADD', K.live(), t.id)
  if not replaces then stat('offered_' .. t.channel) end -- totals are sums (Counts.from_hash)
  -- Announced before anything else is said of it, with the ring it starts at (rings skipped at
  -- once, or all of them with no widening delay); task_widened says when it reaches the next.
  emit('task_created', t.id, '', 'channel', t.channel, 'dept', t.dept, 'region', t.region,
    'skill', t.skill, 'priority', t.priority, 'resumed', t.resumed, 'preferred', t.pref,
    'replaces', replaces or '', 'level', t.level)
  -- Offered straight away when someone may take it (no queue, the usual case): queueing it in
  -- every ring only to take it out again was a fifth of a life cycle's Redis calls.
  local v = find_volunteer(t)
  if v then return offer(t, v) end
  wait_add(t, 0)
  schedule_task_timer(t)
end

local function new_task(id, channel, enq)
  return {id = id, channel = channel, enq = enq, created = NOW_S, level = '0', state = 'waiting',
    vol = '', pref = '', pref_until = '0', ring = '', answered = '0', resumed = '0', need_until = '0'}
end
