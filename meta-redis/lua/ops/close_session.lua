-- close_session: end a session (logic::session::close_session): release every inode it
-- holds open (deleting sustained inodes no other session holds), drop its locks, delete its
-- record. The session's open inodes and lock places are read here, their keys derived; or
-- (strict_keys) the client read them beforehand and declares their keys: if they changed,
-- the op asks for a retry.
-- KEYS: session_opens session_locks [(attr openers symlink xattrs kept_openers)... lock_hash...]
-- FIXED: >c8Bc12 sid has_before before
-- ARGS: [inodes places]
-- inodes: the open inodes (ino8 each; the keys of inode i are the five from K[3 + 5 (i - 1)]
-- on); places: the lock places ('F'/'P' .. ino8 each; their lock hashes follow). has_before:
-- 1 = close only when the session expired before `before` (else WouldBlock).
-- Reply: {'ok'}
OPS.close_session = function(K, A)
  local sid8, has_before, before = struct.unpack('>c8Bc12', A[1])
  local declared = A[2] ~= nil
  local ino_list, places = {}, {}
  if declared then
    for i, r in ipairs(records(A[2], 0)) do ino_list[i] = r[1] end
    for o = 1, #A[3], 9 do places[#places + 1] = string.sub(A[3], o, o + 8) end
  end
  local v = redis.call('HGET', S.sessions, sid8)
  if not v then
    fail('NotFound', 'session ' .. dec(sid8) .. ' does not exist (closed, or cleaned up after it expired)')
  end
  if #v < 13 or string.byte(v, 1) ~= 1 then
    fail('Corrupted', 'session ' .. dec(sid8) .. ': undecodable record')
  end
  local expire = string.sub(v, 2, 13)
  if has_before == 1 and (expire == before or tmax(expire, before) == expire) then
    fail('WouldBlock', 'session ' .. dec(sid8) .. ' has not expired')
  end
  if declared then
    -- What the client read must still hold.
    local function same_set(key, members)
      if redis.call('SCARD', key) ~= #members then return false end
      for _, m in ipairs(members) do
        if redis.call('SISMEMBER', key, m) == 0 then return false end
      end
      return true
    end
    if not same_set(K[1], ino_list) or not same_set(K[2], places) then
      retry('the open files or locks of session ' .. dec(sid8) .. ' changed')
    end
  else
    ino_list, places = redis.call('SMEMBERS', K[1]), redis.call('SMEMBERS', K[2])
  end
  local n = #ino_list
  local plan = {}
  local any, dirs = false, false
  for i = 1, n do
    local ino8, b = ino_list[i], 2 + 5 * (i - 1)
    if #ino8 ~= 8 then fail('Corrupted', 'session ' .. dec(sid8) .. ': undecodable open inode') end
    local kattr, kop, ksym, kx, kk, _
    if declared then
      kattr, kop, ksym, kx, kk = K[b + 1], K[b + 2], K[b + 3], K[b + 4], K[b + 5]
    else
      kattr, ksym, kx, kop, _, kk = inode_keys(ino8)
    end
    local a = get_attr(kattr, ino8)
    -- A sustained inode goes when this session was the last to hold it.
    local delete, kept = false, false
    if a and a.nlink == 0 then
      local others
      kept, others = sustained_holders(kop, kk, sid8)
      delete = others == 0
    end
    any = any or delete
    dirs = dirs or (delete and a.typ == T_DIR)
    plan[i] = { ino8 = ino8, a = a, delete = delete, kattr = kattr, openers = kop,
      ksymlink = ksym, kxattr = kx, kept = kept and kk }
  end
  if any then check_deletion(dirs) end
  local drops = {}
  for j = 1, #places do
    local key
    if declared then
      key = K[2 + 5 * n + j]
    else
      local p = places[j]
      local tag = string.sub(p, 1, 1)
      if #p ~= 9 or (tag ~= 'F' and tag ~= 'P') then
        fail('Corrupted', 'session ' .. dec(sid8) .. ': undecodable lock place')
      end
      key = ikey('l' .. string.lower(tag), string.sub(p, 2, 9))
    end
    drops[j] = { key = key, fields = session_fields(key, sid8) }
  end
  -- Writes: the openers sets first (an inode with links left had its set not read:
  -- forget_openers checks their types as it goes).
  local kops = {}
  for i, p in ipairs(plan) do kops[i] = p.openers end
  forget_openers(kops, n, sid8)
  for _, p in ipairs(plan) do
    if p.kept then redis.call('SREM', p.kept, sid8) end
    if p.delete then delete_inode(p.kattr, p.ksymlink, p.kxattr, p.ino8, p.a) end
  end
  for _, d in ipairs(drops) do
    for _, f in ipairs(d.fields) do redis.call('HDEL', d.key, f) end
  end
  redis.call('DEL', K[1], K[2])
  redis.call('HDEL', S.sessions, sid8)
  forget_session(sid8)
  return { 'ok' }
end
