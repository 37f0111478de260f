-- clear_pending_slice: forget a dropped slice once its object is gone.
-- KEYS: 1 token, 2 pending slices (hash id8 -> size4)
-- ARGV: 3 slice id8
-- Reply: {'ok'}
return run_op(function()
  local id8 = ARGV[3]
  if redis.call('HEXISTS', KEYS[2], id8) == 0 then
    fail('NotFound', 'slice ' .. dec(id8) .. ' is not pending deletion')
  end
  -- Writes.
  redis.call('HDEL', KEYS[2], id8)
  return { 'ok' }
end)
