-- close_session: end a session (logic::session::close_session): release every inode it
-- holds open (deleting sustained inodes no other session holds), drop its locks, delete its
-- record. The client read the session's opens and lock places beforehand (ARGV[7..]); if
-- they changed, the op asks for a retry.
-- KEYS: 1 token, 2 sessions, 3 the session's opens, 4 the session's locks, 5 live-inode
--       index, 6 pending files, 7 usedSpace, 8 totalInodes, then for each open inode: attr,
--       openers, symlink, xattrs (4 keys), then for each lock place: the lock hash
-- ARGV: 3 sid8, 4 expired-before time12 (empty: close unconditionally), 5 number n of open
--       inodes, 6 number m of lock places, 7..6+n the inodes (ino8), 7+n..6+n+m the places
--       ('F'/'P' .. ino8)
-- Reply: {'ok'}
return run_op(function()
  local sid8, before = ARGV[3], ARGV[4]
  local n, m = tonumber(ARGV[5]), tonumber(ARGV[6])
  local v = redis.call('HGET', KEYS[2], sid8)
  if not v then
    fail('NotFound', 'session ' .. dec(sid8) .. ' does not exist (closed, or cleaned up after it expired)')
  end
  if #v < 13 or string.byte(v, 1) ~= 1 then
    fail('Corrupted', 'session ' .. dec(sid8) .. ': undecodable record')
  end
  local expire = string.sub(v, 2, 13)
  if before ~= '' and (expire == before or tmax(expire, before) == expire) then
    fail('WouldBlock', 'session ' .. dec(sid8) .. ' has not expired')
  end
  -- What the client read must still hold.
  local function same_set(key, first, count)
    if redis.call('SCARD', key) ~= count then return false end
    for i = first, first + count - 1 do
      if redis.call('SISMEMBER', key, ARGV[i]) == 0 then return false end
    end
    return true
  end
  if not same_set(KEYS[3], 7, n) or not same_set(KEYS[4], 7 + n, m) then
    retry('the open files or locks of session ' .. dec(sid8) .. ' changed')
  end
  local plan = {}
  local any = false
  for i = 1, n do
    local ino8, base = ARGV[6 + i], 8 + 4 * (i - 1)
    local a = get_attr(KEYS[base + 1], ino8)
    local kop = KEYS[base + 2]
    local delete = a and a.nlink == 0 and redis.call('SCARD', kop) == 1
      and redis.call('SISMEMBER', kop, sid8) == 1
    any = any or delete
    plan[i] = { ino8 = ino8, a = a, delete = delete, k = { attr = KEYS[base + 1],
      symlink = KEYS[base + 3], xattr = KEYS[base + 4], inodes = KEYS[5], pf = KEYS[6],
      used = KEYS[7], total = KEYS[8] }, openers = kop }
  end
  if any then can_delete_inode(KEYS[7], KEYS[8]) end
  local drops = {}
  for j = 1, m do
    local key = KEYS[8 + 4 * n + j]
    drops[j] = { key = key, fields = session_fields(key, sid8) }
  end
  -- Writes.
  for _, p in ipairs(plan) do
    redis.call('SREM', p.openers, sid8)
    if p.delete then delete_inode(p.k, p.ino8, p.a) end
  end
  for _, d in ipairs(drops) do
    for _, f in ipairs(d.fields) do redis.call('HDEL', d.key, f) end
  end
  redis.call('DEL', KEYS[3], KEYS[4])
  redis.call('HDEL', KEYS[2], sid8)
  return { 'ok' }
end)
