-- clear_pending_slice: forget a dropped slice once its object is gone.
-- KEYS:
-- FIXED: >c8 id
-- ARGS:
-- Reply: {'ok'}
OPS.clear_pending_slice = function(K, A)
  local id8 = struct.unpack('>c8', A[1])
  if redis.call('HEXISTS', S.ps, id8) == 0 then
    fail('NotFound', 'slice ' .. dec(id8) .. ' is not pending deletion')
  end
  -- Writes.
  redis.call('HDEL', S.ps, id8)
  return { 'ok' }
end
