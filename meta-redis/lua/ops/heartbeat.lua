-- heartbeat: move a session's expiry on (logic::session::heartbeat).
-- KEYS:
-- FIXED: >c8c12 sid expire
-- ARGS:
-- Reply: {'ok'}
OPS.heartbeat = function(K, A)
  local sid8, expire = struct.unpack('>c8c12', A[1])
  local v = redis.call('HGET', S.sessions, sid8)
  if not v then
    fail('NotFound', 'session ' .. dec(sid8) .. ' does not exist (closed, or cleaned up after it expired)')
  end
  if #v < 13 or string.byte(v, 1) ~= 1 then
    fail('Corrupted', 'session ' .. dec(sid8) .. ': undecodable record')
  end
  redis.call('HSET', S.sessions, sid8, VER .. expire .. string.sub(v, 14))
  return { 'ok' }
end
