-- restore: write one inode's records verbatim, for `load` (logic::restore). Names and xattrs
-- were validated by the client; their errors (if any) arrive in ARGV and are raised at the
-- point logic::restore would raise them.
-- KEYS: 1 token, 2 attr, 3 live-inode index, 4 symlink, 5 xattrs, 6 chunk index,
--       7 usedSpace, 8 totalInodes, then per link: parent attr, parent entries; then per
--       chunk: chunk key
-- ARGV: 3 ino8, 4 attr (73 bytes), 5 space of the new attr, 6 symlink target, 7 links n,
--       8 xattrs x, 9 chunks c, 10 xattr error kind ('' = none), 11 its message, then per
--       link: parent ino8, name, name error kind, name error message; then per xattr:
--       name, value; then per chunk: index, slices (24 bytes each, '' = none)
-- Reply: {'ok', attr}
return run_op(function()
  local ino8, av = ARGV[3], ARGV[4]
  local typ = string.byte(av, 2)
  local nl, nx, nc = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  local old = get_attr(KEYS[2], ino8)
  local added = {}
  local links = {}
  for i = 1, nl do
    local a = 11 + (i - 1) * 4
    local parent8, name = ARGV[a + 1], ARGV[a + 2]
    if ARGV[a + 3] ~= '' then fail(ARGV[a + 3], ARGV[a + 4]) end
    local pk, dk = KEYS[8 + (i - 1) * 2 + 1], KEYS[8 + (i - 1) * 2 + 2]
    dir_attr(pk, parent8)
    if added[dk .. '\0' .. name] or get_entry(dk, name) then
      fail('AlreadyExists', dec(parent8) .. '/' .. show(name))
    end
    added[dk .. '\0' .. name] = true
    links[#links + 1] = { dk, name }
  end
  if ARGV[10] ~= '' then fail(ARGV[10], ARGV[11]) end
  counter(KEYS[7], 'usedSpace')
  if not old then counter(KEYS[8], 'totalInodes') end
  -- Writes.
  for _, l in ipairs(links) do
    redis.call('ZADD', l[1], 0, entry_member(l[2], typ, ino8))
  end
  redis.call('SET', KEYS[2], av)
  redis.call('ZADD', KEYS[3], 0, ino8)
  if typ == T_LNK then redis.call('SET', KEYS[4], VER .. ARGV[6]) end
  local base = 11 + nl * 4
  for i = 1, nx do
    redis.call('HSET', KEYS[5], ARGV[base + (i - 1) * 2 + 1], VER .. ARGV[base + (i - 1) * 2 + 2])
  end
  base = base + nx * 2
  local kbase = 8 + nl * 2
  for i = 1, nc do
    local idx, slices = ARGV[base + (i - 1) * 2 + 1], ARGV[base + (i - 1) * 2 + 2]
    local key = KEYS[kbase + i]
    if slices == '' then
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[6], idx)
    else
      redis.call('SET', key, VER .. slices)
      redis.call('ZADD', KEYS[6], tonumber(idx), idx)
    end
  end
  local old_space = 0
  if old then old_space = space(old) end
  redis.call('INCRBY', KEYS[7], num(tonumber(ARGV[5]) - old_space))
  if not old then redis.call('INCRBY', KEYS[8], 1) end
  return { 'ok', av }
end)
