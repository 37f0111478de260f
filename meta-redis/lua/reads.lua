-- reads.lua: the read-only entry points (lookup, readdir_plus) and format. The
-- read functions build the attribute keys of the inodes they find from the values they read
-- (`prefix .. decimal inode`): keys they do not declare, in the volume's hash tag, so in the
-- same Cluster slot as the declared ones. Servers that forbid that make the client fall back
-- to plain commands (RedisOptions::strict_keys).

-- lookup: a directory's attributes, the entry `name` and the attributes of the inode it
-- names, in one round trip and one atomic view.
-- keys: 1 dir attr, 2 dir entries
-- argv: 1 name, 2 attr key prefix ('{prefix}i'), 3 mode: 'name', 'dot' or 'dotdot'
-- Reply: {dir attr or nil, entry member or nil, child attr or nil}
local function lookup(keys, argv)
  local pa = redis.call('GET', keys[1])
  if not pa then return { false, false, false } end
  local mode = argv[3]
  if mode == 'dot' then return { pa, false, pa } end
  if mode == 'dotdot' then
    local p = attr_parent(pa)
    if not p then return { pa, false, false } end
    if p == ZERO8 then p = ROOT8 end
    return { pa, false, redis.call('GET', argv[2] .. dec(p)) }
  end
  local name = argv[1]
  local r = redis.call('ZRANGEBYLEX', keys[2], '[' .. name .. '\0', '(' .. name .. '\1', 'LIMIT', '0', '1')
  local m = r[1]
  if not m then return { pa, false, false } end
  if #m ~= #name + 11 then return { pa, m, false } end
  return { pa, m, redis.call('GET', argv[2] .. dec(string.sub(m, #name + 4))) }
end

-- readdir_plus: a directory's attributes and up to argv[2] entries after the cursor, each
-- with the attributes of the inode it names, in one atomic view.
-- keys: 1 dir attr, 2 dir entries
-- argv: 1 ZRANGEBYLEX min bound, 2 limit, 3 attr key prefix ('{prefix}i')
-- Reply: {dir attr or nil, member 1, attr 1 or nil, member 2, attr 2 or nil, ...}
local function readdir_plus(keys, argv)
  local pa = redis.call('GET', keys[1])
  if not pa then return { false } end
  local out = { pa }
  local members = redis.call('ZRANGEBYLEX', keys[2], argv[1], '+', 'LIMIT', '0', argv[2])
  for _, m in ipairs(members) do
    local z = string.find(m, '\0', 1, true)
    local a = false
    if z and #m - z == 10 then a = redis.call('GET', argv[3] .. dec(string.sub(m, z + 3))) end
    out[#out + 1] = m
    out[#out + 1] = a
  end
  return out
end

-- format: write the format record, the limits, the root directory and the counters (and,
-- for a volume that keeps directory statistics, the statistics hash's `layout` field),
-- unless the volume already holds a format record (then nothing is written and the stored
-- record is returned, for the client to compare names).
-- keys: 1 setting, 2 limits, 3 root attr, 4 nextInode, 5 nextChunk, 6 usedSpace,
--       7 totalInodes, 8 nextSession, 9 cleanupLease, 10 directory statistics
-- argv: 1 format record, 2 limits ("capacity inodes dir_stats", dir_stats 0 or 1), 3 root
--       attr (compact form, kv::encode_attr_compact)
-- Reply: {'ok'} or {'exists', stored record}
local function format(keys, argv)
  -- The `layout` field of a volume's directory statistics hash: what the other fields hold
  -- (a local here, not of the library's main chunk, which Lua 5.1 limits to 200 locals). It
  -- is longer than hash-max-listpack-value (64 bytes by default), so the hash is a hashtable
  -- from the start: a listpack (up to hash-max-listpack-entries fields) would scan its
  -- fields at every HGET / HSET of a record.
  local STATS_LAYOUT = 'meta directory statistics: field = 8-byte big-endian directory inode, '
    .. 'value = 32 bytes, three big-endian i64: the inodes charged to it, their lengths, their '
    .. 'space, then its parent directory (8-byte inode; a 24-byte value, written before '
    .. 'directory quotas, has none; a missing field is all zeros). This field is longer than '
    .. 'hash-max-listpack-value so that the hash is a hashtable: constant-time field access at '
    .. 'any size.'
  local cur = redis.call('GET', keys[1])
  if cur then return { 'exists', cur } end
  if string.sub(argv[2], -2) == ' 1' then
    redis.call('HSET', keys[10], 'layout', STATS_LAYOUT)
  end
  redis.call('MSET', keys[1], argv[1], keys[2], argv[2], keys[3], argv[3], keys[4], '2',
    keys[5], '1', keys[6], '4096', keys[7], '1', keys[8], '1', keys[9], '0')
  return { 'ok' }
end
