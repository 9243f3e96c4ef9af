-- A new call, chat or callback request enters the queue.
-- Fields: id, channel, dept, region, groups, skill, lang, priority, place (ms, '' = now: a message
-- left offline keeps its time), caller key.
local id, channel, dept, region, groups, skill, lang, priority, place, ck = fields(10)
if redis.call('EXISTS', K.task(id)) == 1 then return fail('task_exists', id) end
local t = new_task(id, channel, place ~= '' and place or NOW_S)
t.dept, t.region, t.groups, t.skill, t.lang, t.priority, t.ck =
  dept, region, groups, skill, lang, priority, ck
if t.ck ~= '' then
  -- Abandon-resume: a caller back within the window gets their old place.
  local kept = redis.call('GET', K.resume(t.ck))
  if kept then
    local deadline, enq, prio = string.match(kept, '^(%d+)|(%d+)|(%d+)|')
    if deadline and tonumber(deadline) >= NOW then
      t.enq, t.resumed = enq, '1'
      if tonumber(prio) > tonumber(t.priority) then t.priority = prio end
      -- Passed on for a skill: still the help this caller needs, whatever the menu says, and
      -- never from those who passed them on (a place kept before 2026-12-03 has four parts).
      local sent_for, sent_by = string.match(kept, '^%d+|%d+|%d+|[^|]*|([^|]*)|([^|]*)$')
      if sent_for and sent_for ~= '' then
        t.skill, t.passed_on = sent_for, sent_for
        if sent_by ~= '' then t.excl = sent_by end
      end
    end
    redis.call('DEL', K.resume(t.ck))
  end
  -- "Dossier en cours": the volunteer who helped this caller recently goes first, if on duty;
  -- after a skill transfer, only one who has that skill and did not pass the caller on.
  local known, forget_at = unpack(redis.call('HMGET', K.recent(t.ck), 'vol', 'until'))
  if known and tonumber(forget_at or NOW) < NOW then known = nil end -- forgotten (engine's clock)
  if known and cfg('known_volunteer_ms') > 0 then
    local presence, skills = unpack(redis.call('HMGET', K.vol(known), 'presence', 'skills'))
    local may_take = not t.passed_on or (has(skills or '', t.passed_on) and not has(t.excl or '', known))
    if presence == 'available' and may_take then
      t.pref, t.pref_until = known, n2s(NOW + cfg('known_volunteer_ms'))
    end
  end
end
if t.skill ~= '' or t.lang ~= '' then t.need_until = n2s(NOW + cfg('skill_relax_ms')) end
create_task(t)
-- What this script decided of the task (the engine knows the rest from the spec), so that it
-- needs no second round trip to read it back: ten strings, the first the task's state (never
-- 'err', which only a refusal starts with). The client's parser reads them in C; decoding a
-- JSON string was a tenth of the engine's own Python work per enqueue.
return {t.state, t.vol, t.level, t.ring, t.enq, t.priority, t.resumed, t.pref, t.created, t.skill}
