-- release: forget that a session holds these inodes open, drop the session's locks on those
-- marked, and delete each sustained inode (nlink 0) no session holds any more
-- (logic::session::release).
-- KEYS: session_opens session_locks (openers [kept_openers attr flocks plocks symlink xattrs])...
-- FIXED: >c8 sid
-- ARGS: inodes
-- inodes: per inode ino8 .. drop (1 byte: 1 = drop the session's locks on it); its keys are
-- the seven (strict_keys) or the first one (else; the body derives the others when it needs
-- them) from K[3 + w (i - 1)] on, in the order above.
-- Reply: {'ok'}
-- A live inode's sessions are in its openers set, a sustained inode's in its kept openers
-- set (remove_inode renames the one to the other). So the common inode costs one SREM, of
-- its openers set, which finds the session there; only an inode whose openers set did not
-- have it (sustained, or a release sent twice) reads its kept openers set and attributes.
-- The session's set loses all the op's inodes in one SREM.
OPS.release = function(K, A)
  local sid8 = struct.unpack('>c8', A[1])
  check_set(K[1])
  -- Check phase, in order (an inode named twice is released once): the inodes, and what a
  -- lock drop needs.
  local s = A[2]
  local inos, kops, base, drops, seen = {}, {}, {}, {}, {}
  local n = 0
  local strict = S.strict
  local w = strict and 7 or 1
  for i = 1, #s / 9 do
    local ino8 = string.sub(s, 9 * i - 8, 9 * i - 1)
    if not seen[ino8] then
      seen[ino8] = true
      n = n + 1
      local b = 2 + w * (i - 1)
      inos[n], kops[n], base[n] = ino8, K[b + 1], b
      if string.byte(s, 9 * i) == 1 then
        local kf, kp = K[b + 4], K[b + 5]
        if not strict then kf, kp = ikey('lf', ino8), ikey('lp', ino8) end
        drops[n] = { kf, kp, session_fields(kf, sid8), session_fields(kp, sid8) }
      end
    end
  end
  if next(drops) then check_set(K[2]) end
  -- Writes: the openers sets first (forget_openers checks their types as it goes).
  local removed = forget_openers(kops, n, sid8)
  -- The inodes whose openers set did not have the session: a sustained one it holds is
  -- deleted when no other session holds it. What decides is read now, after those first
  -- writes: a failure undoes them (as forget_openers does), so the op still changes nothing.
  local missed = false
  for j = 1, n do missed = missed or removed[j] == 0 end
  local rare = {}
  if missed then
    local ok, err = pcall(function()
      local any, dirs = false, false
      for j = 1, n do
        if removed[j] == 0 then
          local ino8, b = inos[j], base[j]
          local kattr, ksym, kx, kk, _
          if strict then
            kk, kattr, ksym, kx = K[b + 2], K[b + 3], K[b + 6], K[b + 7]
          else
            kattr, ksym, kx, _, _, kk = inode_keys(ino8)
          end
          local kept, others = sustained_holders(kops[j], kk, sid8)
          if kept then
            local a = get_attr(kattr, ino8)
            local delete = a ~= nil and a.nlink == 0 and others == 0
            any = any or delete
            dirs = dirs or (delete and a.typ == T_DIR)
            rare[j] = { kk = kk, a = a, delete = delete, kattr = kattr, ksym = ksym, kx = kx }
          end
        end
      end
      if any then check_deletion(dirs) end
    end)
    if not ok then
      unforget_openers(kops, n, sid8, removed)
      error(err)
    end
  end
  for j = 1, n do
    local d, r = drops[j], rare[j]
    if d then
      for _, f in ipairs(d[3]) do redis.call('HDEL', d[1], f) end
      for _, f in ipairs(d[4]) do redis.call('HDEL', d[2], f) end
      redis.call('SREM', K[2], 'F' .. inos[j], 'P' .. inos[j])
    end
    if r then
      redis.call('SREM', r.kk, sid8)
      if r.delete then delete_inode(r.kattr, r.ksym, r.kx, inos[j], r.a) end
    end
  end
  for j = 1, n, 512 do
    redis.call('SREM', K[1], unpack(inos, j, math.min(j + 511, n)))
  end
  return { 'ok' }
end
