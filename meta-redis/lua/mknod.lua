-- mknod: create an inode of any type under a directory (logic::mknod).
-- KEYS: 1 token, 2 parent attr, 3 parent entries, 4 new attr, 5 new symlink target,
--       6 live-inode index, 7 limits, 8 usedSpace, 9 totalInodes, 10 sessions, 11 new
--       inode's openers, 12 the opening session's opens
-- ARGV: 3 parent ino8, 4 name, 5 ino8, 6 type code, 7 mode, 8 uid4, 9 gid4, 10 rdev4,
--       11 symlink target, 12 time12, 13 length8, 14 opening session sid8 (empty: none)
-- Reply: {'ok', attr, parent attr}
return run_op(function()
  local parent8, name, ino8 = ARGV[3], ARGV[4], ARGV[5]
  local typ, mode, time = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[12]
  local pa = live_dir_attr(KEYS[2], parent8)
  if get_entry(KEYS[3], name) then
    fail('AlreadyExists', dec(parent8) .. '/' .. show(name))
  end
  if get_attr(KEYS[4], ino8) then
    fail('AlreadyExists', 'inode ' .. dec(ino8) .. ' is already in use')
  end
  local is_dir = typ == T_DIR
  mode = bit.band(mode, 4095)
  local gid = ARGV[9]
  -- A setgid directory passes its group on, and to subdirectories also the setgid bit.
  if bit.band(pa.mode, 1024) ~= 0 then
    gid = pa.gid
    if is_dir then mode = bit.bor(mode, 1024) end
  end
  local a = {
    typ = typ, mode = mode, uid = ARGV[8], gid = gid, rdev = ARGV[10],
    atime = time, mtime = time, ctime = time,
    nlink = is_dir and 2 or 1, length = ARGV[13], parent = parent8, flags = '\0',
  }
  local sp = space(a)
  check_quota(KEYS[7], KEYS[8], KEYS[9], sp, 1)
  local opener = ARGV[14]
  if opener ~= '' then
    live_session(KEYS[10], opener)
    redis.call('SISMEMBER', KEYS[11], opener)
    redis.call('SISMEMBER', KEYS[12], ino8)
  end
  counter(KEYS[8], 'usedSpace')
  counter(KEYS[9], 'totalInodes')
  -- Writes.
  local av = enc_attr(a)
  redis.call('SET', KEYS[4], av)
  redis.call('ZADD', KEYS[3], 0, entry_member(name, typ, ino8))
  redis.call('ZADD', KEYS[6], 0, ino8)
  if typ == T_LNK then redis.call('SET', KEYS[5], VER .. ARGV[11]) end
  if opener ~= '' then
    redis.call('SADD', KEYS[11], opener)
    redis.call('SADD', KEYS[12], ino8)
  end
  redis.call('INCRBY', KEYS[8], num(sp))
  redis.call('INCRBY', KEYS[9], 1)
  local pv = enc_attr(bump_dir(pa, is_dir and 1 or 0, time))
  redis.call('SET', KEYS[2], pv)
  return { 'ok', av, pv }
end)
