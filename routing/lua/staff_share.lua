-- Shared by the transitions (prelude) and the staffing script.
-- The volunteer's share of the line's staffing (Engine.staffing): logged in; working (available,
-- or paused with a conversation still in hand); the chat lanes of those working.
local function staff_share(v)
  if v == nil or v.presence == 'logged_out' then return {0, 0, 0} end
  if v.presence == 'available' or tonumber(v.load_voice) > 0 or tonumber(v.load_chat) > 0 then
    return {1, 1, tonumber(v.chat_cap)}
  end
  return {1, 0, 0}
end
