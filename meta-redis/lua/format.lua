-- format: write the format record, the limits, the root directory and the counters, unless
-- the volume already holds a format record (then nothing is written and the stored record
-- is returned, for the client to compare names).
-- KEYS: 1 setting, 2 limits, 3 root attr, 4 live-inode index, 5 nextInode, 6 nextChunk,
--       7 usedSpace, 8 totalInodes, 9 nextSession, 10 cleanupLease
-- ARGV: 1 format record, 2 limits ("capacity inodes"), 3 root attr (73 bytes), 4 root ino8
-- Reply: {'ok'} or {'exists', stored record}
local cur = redis.call('GET', KEYS[1])
if cur then return { 'exists', cur } end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], 0, ARGV[4])
redis.call('SET', KEYS[5], 2)
redis.call('SET', KEYS[6], 1)
redis.call('SET', KEYS[7], 4096)
redis.call('SET', KEYS[8], 1)
redis.call('SET', KEYS[9], 1)
redis.call('SET', KEYS[10], 0)
return { 'ok' }
