-- release: forget that a session holds these inodes open, drop the session's locks on those
-- marked, and delete each sustained inode (nlink 0) no session holds any more
-- (logic::session::release).
-- KEYS: session_opens session_locks (attr openers flocks plocks symlink xattrs)...
-- FIXED: >c8 sid
-- ARGS: inodes
-- inodes: per inode ino8 .. drop (1 byte: 1 = drop the session's locks on it); its keys are
-- the six from K[3 + 6 (i - 1)] on, in the order above.
-- Reply: {'ok'}
OPS.release = function(K, A)
  local sid8 = struct.unpack('>c8', A[1])
  redis.call('SCARD', K[1])
  redis.call('SCARD', K[2])
  -- Check phase: one plan per inode, in order (an inode named twice is released once).
  local plan, seen, any, dirs = {}, {}, false, false
  for i, r in ipairs(records(A[2], 1)) do
    local ino8, drop = r[1], r[2] == '\1'
    local b = 2 + 6 * (i - 1)
    local kattr, kop = K[b + 1], K[b + 2]
    if not seen[ino8] then
      seen[ino8] = true
      -- Forgetting an open the session does not have changes nothing; a sustained inode
      -- (nlink 0) nobody else holds is deleted. The link count alone (`attr_unlinked`)
      -- decides; the whole record is decoded only for an inode with no link left.
      local held = redis.call('SISMEMBER', kop, sid8)
      local raw = raw_attr(kattr)
      local a, delete = nil, false
      if raw and attr_unlinked(raw) then
        a = dec_attr(raw, ino8)
        delete = a.nlink == 0 and redis.call('SCARD', kop) - held == 0
      end
      any = any or delete
      dirs = dirs or (delete and a.typ == T_DIR)
      local p = { ino8 = ino8, a = a, delete = delete, openers = kop, ff = {}, pf = {},
        flocks = K[b + 3], plocks = K[b + 4], drop = drop, kattr = kattr,
        ksymlink = K[b + 5], kxattr = K[b + 6] }
      if drop then
        p.ff, p.pf = session_fields(p.flocks, sid8), session_fields(p.plocks, sid8)
      end
      plan[#plan + 1] = p
    end
  end
  if any then check_deletion(dirs) end
  -- Writes.
  for _, p in ipairs(plan) do
    redis.call('SREM', p.openers, sid8)
    redis.call('SREM', K[1], p.ino8)
    for _, f in ipairs(p.ff) do redis.call('HDEL', p.flocks, f) end
    for _, f in ipairs(p.pf) do redis.call('HDEL', p.plocks, f) end
    if p.drop then redis.call('SREM', K[2], 'F' .. p.ino8, 'P' .. p.ino8) end
    if p.delete then delete_inode(p.kattr, p.ksymlink, p.kxattr, p.ino8, p.a) end
  end
  return { 'ok' }
end
