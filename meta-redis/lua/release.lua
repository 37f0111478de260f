-- release: forget that a session holds an inode open, drop the session's locks on it, and
-- delete a sustained inode (nlink 0) no session holds any more (logic::session::release).
-- KEYS: 1 token, 2 attr, 3 the inode's openers, 4 the session's opens, 5 flocks of the
--       inode, 6 plocks of the inode, 7 the session's locks, 8 symlink, 9 xattrs,
--       10 live-inode index, 11 pending files, 12 usedSpace, 13 totalInodes
-- ARGV: 3 ino8, 4 sid8
-- Reply: {'ok'}
return run_op(function()
  local ino8, sid8 = ARGV[3], ARGV[4]
  if redis.call('SISMEMBER', KEYS[3], sid8) == 0 then
    fail('NotFound', 'session ' .. dec(sid8) .. ' does not hold inode ' .. dec(ino8) .. ' open')
  end
  redis.call('SISMEMBER', KEYS[4], ino8)
  redis.call('SISMEMBER', KEYS[7], ino8)
  local a = get_attr(KEYS[2], ino8)
  local delete = a and a.nlink == 0 and redis.call('SCARD', KEYS[3]) == 1
  local k = { attr = KEYS[2], symlink = KEYS[8], xattr = KEYS[9], inodes = KEYS[10],
    pf = KEYS[11], used = KEYS[12], total = KEYS[13] }
  if delete then can_delete_inode(k.used, k.total) end
  local ff, pf = session_fields(KEYS[5], sid8), session_fields(KEYS[6], sid8)
  -- Writes.
  redis.call('SREM', KEYS[3], sid8)
  redis.call('SREM', KEYS[4], ino8)
  for _, f in ipairs(ff) do redis.call('HDEL', KEYS[5], f) end
  for _, f in ipairs(pf) do redis.call('HDEL', KEYS[6], f) end
  redis.call('SREM', KEYS[7], 'F' .. ino8, 'P' .. ino8)
  if delete then delete_inode(k, ino8, a) end
  return { 'ok' }
end)
