-- rename: move parent/name to new_parent/new_name with NOREPLACE / EXCHANGE (logic::rename).
-- Read beforehand by the client: the inodes both names point to (ARGV[10], ARGV[11]; their
-- keys KEYS[6..10]) and, when a directory moves to another directory, the chain of ancestors
-- of the destination (and, for EXCHANGE, of the source) directory: ARGV[13..] inode numbers
-- with their attribute keys KEYS[15..]. A name that now points elsewhere, or an ancestor
-- outside the chain, asks for a retry.
-- KEYS: 1 token, 2 source dir attr, 3 source dir entries, 4 dest dir attr, 5 dest dir
--       entries, 6 source attr, 7 dest attr, 8 dest entries, 9 dest symlink, 10 dest xattrs,
--       11 live-inode index, 12 pending files, 13 usedSpace, 14 totalInodes, 15 dest
--       openers (a replaced inode some session holds open is kept), 16.. chain attrs
-- ARGV: 3 parent ino8, 4 name, 5 new parent ino8, 6 new name, 7 flags, 8 caller uid4,
--       9 time12, 10 expected source ino8, 11 expected dest ino8 (zero: none), 12 chain
--       length m, 13..12+m chain inode numbers (ino8)
-- Reply: {'ok', ino8, attr, parent attr, new parent attr, replaced ino8 or nil,
--         replaced attr or nil}
return run_op(function()
  local parent8, name, np8, new_name = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local flags, caller, time = tonumber(ARGV[7]), ARGV[8], ARGV[9]
  local noreplace, exchange = flags == 1, flags == 2
  local same_dir = parent8 == np8
  local chain = {}
  for i = 1, tonumber(ARGV[12]) do chain[ARGV[12 + i]] = KEYS[15 + i] end

  -- logic::check_not_below over the chain read beforehand.
  local function check_not_below(dir, moving)
    local cur = dir
    for _ = 1, MAX_DEPTH do
      if cur == moving then
        fail('InvalidArgument', 'directory ' .. dec(moving) .. ' cannot move into its own subtree')
      end
      if cur == ROOT8 or cur == ZERO8 then return end
      local key = chain[cur]
      if not key then retry('the ancestors of directory ' .. dec(dir) .. ' changed') end
      cur = existing_attr(key, cur).parent
    end
    fail('Corrupted', 'directory ' .. dec(dir) .. ' is nested too deep (a parent loop?)')
  end

  local spa = dir_attr(KEYS[2], parent8)
  local dpa = spa
  if not same_dir then dpa = live_dir_attr(KEYS[4], np8) end
  local src = dec(parent8) .. '/' .. show(name)
  local dst = dec(np8) .. '/' .. show(new_name)
  local se = get_entry(KEYS[3], name)
  if not se then fail('NotFound', src) end
  if se.ino ~= ARGV[10] then retry('entry ' .. src .. ' changed') end
  local sa = existing_attr(KEYS[6], se.ino)
  check_sticky(spa, sa, caller, 'rename')
  local de = get_entry(KEYS[5], new_name)
  if noreplace and de then fail('AlreadyExists', dst) end
  local unchanged = { 'ok', se.ino, enc_attr(sa), enc_attr(spa), enc_attr(dpa), false, false }
  if same_dir and name == new_name then return unchanged end
  if exchange and not de then fail('NotFound', dst) end
  -- rename(2): two names of one inode -> nothing happens.
  if de and de.ino == se.ino then return unchanged end
  if de and de.ino ~= ARGV[11] then retry('entry ' .. dst .. ' changed') end
  local s_is_dir = se.typ == T_DIR
  if s_is_dir and not same_dir then check_not_below(np8, se.ino) end
  local dsrc, ddst = 0, 0
  local rep_ino, rep_attr = false, false
  local k = { attr = KEYS[7], symlink = KEYS[9], xattr = KEYS[10], inodes = KEYS[11],
    pf = KEYS[12], used = KEYS[13], total = KEYS[14] }

  local function update_both()
    if same_dir then
      local v = enc_attr(bump_dir(spa, dsrc + ddst, time))
      redis.call('SET', KEYS[2], v)
      return v, v
    end
    local a = enc_attr(bump_dir(spa, dsrc, time))
    local b = enc_attr(bump_dir(dpa, ddst, time))
    redis.call('SET', KEYS[2], a)
    redis.call('SET', KEYS[4], b)
    return a, b
  end

  local da, d_is_dir, drop, sustain
  if de then
    da = existing_attr(KEYS[7], de.ino)
    check_sticky(dpa, da, caller, 'rename')
    d_is_dir = de.typ == T_DIR
    if exchange then
      if d_is_dir and not same_dir then check_not_below(parent8, de.ino) end
      -- Writes.
      redis.call('ZREM', KEYS[3], se.member)
      redis.call('ZREM', KEYS[5], de.member)
      redis.call('ZADD', KEYS[3], 0, entry_member(name, de.typ, de.ino))
      redis.call('ZADD', KEYS[5], 0, entry_member(new_name, se.typ, se.ino))
      if not same_dir then
        sa.parent = moved_parent(sa, parent8, np8)
        da.parent = moved_parent(da, np8, parent8)
        local moved = (s_is_dir and 1 or 0) - (d_is_dir and 1 or 0)
        dsrc = dsrc - moved
        ddst = ddst + moved
      end
      sa.ctime = time
      da.ctime = time
      local sv, dv = enc_attr(sa), enc_attr(da)
      redis.call('SET', KEYS[6], sv)
      redis.call('SET', KEYS[7], dv)
      local p, np = update_both()
      return { 'ok', se.ino, sv, p, np, de.ino, dv }
    end
    if s_is_dir and not d_is_dir then fail('NotADirectory', dst .. ' is not a directory') end
    if not s_is_dir and d_is_dir then fail('IsADirectory', dst .. ' is a directory') end
    if d_is_dir then
      if has_entries(KEYS[8]) then fail('NotEmpty', dst) end
      drop = true
    else
      drop = da.nlink <= 1
    end
    if drop then
      sustain = is_open(KEYS[15])
      if not sustain then can_delete_inode(k.used, k.total) end
    end
  end
  -- Writes.
  if de then
    redis.call('ZREM', KEYS[5], de.member)
    rep_ino = de.ino
    if drop then
      if sustain then
        rep_attr = sustain_inode(KEYS[7], da, time)
      else
        delete_inode(k, de.ino, da)
      end
      if d_is_dir then
        redis.call('DEL', KEYS[8])
        ddst = ddst - 1
      end
    else
      da.nlink = da.nlink - 1
      da.ctime = time
      rep_attr = enc_attr(da)
      redis.call('SET', KEYS[7], rep_attr)
    end
  end
  redis.call('ZREM', KEYS[3], se.member)
  redis.call('ZADD', KEYS[5], 0, entry_member(new_name, se.typ, se.ino))
  if not same_dir then
    sa.parent = moved_parent(sa, parent8, np8)
    if s_is_dir then
      dsrc = dsrc - 1
      ddst = ddst + 1
    end
  end
  sa.ctime = time
  local sv = enc_attr(sa)
  redis.call('SET', KEYS[6], sv)
  local p, np = update_both()
  return { 'ok', se.ino, sv, p, np, rep_ino, rep_attr }
end)
