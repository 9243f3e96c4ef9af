-- A volunteer hands a task over: to anyone with a skill, or to a named colleague first.
-- Fields: volunteer, task, skill ('' = keep), colleague ('' = none)
local vid, tid, skill, target = fields(4)
local t = load_task(tid)
if not t then return fail('unknown_task', tid) end
if t.state == 'wrapup' or t.state == 'ended' then return fail('task_already_ended', tid) end
if t.state ~= 'assigned' or t.vol ~= vid then return fail('task_not_assigned', tid) end
if skill == '' and target == '' then return fail('transfer_without_target', tid) end
if target ~= '' then
  if target == vid or redis.call('HGET', K.vol(target), 'presence') ~= 'available' then
    return fail('transfer_target_unavailable', target)
  end
end
if skill ~= '' then
  t.skill, t.need_until = skill, n2s(NOW + cfg('skill_relax_ms'))
  -- passed_on: kept for the caller's place if they are cut off and call back (cancel.lua)
  redis.call('HSET', K.task(tid), 'skill', skill, 'need_until', t.need_until, 'passed_on', skill)
  -- Passed on for a skill they lack: never offered back to them, even once the skill relaxes.
  if target == '' and not has(t.excl or '', vid) then
    t.excl = (t.excl or '') == '' and vid or t.excl .. ',' .. vid
    redis.call('HSET', K.task(tid), 'excl', t.excl)
  end
end
if target ~= '' then
  t.pref, t.pref_until = target, n2s(NOW + cfg('transfer_wait_ms'))
  redis.call('HSET', K.task(tid), 'pref', target, 'pref_until', t.pref_until)
end
redis.call('HINCRBY', K.task(tid), 'transfers', 1)
emit('task_transferred', tid, vid, 'skill', skill, 'to', target)
stat('transferred')
requeue(t)
-- Reload: a chat with room to spare may just have been offered again to this very volunteer.
release(load_vol(vid), t)
return t.state
