-- rename: move parent/name to new_parent/new_name with NOREPLACE / EXCHANGE
-- (logic::namespace::rename). The keys of the inodes both names point to, and of the
-- ancestors of the destination directory (checked when a directory moves: it must not go
-- below itself), are derived from what is read; or (strict_keys) declared by the client,
-- which read them beforehand: the inodes both names pointed to (`expected`,
-- `expected_replaced`; keys attr..replaced_kept_openers) and, when a directory moves to another
-- directory, the chain of ancestors of the destination (and, for EXCHANGE, of the source)
-- directory (`chain`: 8-byte inode numbers, keys chain_attr...). A name that now points
-- elsewhere, or an ancestor outside the chain, asks for a retry. The caller (caller_uid,
-- caller_gid, `groups`: supplementary groups, 4 bytes each) is checked as
-- logic::namespace::rename checks it (search on both parents, then check_rename_permissions).
-- KEYS: parent_attr parent_entries new_parent_attr new_parent_entries [attr replaced_attr replaced_entries replaced_symlink replaced_xattrs replaced_openers replaced_kept_openers chain_attr...]
-- FIXED: >c8c8Bc12c8c8c4c4 parent new_parent flags time expected expected_replaced caller_uid caller_gid
-- ARGS: name new_name groups [chain]
-- Reply: {'ok', ino8, attr, parent attr, new parent attr, replaced ino8 or nil,
--         replaced attr or nil}
-- logic::namespace::check_not_below: EINVAL when `dir` is `moving` or lies below it. With
-- declared keys the walk uses `chain` (inode -> attribute key) and asks for a retry when it
-- leaves it; else the keys are derived.
local function check_not_below(dir, moving, chain)
  local cur = dir
  for _ = 1, MAX_DEPTH do
    if cur == moving then
      fail('InvalidArgument', 'directory ' .. dec(moving) .. ' cannot move into its own subtree')
    end
    if cur == ROOT8 or cur == ZERO8 then return end
    local key
    if chain then
      key = chain[cur]
      if not key then retry('the ancestors of directory ' .. dec(dir) .. ' changed') end
    else
      key = ikey('i', cur)
    end
    cur = existing_attr(key, cur).parent
  end
  fail('Corrupted', 'directory ' .. dec(dir) .. ' is nested too deep (a parent loop?)')
end

