-- readdir_plus (read-only): a directory's attributes and up to ARGV[2] entries after the
-- cursor, each with the attributes of the inode it names, in one atomic view. As in
-- lookup.lua, the children's attribute keys are built from the entries (same hash tag,
-- same slot).
-- KEYS: 1 dir attr, 2 dir entries
-- ARGV: 1 ZRANGEBYLEX min bound, 2 limit, 3 attr key prefix ('{prefix}i')
-- Reply: {dir attr or nil, member 1, attr 1 or nil, member 2, attr 2 or nil, ...}
local pa = redis.call('GET', KEYS[1])
if not pa then return { false } end
local out = { pa }
local members = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(members) do
  local z = string.find(m, '\0', 1, true)
  local a = false
  if z and #m - z == 10 then a = redis.call('GET', ARGV[3] .. dec(string.sub(m, z + 3))) end
  out[#out + 1] = m
  out[#out + 1] = a
end
return out
