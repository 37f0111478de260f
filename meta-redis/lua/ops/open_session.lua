-- open_session: register a session (logic::session::open_session).
-- KEYS:
-- FIXED: >c8 sid
-- ARGS: record
-- record: version byte, expiry time12, description JSON (meta_core::kv::encode_session).
-- Reply: {'ok'}
OPS.open_session = function(K, A)
  local sid8 = struct.unpack('>c8', A[1])
  if redis.call('HEXISTS', S.sessions, sid8) == 1 then
    fail('AlreadyExists', 'session ' .. dec(sid8) .. ' exists')
  end
  redis.call('HSET', S.sessions, sid8, A[2])
  return { 'ok' }
end
