-- link: add a hard link parent/name to an existing non-directory inode
-- (logic::namespace::link). The caller (caller_uid, caller_gid, `groups`: supplementary
-- groups, 4 bytes each) needs search and write permission on the parent.
-- KEYS: attr parent_attr parent_entries
-- FIXED: >c8c8c12c4c4 ino parent time caller_uid caller_gid
-- ARGS: name groups
-- Reply: {'ok', attr, parent attr}
OPS.link = function(K, A)
  local ino8, parent8, time, cuid, cgid = struct.unpack('>c8c8c12c4c4', A[1])
  local name = A[2]
  local c = perm_caller(cuid, cgid, A[3])
  local a = existing_attr(K[1], ino8)
  if a.typ == T_DIR then fail('NotPermitted', 'hard link to directory ' .. dec(ino8)) end
  if a.nlink == 0 then
    fail('NotFound', 'inode ' .. dec(ino8) .. ' has no links left (unlinked while open)')
  end
  local pa = live_dir_attr(K[2], parent8)
  perm_check_search(pa, parent8, c, 'link')
  if get_entry(K[3], name) then
    fail('AlreadyExists', dec(parent8) .. '/' .. show(name))
  end
  perm_check_dir_write(pa, parent8, c, 'link')
  if a.nlink == U32MAX then fail('NotPermitted', 'inode ' .. dec(ino8) .. ' has too many links') end
  -- Its directory keeps it (same directory) or loses it (named in two), and the quotas
  -- above (named in two: EXDEV when it enters or leaves one).
  stat_check_attr(ino8, a)
  local after = { typ = a.typ, nlink = a.nlink + 1, length = a.length, parent = a.parent }
  if a.parent ~= parent8 then
    after.parent = ZERO8
    check_uncharged_entry(ino8, after, parent8)
  end
  restat_check(ino8, a, after, true)
  -- Writes.
  local before = stat_snap(a)
  a.nlink = after.nlink
  a.ctime = time
  a.parent = after.parent
  local av = put_attr(K[1], a)
  restat(ino8, before, a)
  redis.call('ZADD', K[3], '0', entry_member(name, a.typ, ino8))
  local pv = put_attr(K[2], bump_dir(pa, 0, time))
  return { 'ok', av, pv }
end