-- logic::namespace::check_rename_permissions (vfs_rename's order): the source entry may be
-- deleted from its directory, the destination entry deleted (replaced, exchanged) or
-- created, and a directory that changes parent must be writable (its `..` changes).
-- `sa` / `da`: the attributes of the inodes the source and destination names point to (the
-- destination's nil when there is none), `s8` / `d8` their numbers.
local function check_rename_permissions(c, parent8, spa, s8, sa, np8, dpa, d8, da, exchange)
  perm_check_delete(spa, parent8, sa, c, 'rename')
  if da then
    perm_check_delete(dpa, np8, da, c, 'rename')
  else
    perm_check_dir_write(dpa, np8, c, 'rename')
  end
  if parent8 ~= np8 then
    local what = 'rename (a directory moving to another parent)'
    if sa.typ == T_DIR then perm_check_access(sa, s8, c, 2, what) end
    if exchange and da and da.typ == T_DIR then perm_check_access(da, d8, c, 2, what) end
  end
end

-- Both parents after a rename: nlink changed by dsrc / ddst, times raised to `time` (one
-- directory when the rename stays in it). Returns their encodings.
local function update_parents(K, spa, dpa, same_dir, dsrc, ddst, time)
  if same_dir then
    local v = put_attr(K[1], bump_dir(spa, dsrc + ddst, time))
    return v, v
  end
  return put_attr(K[1], bump_dir(spa, dsrc, time)), put_attr(K[3], bump_dir(dpa, ddst, time))
end

OPS.rename = function(K, A)
  local parent8, np8, flags, time, expected, expected_rep, cuid, cgid =
    struct.unpack('>c8c8Bc12c8c8c4c4', A[1])
  local name, new_name = A[2], A[3]
  local c = perm_caller(cuid, cgid, A[4])
  local noreplace, exchange = flags == 1, flags == 2
  local same_dir = parent8 == np8
  local declared = K[5] ~= nil
  local chain = nil
  if declared then
    chain = {}
    for i, r in ipairs(records(A[5], 0)) do chain[r[1]] = K[11 + i] end
  end

  local spa = dir_attr(K[1], parent8)
  local dpa = spa
  if not same_dir then dpa = live_dir_attr(K[3], np8) end
  -- The names for messages (built only when an op fails: dec costs a string.format).
  local function src() return dec(parent8) .. '/' .. show(name) end
  local function dst() return dec(np8) .. '/' .. show(new_name) end
  perm_check_search(spa, parent8, c, 'rename')
  local se = get_entry(K[2], name)
  if not se then fail('NotFound', src()) end
  if declared and se.ino ~= expected then retry('entry ' .. src() .. ' changed') end
  local ksa = declared and K[5] or ikey('i', se.ino)
  local sa = existing_attr(ksa, se.ino)
  perm_check_search(dpa, np8, c, 'rename')
  local de = get_entry(K[4], new_name)
  if noreplace and de then fail('AlreadyExists', dst()) end
  -- rename(2): the same name, or two names of one inode -> nothing happens.
  if (same_dir and name == new_name) or (de and de.ino == se.ino) then
    return { 'ok', se.ino, enc_attr(sa), enc_attr(spa), enc_attr(dpa), false, false }
  end
  if exchange and not de then fail('NotFound', dst()) end
  if declared and de and de.ino ~= expected_rep then retry('entry ' .. dst() .. ' changed') end
  -- The replaced inode's keys: attributes, entries, symlink, xattrs, openers, kept openers.
  local kda, kdd, kds, kdx, kdo, kdk
  if declared then
    kda, kdd, kds, kdx, kdo, kdk = K[6], K[7], K[8], K[9], K[10], K[11]
  elseif de then
    kda, kds, kdx, kdo, kdd, kdk = inode_keys(de.ino)
  end
  local s_is_dir = se.typ == T_DIR
  if s_is_dir and not same_dir then check_not_below(np8, se.ino, chain) end
  local d_is_dir = de and de.typ == T_DIR
  if exchange and d_is_dir and not same_dir then check_not_below(parent8, de.ino, chain) end
  local da = de and existing_attr(kda, de.ino)
  check_rename_permissions(c, parent8, spa, se.ino, sa, np8, dpa, de and de.ino, da, exchange)
  local dsrc, ddst = 0, 0
  local rep_ino, rep_attr = false, false

  local drop, sustain
  if de then
    if exchange then
      if not same_dir then
        -- Each inode may leave its directory for the other one, and the quotas above (in
        -- logic::namespace::rename's order: both restats, then both uncharged entries); a
        -- directory's record gets its new parent.
        stat_check_attr(se.ino, sa)
        stat_check_attr(de.ino, da)
        stat_check(np8)
        stat_check(parent8)
        if s_is_dir then stat_check(se.ino) end
        if d_is_dir then stat_check(de.ino) end
        local sa2 = charged_as(sa, nil, moved_parent(sa, parent8, np8))
        local da2 = charged_as(da, nil, moved_parent(da, np8, parent8))
        restat_check(se.ino, sa, sa2)
        restat_check(de.ino, da, da2)
        check_uncharged_entry(se.ino, sa2, np8)
        check_uncharged_entry(de.ino, da2, parent8)
      end
      -- Writes.
      redis.call('ZREM', K[2], se.member)
      redis.call('ZREM', K[4], de.member)
      redis.call('ZADD', K[2], '0', entry_member(name, de.typ, de.ino))
      redis.call('ZADD', K[4], '0', entry_member(new_name, se.typ, se.ino))
      if not same_dir then
        local sbefore, dbefore = stat_snap(sa), stat_snap(da)
        sa.parent = moved_parent(sa, parent8, np8)
        da.parent = moved_parent(da, np8, parent8)
        restat(se.ino, sbefore, sa)
        restat(de.ino, dbefore, da)
        if s_is_dir then stat_parent(se.ino, np8) end
        if d_is_dir then stat_parent(de.ino, parent8) end
        local moved = (s_is_dir and 1 or 0) - (d_is_dir and 1 or 0)
        dsrc = dsrc - moved
        ddst = ddst + moved
      end
      sa.ctime = time
      da.ctime = time
      local sv, dv = put_attr(ksa, sa), put_attr(kda, da)
      local p, np = update_parents(K, spa, dpa, same_dir, dsrc, ddst, time)
      return { 'ok', se.ino, sv, p, np, de.ino, dv }
    end
    if s_is_dir and not d_is_dir then fail('NotADirectory', dst() .. ' is not a directory') end
    if not s_is_dir and d_is_dir then fail('IsADirectory', dst() .. ' is a directory') end
    if d_is_dir then
      if has_entries(kdd) then fail('NotEmpty', dst()) end
      drop = true
    else
      drop = da.nlink <= 1
    end
    if drop then
      sustain = is_open(da, kdo, kdk)
      stat_check_attr(de.ino, da)
      if not sustain then check_deletion(d_is_dir) end
      -- logic::namespace::remove_inode: uncharged, and a directory's quota goes (before the
      -- source's move is charged, as there).
      restat_check(de.ino, da, nil)
      if d_is_dir and has_quotas() then quota_drop(de.ino) end
    end
  end
  if not same_dir then
    -- The source may leave its directory for the destination, and the quotas above; a
    -- directory's record gets its new parent.
    stat_check_attr(se.ino, sa)
    stat_check(np8)
    if s_is_dir then stat_check(se.ino) end
    local after = charged_as(sa, nil, moved_parent(sa, parent8, np8))
    restat_check(se.ino, sa, after)
    check_uncharged_entry(se.ino, after, np8)
  end
  -- Writes.
  if de then
    redis.call('ZREM', K[4], de.member)
    rep_ino = de.ino
    if drop then
      rep_attr = remove_inode(kda, kds, kdx, de.ino, da, sustain, time)
      if d_is_dir then
        redis.call('DEL', kdd)
        ddst = ddst - 1
      end
    else
      da.nlink = da.nlink - 1
      da.ctime = time
      rep_attr = put_attr(kda, da)
    end
  end
  redis.call('ZREM', K[2], se.member)
  redis.call('ZADD', K[4], '0', entry_member(new_name, se.typ, se.ino))
  if not same_dir then
    local before = stat_snap(sa)
    sa.parent = moved_parent(sa, parent8, np8)
    restat(se.ino, before, sa)
    if s_is_dir then
      stat_parent(se.ino, np8)
      dsrc = dsrc - 1
      ddst = ddst + 1
    end
  end
  sa.ctime = time
  local sv = put_attr(ksa, sa)
  local p, np = update_parents(K, spa, dpa, same_dir, dsrc, ddst, time)
  return { 'ok', se.ino, sv, p, np, rep_ino, rep_attr }
end
