-- restore: write one inode's records verbatim, for `load` (logic::data::restore). Names and
-- xattrs were validated before sending (logic::precheck).
-- KEYS: attr symlink xattrs chunk_index (parent_attr parent_entries)... chunk...
-- FIXED: >c8c73I4I4I4 ino attr links xattrs chunks
-- ARGS: target link... xattr_name... xattr_value... chunk...
-- Per link i: K[4 + 2i - 1] parent attr, K[4 + 2i] parent entries, A[1 + i] parent ino8 ..
-- name. Per xattr j: name and value as two arguments. Per chunk: its key after the links',
-- its argument u32 index .. slices (24 bytes each; none = delete the chunk).
-- The attributes come in the 73-byte form and are stored in the compact one.
-- Reply: {'ok', attr}
OPS.restore = function(K, A)
  local ino8, av, nl, nx, nc = struct.unpack('>c8c73I4I4I4', A[1])
  local typ = string.byte(av, 2)
  local old = get_attr(K[1], ino8)
  local new = dec_attr(av, ino8)
  local added = {}
  local links = {}
  for i = 1, nl do
    local arg = A[2 + i]
    local parent8, name = string.sub(arg, 1, 8), string.sub(arg, 9)
    local pk, dk = K[3 + 2 * i], K[4 + 2 * i]
    dir_attr(pk, parent8)
    if added[dk .. '\0' .. name] or get_entry(dk, name) then
      fail('AlreadyExists', dec(parent8) .. '/' .. show(name))
    end
    added[dk .. '\0' .. name] = true
    links[#links + 1] = { dk, name }
  end
  check_counters()
  stat_check_attr(ino8, old)
  stat_check_attr(ino8, new)
  restat_check(ino8, old, new)
  -- A directory's statistics record names its parent.
  if typ == T_DIR then stat_check(ino8) end
  if nx > 0 then check_type(K[3], 'hash') end
  if nc > 0 then check_type(K[4], 'zset') end
  -- Writes.
  for _, l in ipairs(links) do
    redis.call('ZADD', l[1], '0', entry_member(l[2], typ, ino8))
  end
  put_attr(K[1], new)
  if typ == T_LNK then redis.call('SET', K[2], VER .. A[2]) end
  local base = 2 + nl
  for j = 1, nx do
    redis.call('HSET', K[3], A[base + 2 * j - 1], VER .. A[base + 2 * j])
  end
  base = base + 2 * nx
  local kbase = 4 + 2 * nl
  for c = 1, nc do
    put_chunk(K[kbase + c], K[4], A[base + c])
  end
  local old_space = 0
  if old then old_space = space(old) end
  add_counter(S.used, space(new) - old_space)
  if not old then add_counter(S.total, 1) end
  restat(ino8, old, new)
  if typ == T_DIR then stat_parent(ino8, new.parent) end
  return { 'ok', av }
end
