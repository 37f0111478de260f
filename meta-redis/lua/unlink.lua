-- unlink: remove a non-directory entry (logic::unlink). The entry's inode was read by the
-- client beforehand (ARGV[7], its keys KEYS[4..6]); if the entry now names another inode the
-- op asks for a retry.
-- KEYS: 1 token, 2 parent attr, 3 parent entries, 4 target attr, 5 target symlink,
--       6 target xattrs, 7 live-inode index, 8 pending files, 9 usedSpace, 10 totalInodes,
--       11 target openers (an inode some session holds open is kept: logic::remove_inode)
-- ARGV: 3 parent ino8, 4 name, 5 caller uid4, 6 time12, 7 expected target ino8 (or zero)
-- Reply: {'ok', target ino8, target attr or nil when gone, parent attr}
return run_op(function()
  local parent8, name, caller, time = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local pa = dir_attr(KEYS[2], parent8)
  local e = get_entry(KEYS[3], name)
  if not e then fail('NotFound', dec(parent8) .. '/' .. show(name)) end
  if e.typ == T_DIR then fail('IsADirectory', dec(parent8) .. '/' .. show(name)) end
  if e.ino ~= ARGV[7] then retry('entry ' .. show(name) .. ' changed') end
  local a = get_attr(KEYS[4], e.ino)
  if a then check_sticky(pa, a, caller, 'unlink') end
  local k = { attr = KEYS[4], symlink = KEYS[5], xattr = KEYS[6], inodes = KEYS[7],
    pf = KEYS[8], used = KEYS[9], total = KEYS[10] }
  local sustain = false
  if a and a.nlink <= 1 then
    sustain = is_open(KEYS[11])
    if not sustain then can_delete_inode(k.used, k.total) end
  end
  -- Writes.
  redis.call('ZREM', KEYS[3], e.member)
  local left = false
  if a then
    if a.nlink > 1 then
      a.nlink = a.nlink - 1
      a.ctime = time
      left = enc_attr(a)
      redis.call('SET', KEYS[4], left)
    elseif sustain then
      left = sustain_inode(KEYS[4], a, time)
    else
      delete_inode(k, e.ino, a)
    end
  end
  local pv = enc_attr(bump_dir(pa, 0, time))
  redis.call('SET', KEYS[2], pv)
  return { 'ok', e.ino, left, pv }
end)
