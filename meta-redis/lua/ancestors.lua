-- ancestors (read-only): the chain of directories from a start directory up to (excluding)
-- the root, following the attributes' parent fields. Read before a rename that moves a
-- directory into another directory; rename.lua re-checks the chain (and asks for a retry
-- when it changed). As in lookup.lua, the keys after the first are built from the values
-- (same hash tag, same slot).
-- KEYS: 1 start dir attr
-- ARGV: 1 attr key prefix ('{prefix}i'), 2 start ino8
-- Reply: {ino8, ...} (start first; stops at the root, inode 0, a missing or undecodable
--        attribute, or a loop)
local out, seen = {}, {}
local cur, key = ARGV[2], KEYS[1]
for _ = 1, MAX_DEPTH do
  if cur == ROOT8 or cur == ZERO8 or seen[cur] then break end
  seen[cur] = true
  out[#out + 1] = cur
  local v = redis.call('GET', key or (ARGV[1] .. dec(cur)))
  if not v or #v ~= 73 then break end
  cur = string.sub(v, 65, 72)
  key = nil
end
return out
