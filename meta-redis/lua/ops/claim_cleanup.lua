-- claim_cleanup: take the lease on the cleanup of expired sessions when no client took it
-- in the last `every` milliseconds (logic::session::claim_cleanup).
-- KEYS: lease
-- FIXED:
-- ARGS: now every
-- now: ms since the epoch, every: lease length in ms, both decimal.
-- Reply: {'ok'}
OPS.claim_cleanup = function(K, A)
  local last = stored_counter(K[1], 'cleanupLease')
  local now, every = tonumber(A[1]), tonumber(A[2])
  if last > now - every then
    fail('WouldBlock', 'another client claimed the session cleanup ' .. num(now - last) .. ' ms ago')
  end
  redis.call('SET', K[1], A[1])
  return { 'ok' }
end
