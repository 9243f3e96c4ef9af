-- A volunteer (or a coordinator, or the shift scheduler) changes the volunteer's presence.
-- Fields: volunteer, presence (available | paused | logged_out); ARGV[2]: the reason
local vid, presence = fields(2)
local reason = ARGV[2]
local v = load_vol(vid)
if not v then return fail('unknown_volunteer', vid) end
if presence ~= 'available' and presence ~= 'paused' and presence ~= 'logged_out' then
  return fail('invalid_presence', presence)
end
local was = v.presence
if was == presence and v.reason == reason then return 'same' end
record_presence(v, presence, reason)
if presence == 'available' then
  v.misses = '0'
  redis.call('HSET', K.vol(vid), 'misses', '0')
  if was ~= 'available' then
    set_on_duty(v, 1)
    if tonumber(v.load_voice) == 0 and tonumber(v.load_chat) == 0 then
      v.idle_since = NOW_S
      redis.call('HSET', K.vol(vid), 'idle_since', v.idle_since)
    end
  end
  refresh_free(v)
  dispatch_volunteer(v)
  return presence
end
local offered = v.reserved
if offered ~= '' then drop_reservation(v) end
refresh_free(v)
local emptied = {}
if was == 'available' then emptied = set_on_duty(v, -1) end
if offered ~= '' then requeue(load_task(offered)) end
end_preferences(vid)
skip_empty_rings(emptied)
return presence
