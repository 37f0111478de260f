-- rmdir: remove an empty directory (logic::namespace::rmdir). An open directory is kept
-- (nlink 0) until its last release. The keys of the directory the entry names are derived
-- from the entry, or (strict_keys) declared by the client, which read the entry beforehand
-- (`expected`); a changed entry asks for a retry.
-- KEYS: parent_attr parent_entries [attr entries symlink xattrs openers]
-- FIXED: >c8c4c12c8 parent caller time expected
-- ARGS: name
-- Reply: {'ok', target ino8, sustained attr or nil, parent attr}
OPS.rmdir = function(K, A)
  local parent8, caller, time, expected = struct.unpack('>c8c4c12c8', A[1])
  local name = A[2]
  local pa = dir_attr(K[1], parent8)
  local e = get_entry(K[2], name)
  if not e then fail('NotFound', dec(parent8) .. '/' .. show(name)) end
  if e.typ ~= T_DIR then fail('NotADirectory', dec(parent8) .. '/' .. show(name)) end
  local kattr, kents, ksym, kx, kop
  if K[3] then
    if e.ino ~= expected then retry('entry ' .. show(name) .. ' changed') end
    kattr, kents, ksym, kx, kop = K[3], K[4], K[5], K[6], K[7]
  else
    kattr, ksym, kx, kop, kents = inode_keys(e.ino)
  end
  local a = existing_attr(kattr, e.ino)
  check_sticky(pa, a, caller, 'rmdir')
  if has_entries(kents) then fail('NotEmpty', dec(parent8) .. '/' .. show(name)) end
  local sustain = is_open(kop)
  if not sustain then check_counters() end
  -- Writes.
  redis.call('ZREM', K[2], e.member)
  local left = false
  if sustain then
    left = sustain_inode(kattr, a, time)
  else
    delete_inode(kattr, ksym, kx, e.ino, a)
  end
  redis.call('DEL', kents)
  local pv = put_attr(K[1], bump_dir(pa, -1, time))
  return { 'ok', e.ino, left, pv }
end
