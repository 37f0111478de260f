-- mknod: create an inode of any type under a directory (logic::namespace::mknod), optionally
-- opened by a session and, for `meta import`, with its recorded times, length and first
-- slice.
-- KEYS: parent_attr parent_entries attr [symlink] [openers session_opens] [chunk]
-- FIXED: >c8c8BHc4c4c4c12c8c4c4 parent ino type mode uid gid rdev time opener caller_uid caller_gid
-- ARGS: name target groups [imported]
-- imported: atime12 mtime12 ctime12 length8 [slice24]; symlink present for a symbolic link
-- only, openers/session_opens when opener is not zero, chunk (chunk 0, which is not indexed)
-- when the imported record has a slice. uid/gid own the new inode; the caller (caller_uid,
-- caller_gid and `groups`, its supplementary groups packed 4 bytes each) needs search and
-- write permission on the parent.
-- Reply: {'ok', attr, parent attr}
OPS.mknod = function(K, A)
  local parent8, ino8, typ, mode, uid, gid, rdev, time, opener, cuid, cgid =
    struct.unpack('>c8c8BHc4c4c4c12c8c4c4', A[1])
  local name, imported = A[2], A[5]
  local c = perm_caller(cuid, cgid, A[4])
  local ksym, kop, kso, kchunk
  local ko = 4
  if typ == T_LNK then ksym, ko = K[4], 5 end
  if opener ~= ZERO8 then
    kop, kso, ko = K[ko], K[ko + 1], ko + 2
  end
  local atime, mtime, ctime, length, slice = time, time, time, ZERO8, nil
  if imported then
    atime, mtime, ctime, length = struct.unpack('>c12c12c12c8', imported)
    if #imported > 44 then
      slice = string.sub(imported, 45)
      kchunk = K[ko]
    end
  end
  local pa = live_dir_attr(K[1], parent8)
  -- Linux's order: search permission to look the name up, EEXIST, then write permission.
  perm_check_search(pa, parent8, c, 'create')
  if get_entry(K[2], name) then
    fail('AlreadyExists', dec(parent8) .. '/' .. show(name))
  end
  perm_check_dir_write(pa, parent8, c, 'create')
  if raw_attr(K[3]) then
    fail('AlreadyExists', 'inode ' .. dec(ino8) .. ' is already in use')
  end
  local is_dir = typ == T_DIR
  mode = bit.band(mode, 4095)
  -- A setgid directory passes its group on, and to subdirectories also the setgid bit (not
  -- to an imported file, whose recorded group and mode are kept).
  if bit.band(pa.mode, 1024) ~= 0 and not imported then
    gid = pa.gid
    if is_dir then mode = bit.bor(mode, 1024) end
  end
  if is_dir then
    length = '\0\0\0\0\0\0\16\0'
  elseif typ == T_LNK then
    length = struct.pack('>I4I4', 0, #A[3])
  end
  local a = {
    typ = typ, mode = mode, uid = uid, gid = gid, rdev = rdev,
    atime = atime, mtime = mtime, ctime = ctime,
    nlink = is_dir and 2 or 1, length = length, parent = parent8, flags = '\0',
    -- New: no xattr hash, and no openers set unless a session opens it here (lib.lua).
    hintbits = kop and 16 or 48, -- HINT.NO_XATTRS, + HINT.NEVER_OPENED
  }
  local sp = space(a)
  check_quota(sp, 1)
  if kop then
    live_session(opener)
    check_set(kso)
  end
  local append = slice and append_slice(kchunk, nil, 0, slice, ino8)
  check_counters()
  stat_check(parent8)
  local restated = restat_check(ino8, nil, a, not kop)
  -- Writes. The new inode's openers set comes first: a wrong-type key there fails before
  -- anything is written.
  if kop then
    redis.call('SADD', kop, opener)
    redis.call('SADD', kso, ino8)
  end
  local av = put_attr(K[3], a)
  if not restated then restat(ino8, nil, a) end
  -- A new directory's statistics record names its parent (new: nothing to read).
  if is_dir and DSON then
    if DSV[ino8] == nil then DSV[ino8] = false end
    stat_parent(ino8, parent8)
  end
  redis.call('ZADD', K[2], '0', entry_member(name, typ, ino8))
  if ksym then redis.call('SET', ksym, VER .. A[3]) end
  if append then append() end
  add_counter(S.used, sp)
  add_counter(S.total, 1)
  local pv = put_attr(K[1], bump_dir(pa, is_dir and 1 or 0, time))
  return { 'ok', av, pv }
end
