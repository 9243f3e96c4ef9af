-- A volunteer declines an offer: it goes to the next volunteer and keeps its place.
-- Fields: volunteer, task
local vid, tid = fields(2)
local t = load_task(tid)
if not t then return fail('unknown_task', tid) end
if t.state == 'ended' or t.state == 'wrapup' then return fail('task_already_ended', tid) end
if t.state ~= 'reserved' then return fail('offer_expired', tid) end
if t.vol ~= vid then return fail('offer_not_yours', tid) end
local v = load_vol(vid)
drop_reservation(v)
-- As mod_callcenter's reject-delay-time: no new offer for a moment.
block(v, cfg('reject_delay_ms'))
refresh_free(v)
emit('offer_declined', tid, vid)
-- Declined by the volunteer it was waiting for: the next volunteer, now (DESIGN.md).
if t.pref == vid then forget_preference(t) end
requeue(t)
return 'declined'
