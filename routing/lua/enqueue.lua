-- A new call, chat or callback request enters the queue.
-- ARGV: 4 id, 5 channel, 6 dept, 7 region, 8 groups, 9 skill, 10 lang, 11 priority,
--       12 caller key, 13 place (ms, '' = now; a message left offline keeps its time)
local id = ARGV[4]
if redis.call('EXISTS', K.task(id)) == 1 then return fail('task_exists', id) end
local t = new_task(id, ARGV[5], ARGV[13] ~= '' and ARGV[13] or NOW_S)
t.dept, t.region, t.groups, t.skill, t.lang, t.priority, t.ck =
  ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
if t.skill ~= '' or t.lang ~= '' then t.need_until = n2s(NOW + CFG.skill_relax_ms) end
if t.ck ~= '' then
  -- Abandon-resume: a caller back within the window gets their old place.
  local place = redis.call('GET', K.resume(t.ck))
  if place then
    local deadline, enq, prio = string.match(place, '^(%d+)|(%d+)|(%d+)|')
    if deadline and tonumber(deadline) >= NOW then
      t.enq, t.resumed = enq, '1'
      if tonumber(prio) > tonumber(t.priority) then t.priority = prio end
    end
    redis.call('DEL', K.resume(t.ck))
  end
  -- "Dossier en cours": the volunteer who helped this caller recently goes first, if on duty.
  local known, forget_at = unpack(redis.call('HMGET', K.recent(t.ck), 'vol', 'until'))
  if known and tonumber(forget_at or NOW) < NOW then known = nil end -- forgotten (engine's clock)
  if known and CFG.known_volunteer_ms > 0 and redis.call('HGET', K.vol(known), 'presence') == 'available' then
    t.pref, t.pref_until = known, n2s(NOW + CFG.known_volunteer_ms)
  end
end
create_task(t)
-- What this script decided of the task (the engine knows the rest from the spec), so that it
-- needs no second round trip to read it back: one short JSON array, which a client parses
-- much faster than the whole hash, and Redis writes faster too.
return cjson.encode({t.state, t.vol, t.level, t.ring, t.enq, t.priority, t.resumed, t.pref, t.created})
