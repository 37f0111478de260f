-- link: add a hard link parent/name to an existing non-directory inode (logic::link).
-- KEYS: 1 token, 2 attr, 3 parent attr, 4 parent entries
-- ARGV: 3 ino8, 4 parent ino8, 5 name, 6 time12
-- Reply: {'ok', attr, parent attr}
return run_op(function()
  local ino8, parent8, name, time = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  local a = existing_attr(KEYS[2], ino8)
  if a.typ == T_DIR then fail('NotPermitted', 'hard link to directory ' .. dec(ino8)) end
  if a.nlink == 0 then
    fail('NotFound', 'inode ' .. dec(ino8) .. ' has no links left (unlinked while open)')
  end
  local pa = live_dir_attr(KEYS[3], parent8)
  if get_entry(KEYS[4], name) then
    fail('AlreadyExists', dec(parent8) .. '/' .. show(name))
  end
  if a.nlink == U32MAX then fail('NotPermitted', 'inode ' .. dec(ino8) .. ' has too many links') end
  a.nlink = a.nlink + 1
  a.ctime = time
  if a.parent ~= parent8 then a.parent = ZERO8 end
  -- Writes.
  local av = enc_attr(a)
  redis.call('SET', KEYS[2], av)
  redis.call('ZADD', KEYS[4], 0, entry_member(name, a.typ, ino8))
  local pv = enc_attr(bump_dir(pa, 0, time))
  redis.call('SET', KEYS[3], pv)
  return { 'ok', av, pv }
end)
