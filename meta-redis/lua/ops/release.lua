-- release: forget that a session holds these inodes open, drop the session's locks on those
-- marked, and delete each sustained inode (nlink 0) no session holds any more
-- (logic::session::release).
-- KEYS: session_opens session_locks (attr openers [flocks plocks symlink xattrs])...
-- FIXED: >c8 sid
-- ARGS: inodes
-- inodes: per inode ino8 .. drop (1 byte: 1 = drop the session's locks on it); its keys are
-- the six (strict_keys) or the first two (else; the body derives the others when a lock drop
-- or a deletion needs them) from K[3 + w (i - 1)] on, in the order above.
-- Reply: {'ok'}
-- The common inode (links left, no locks to drop) costs its attributes' GET and one SREM of
-- its openers set; the session's set loses all the op's inodes in one SREM.
OPS.release = function(K, A)
  local sid8 = struct.unpack('>c8', A[1])
  redis.call('SCARD', K[1])
  redis.call('SCARD', K[2])
  -- Check phase, in order (an inode named twice is released once): the inodes, their
  -- openers sets, and (`rare`) what only a deletion or a lock drop needs.
  local s = A[2]
  local inos, kops, rare, seen = {}, {}, {}, {}
  local n, any, dirs = 0, false, false
  local w = S.strict and 6 or 2
  for i = 1, #s / 9 do
    local ino8 = string.sub(s, 9 * i - 8, 9 * i - 1)
    if not seen[ino8] then
      seen[ino8] = true
      local b = 2 + w * (i - 1)
      local kattr, kop = K[b + 1], K[b + 2]
      -- Forgetting an open the session does not have changes nothing; a sustained inode
      -- (nlink 0) nobody else holds is deleted. The link count alone (`attr_unlinked`)
      -- decides; the whole record is decoded, and the openers set read, only for an inode
      -- with no link left.
      local raw = raw_attr(kattr)
      local a, delete = nil, false
      if raw and attr_unlinked(raw) then
        a = dec_attr(raw, ino8)
        local held = redis.call('SISMEMBER', kop, sid8)
        delete = a.nlink == 0 and redis.call('SCARD', kop) - held == 0
      end
      any = any or delete
      dirs = dirs or (delete and a.typ == T_DIR)
      n = n + 1
      inos[n], kops[n] = ino8, kop
      local drop = string.byte(s, 9 * i) == 1
      if delete or drop then
        local r = { a = a, delete = delete, drop = drop, kattr = kattr }
        if w == 6 then
          r.flocks, r.plocks, r.ksymlink, r.kxattr = K[b + 3], K[b + 4], K[b + 5], K[b + 6]
        else
          local _
          _, r.ksymlink, r.kxattr = inode_keys(ino8)
          r.flocks, r.plocks = ikey('lf', ino8), ikey('lp', ino8)
        end
        if drop then
          r.ff, r.pf = session_fields(r.flocks, sid8), session_fields(r.plocks, sid8)
        end
        rare[n] = r
      end
    end
  end
  if any then check_deletion(dirs) end
  -- Writes: the openers sets first (forget_openers checks their types as it goes).
  forget_openers(kops, n, sid8)
  for j = 1, n do
    local r = rare[j]
    if r then
      local ino8 = inos[j]
      if r.drop then
        for _, f in ipairs(r.ff) do redis.call('HDEL', r.flocks, f) end
        for _, f in ipairs(r.pf) do redis.call('HDEL', r.plocks, f) end
        redis.call('SREM', K[2], 'F' .. ino8, 'P' .. ino8)
      end
      if r.delete then delete_inode(r.kattr, r.ksymlink, r.kxattr, ino8, r.a) end
    end
  end
  for j = 1, n, 512 do
    redis.call('SREM', K[1], unpack(inos, j, math.min(j + 511, n)))
  end
  return { 'ok' }
end
