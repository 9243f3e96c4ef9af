-- A volunteer's profile as the console opens: territory, skills, chat capacity.
-- Presence is left as it is; an available volunteer moves to the new rings at once.
-- Fields: volunteer, dept, region, groups, skills, languages, chat capacity; ARGV[2]: the name
local vid, dept, region, groups, skills, langs, chat_cap = fields(7)
local v = load_vol(vid)
local before = staff_share(v)
if v then
  -- A lower chat capacity must still hold the chats in hand and the one ringing, if any.
  local chats = tonumber(v.load_chat)
  if v.reserved ~= '' and redis.call('HGET', K.task(v.reserved), 'cls') == 'chat' then chats = chats + 1 end
  if chats > tonumber(chat_cap) then return fail('over_capacity', vid) end
end
local on_duty = v ~= nil and v.presence == 'available'
local emptied = {}
if on_duty then
  -- Leave the old rings; only those still empty once back in the new ones widen (below).
  v.presence = 'paused'
  refresh_free(v)
  emptied = set_on_duty(v, -1)
  v.presence = 'available'
end
if not v then
  v = {id = vid, load_voice = '0', load_chat = '0', reserved = '', misses = '0', blocked_until = '0',
    idle_since = NOW_S, presence = 'logged_out', reason = '', presence_since = NOW_S}
end
v.dept, v.region, v.groups, v.skills, v.langs, v.chat_cap, v.name =
  dept, region, groups, skills, langs, chat_cap, ARGV[2]
local flat = {}
for k, val in pairs(v) do if k ~= 'id' then flat[#flat + 1] = k; flat[#flat + 1] = val end end
redis.call('HSET', K.vol(vid), unpack(flat))
redis.call('SADD', K.vols(), vid)
restaff(before, v) -- a new chat capacity changes the lanes
if on_duty then
  set_on_duty(v, 1)
  refresh_free(v)
  skip_empty_rings(emptied)
  -- Reload: a task widened just now may already ring for this very volunteer.
  dispatch_volunteer(load_vol(vid))
end
return v.presence
