-- rmdir: remove an empty directory (logic::namespace::rmdir). An open directory is kept
-- (nlink 0) until its last release. The keys of the directory the entry names are derived
-- from the entry, or (strict_keys) declared by the client, which read the entry beforehand
-- (`expected`); a changed entry asks for a retry. The caller (caller_uid, caller_gid,
-- `groups`: supplementary groups, 4 bytes each) is checked as for unlink.
-- KEYS: parent_attr parent_entries [attr entries symlink xattrs openers kept_openers]
-- FIXED: >c8c12c8c4c4 parent time expected caller_uid caller_gid
-- ARGS: name groups
-- Reply: {'ok', target ino8, sustained attr or nil, parent attr}
OPS.rmdir = function(K, A)
  local parent8, time, expected, cuid, cgid = struct.unpack('>c8c12c8c4c4', A[1])
  local name = A[2]
  local c = perm_caller(cuid, cgid, A[3])
  local pa = dir_attr(K[1], parent8)
  perm_check_search(pa, parent8, c, 'rmdir')
  local e = get_entry(K[2], name)
  if not e then fail('NotFound', dec(parent8) .. '/' .. show(name)) end
  local kattr, kents, ksym, kx, kop, kkept
  if K[3] then
    if e.ino ~= expected then retry('entry ' .. show(name) .. ' changed') end
    kattr, kents, ksym, kx, kop, kkept = K[3], K[4], K[5], K[6], K[7], K[8]
  else
    kattr, ksym, kx, kop, kents, kkept = inode_keys(e.ino)
  end
  -- may_delete: write permission, the sticky bit, then the type.
  local a
  if e.typ == T_DIR then
    a = existing_attr(kattr, e.ino)
  else
    a = get_attr(kattr, e.ino)
  end
  perm_check_delete(pa, parent8, a, c, 'rmdir')
  if e.typ ~= T_DIR then fail('NotADirectory', dec(parent8) .. '/' .. show(name)) end
  if has_entries(kents) then fail('NotEmpty', dec(parent8) .. '/' .. show(name)) end
  local sustain = is_open(a, kop, kkept)
  stat_check_attr(e.ino, a)
  restat_check(e.ino, a, nil)
  -- Its quota goes (logic::namespace::remove_inode), sustained or not.
  has_quotas()
  if not sustain then
    check_counters()
    -- Its statistics field goes (the hash's type is known by now: no command).
    stat_check(ZERO8)
  end
  -- Writes.
  redis.call('ZREM', K[2], e.member)
  local left = remove_inode(kattr, ksym, kx, e.ino, a, sustain, time)
  redis.call('DEL', kents)
  local pv = put_attr(K[1], bump_dir(pa, -1, time))
  return { 'ok', e.ino, left, pv }
end
