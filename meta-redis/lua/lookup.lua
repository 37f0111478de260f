-- lookup (read-only): a directory's attributes, the entry `name` and the attributes of the
-- inode it names, in one round trip and one atomic view. The child's attribute key cannot be
-- known beforehand, so this read-only script builds it from the entry (ARGV[2] .. inode):
-- the one kind of key a script touches without declaring it. It carries the volume's hash
-- tag, so it lives in the same Cluster slot as the declared keys.
-- KEYS: 1 dir attr, 2 dir entries
-- ARGV: 1 name, 2 attr key prefix ('{prefix}i'), 3 mode: 'name', 'dot' or 'dotdot'
-- Reply: {dir attr or nil, entry member or nil, child attr or nil}
local pa = redis.call('GET', KEYS[1])
if not pa then return { false, false, false } end
local mode = ARGV[3]
if mode == 'dot' then return { pa, false, pa } end
if mode == 'dotdot' then
  if #pa ~= 73 then return { pa, false, false } end
  local p = string.sub(pa, 65, 72)
  if p == ZERO8 then p = ROOT8 end
  return { pa, false, redis.call('GET', ARGV[2] .. dec(p)) }
end
local name = ARGV[1]
local r = redis.call('ZRANGEBYLEX', KEYS[2], '[' .. name .. '\0', '(' .. name .. '\1', 'LIMIT', 0, 1)
local m = r[1]
if not m then return { pa, false, false } end
local e = string.sub(m, #name + 2)
if #e ~= 10 then return { pa, m, false } end
return { pa, m, redis.call('GET', ARGV[2] .. dec(string.sub(e, 3))) }
