-- rmdir: remove an empty directory (logic::rmdir). The entry's inode was read beforehand
-- (ARGV[7], its keys KEYS[4..7]); a changed entry asks for a retry.
-- KEYS: 1 token, 2 parent attr, 3 parent entries, 4 target attr, 5 target entries,
--       6 target symlink, 7 target xattrs, 8 live-inode index, 9 pending files,
--       10 usedSpace, 11 totalInodes, 12 target openers (an open directory is kept)
-- ARGV: 3 parent ino8, 4 name, 5 caller uid4, 6 time12, 7 expected target ino8 (or zero)
-- Reply: {'ok', target ino8, sustained attr or nil, parent attr}
return run_op(function()
  local parent8, name, caller, time = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local pa = dir_attr(KEYS[2], parent8)
  local e = get_entry(KEYS[3], name)
  if not e then fail('NotFound', dec(parent8) .. '/' .. show(name)) end
  if e.typ ~= T_DIR then fail('NotADirectory', dec(parent8) .. '/' .. show(name)) end
  if e.ino ~= ARGV[7] then retry('entry ' .. show(name) .. ' changed') end
  local a = existing_attr(KEYS[4], e.ino)
  check_sticky(pa, a, caller, 'rmdir')
  if has_entries(KEYS[5]) then fail('NotEmpty', dec(parent8) .. '/' .. show(name)) end
  local k = { attr = KEYS[4], symlink = KEYS[6], xattr = KEYS[7], inodes = KEYS[8],
    pf = KEYS[9], used = KEYS[10], total = KEYS[11] }
  local sustain = is_open(KEYS[12])
  if not sustain then can_delete_inode(k.used, k.total) end
  -- Writes.
  redis.call('ZREM', KEYS[3], e.member)
  local left = false
  if sustain then
    left = sustain_inode(KEYS[4], a, time)
  else
    delete_inode(k, e.ino, a)
  end
  redis.call('DEL', KEYS[5])
  local pv = enc_attr(bump_dir(pa, -1, time))
  redis.call('SET', KEYS[2], pv)
  return { 'ok', e.ino, left, pv }
end)
