-- release: forget that a session holds these inodes open, drop the session's locks on those
-- marked, and delete each sustained inode (nlink 0) no session holds any more
-- (logic::session::release).
-- KEYS: 1 token, 2 the session's opens, 3 the session's locks, 4 live-inode index, 5 pending
--       files, 6 usedSpace, 7 totalInodes, then per inode (6 keys): attr, openers, flocks,
--       plocks, symlink, xattrs
-- ARGV: 3 sid8, 4 number n of inodes, then per inode: ino8, '1' when the session's locks on
--       it are to be dropped (else empty)
-- Reply: {'ok'}
return run_op(function()
  local sid8, n = ARGV[3], tonumber(ARGV[4])
  redis.call('SCARD', KEYS[2])
  redis.call('SCARD', KEYS[3])
  -- Check phase: one plan per inode, in order (an inode named twice is released once).
  local plan, seen, any = {}, {}, false
  for i = 1, n do
    local ino8, drop = ARGV[3 + 2 * i], ARGV[4 + 2 * i] == '1'
    local b = 7 + 6 * (i - 1)
    local kop = KEYS[b + 2]
    if not seen[ino8] then
      seen[ino8] = true
      -- Forgetting an open the session does not have changes nothing; a sustained inode
      -- (nlink 0) nobody else holds is deleted.
      local held = redis.call('SISMEMBER', kop, sid8)
      -- The link count alone (bytes 53..56 of the attributes) decides; the whole record is
      -- decoded only for an inode with no link left.
      local a, delete = nil, false
      if redis.call('GETRANGE', KEYS[b + 1], 52, 55) == '\0\0\0\0' then
        a = get_attr(KEYS[b + 1], ino8)
        delete = a and a.nlink == 0 and redis.call('SCARD', kop) - held == 0
      end
      any = any or delete
      local p = { ino8 = ino8, a = a, delete = delete, openers = kop, ff = {}, pf = {},
        flocks = KEYS[b + 3], plocks = KEYS[b + 4], drop = drop,
        k = { attr = KEYS[b + 1], symlink = KEYS[b + 5], xattr = KEYS[b + 6], inodes = KEYS[4],
          pf = KEYS[5], used = KEYS[6], total = KEYS[7] } }
      if drop then
        p.ff, p.pf = session_fields(p.flocks, sid8), session_fields(p.plocks, sid8)
      end
      plan[#plan + 1] = p
    end
  end
  if any then can_delete_inode(KEYS[6], KEYS[7]) end
  -- Writes.
  for _, p in ipairs(plan) do
    redis.call('SREM', p.openers, sid8)
    redis.call('SREM', KEYS[2], p.ino8)
    for _, f in ipairs(p.ff) do redis.call('HDEL', p.flocks, f) end
    for _, f in ipairs(p.pf) do redis.call('HDEL', p.plocks, f) end
    if p.drop then redis.call('SREM', KEYS[3], 'F' .. p.ino8, 'P' .. p.ino8) end
    if p.delete then delete_inode(p.k, p.ino8, p.a) end
  end
  return { 'ok' }
end)
