-- unlink: remove a non-directory entry (logic::namespace::unlink). An inode some session
-- holds open is kept (logic::namespace::remove_inode). The keys of the inode the entry names
-- are derived from the entry, or (strict_keys) declared by the client, which read the entry
-- beforehand (`expected`); if the entry now names another inode the op asks for a retry.
-- The caller (caller_uid, caller_gid, `groups`: supplementary groups, 4 bytes each) needs
-- search permission on the parent, then write permission (EACCES), then passes the sticky-bit
-- rule (EPERM), all before the entry's type is checked (may_delete).
-- KEYS: parent_attr parent_entries [attr symlink xattrs openers kept_openers]
-- FIXED: >c8c12c8c4c4 parent time expected caller_uid caller_gid
-- ARGS: name groups
-- Reply: {'ok', target ino8, target attr or nil when gone, parent attr}
OPS.unlink = function(K, A)
  local parent8, time, expected, cuid, cgid = struct.unpack('>c8c12c8c4c4', A[1])
  local name = A[2]
  local c = perm_caller(cuid, cgid, A[3])
  local pa = dir_attr(K[1], parent8)
  perm_check_search(pa, parent8, c, 'unlink')
  local e = get_entry(K[2], name)
  if not e then fail('NotFound', dec(parent8) .. '/' .. show(name)) end
  local kattr, ksym, kx, kop, kkept, _
  if K[3] then
    if e.ino ~= expected then retry('entry ' .. show(name) .. ' changed') end
    kattr, ksym, kx, kop, kkept = K[3], K[4], K[5], K[6], K[7]
  else
    kattr, ksym, kx, kop, _, kkept = inode_keys(e.ino)
  end
  local a = get_attr(kattr, e.ino)
  perm_check_delete(pa, parent8, a, c, 'unlink')
  if e.typ == T_DIR then fail('IsADirectory', dec(parent8) .. '/' .. show(name)) end
  local sustain, restated = false, false
  if a and a.nlink <= 1 then
    sustain = is_open(a, kop, kkept)
    if not sustain then check_deletion(a.typ == T_DIR) end
    stat_check_attr(e.ino, a)
    restated = restat_check(e.ino, a, nil, true)
  end
  -- Writes.
  redis.call('ZREM', K[2], e.member)
  local left = false
  if a then
    if a.nlink > 1 then
      a.nlink = a.nlink - 1
      a.ctime = time
      left = put_attr(kattr, a)
    else
      left = remove_inode(kattr, ksym, kx, e.ino, a, sustain, time, restated)
    end
  end
  local pv = put_attr(K[1], bump_dir(pa, 0, time))
  return { 'ok', e.ino, left, pv }
end
