-- claim_cleanup: take the lease on the cleanup of expired sessions when no client took it
-- in the last `every` milliseconds (logic::session::claim_cleanup).
-- KEYS: 1 token, 2 cleanupLease counter
-- ARGV: 3 now (ms since the epoch, decimal), 4 lease length (ms, decimal)
-- Reply: {'ok'}
return run_op(function()
  local last = counter(KEYS[2], 'cleanupLease')
  local now, every = tonumber(ARGV[3]), tonumber(ARGV[4])
  if last > now - every then
    fail('WouldBlock', 'another client claimed the session cleanup ' .. num(now - last) .. ' ms ago')
  end
  redis.call('SET', KEYS[2], ARGV[3])
  return { 'ok' }
end)
