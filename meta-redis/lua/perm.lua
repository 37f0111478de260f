-- perm.lua: meta_core::perm's permission rules (after lib.lua; see its header).
--
-- Permissions (meta_core::perm) ------------------------------------------------------------
--
-- A caller (`perm_caller`): uid and gid as 4-byte big-endian strings, compared bytewise with
-- the attributes' uid and gid, and its supplementary groups packed the same way, 4 bytes
-- each (possibly none). uid 0 is root. Mode bits: setuid 2048, setgid 1024, sticky 512,
-- group execute 8; permission masks: read 4, write 2, execute/search 1.

local ROOT4 = '\0\0\0\0'

local function perm_caller(uid4, gid4, groups)
  return { uid = uid4, gid = gid4, groups = groups or '' }
end

-- A 4-byte id as a number (for messages).
local function id4(s)
  return (struct.unpack('>I4', s))
end

-- Caller::in_group: the caller's group or one of its supplementary groups.
local function perm_in_group(c, gid4)
  if c.gid == gid4 then return true end
  local g = c.groups
  for o = 1, #g, 4 do
    if string.sub(g, o, o + 3) == gid4 then return true end
  end
  return false
end

-- PERM_HAS[bits * 8 + mask]: whether the 3 permission bits `bits` include every bit of
-- `mask` (bits & mask == mask), for bits and mask in 0..7. Filled once, at load, with plain
-- arithmetic: the checks below look it up instead of calling the bit library (a library
-- call costs far more than a table lookup in Redis's Lua).
local PERM_HAS = {}
for b = 0, 7 do
  for m = 0, 7 do
    local ok, bb, mm = true, b, m
    for _ = 1, 3 do
      if mm % 2 == 1 and bb % 2 == 0 then ok = false end
      bb, mm = (bb - bb % 2) / 2, (mm - mm % 2) / 2
    end
    PERM_HAS[b * 8 + m] = ok
  end
end

-- perm::permits: one class of bits (owner, else group, else other); root reads and writes
-- anything and executes a directory, or a file with an execute bit. `mask` is a whole
-- number >= 0 (only its 3 low bits count); modes are u16, so the shifts are exact
-- arithmetic.
local function perm_permits(a, c, mask)
  mask = mask % 8
  local m = a.mode
  if c.uid == ROOT4 then
    -- (An execute bit: 1, 8 or 64.)
    return mask % 2 == 0 or a.typ == T_DIR or m % 2 == 1 or (m - m % 8) / 8 % 2 == 1
      or (m - m % 64) / 64 % 2 == 1
  end
  local bits
  if c.uid == a.uid then
    bits = (m - m % 64) / 64 % 8
  elseif perm_in_group(c, a.gid) then
    bits = (m - m % 8) / 8 % 8
  else
    bits = m % 8
  end
  return PERM_HAS[bits * 8 + mask]
end

-- perm::check_access: EACCES.
local function perm_check_access(a, ino8, c, mask, what)
  if perm_permits(a, c, mask) then return end
  local m = ''
  if bit.band(mask, 4) ~= 0 then m = m .. 'r' end
  if bit.band(mask, 2) ~= 0 then m = m .. 'w' end
  if bit.band(mask, 1) ~= 0 then m = m .. 'x' end
  fail('PermissionDenied', what .. ': uid ' .. id4(c.uid) .. ' has no ' .. m
    .. ' permission on inode ' .. dec(ino8) .. ' (mode ' .. string.format('%o', a.mode)
    .. ', owner ' .. id4(a.uid) .. ':' .. id4(a.gid) .. ')')
end

-- perm::check_search: search permission on a directory an entry is looked up in.
local function perm_check_search(dir, ino8, c, what)
  if not perm_permits(dir, c, 1) then perm_check_access(dir, ino8, c, 1, what) end
end

-- perm::check_dir_write: write and search permission on a directory that gains or loses an
-- entry.
local function perm_check_dir_write(dir, ino8, c, what)
  if not perm_permits(dir, c, 3) then perm_check_access(dir, ino8, c, 3, what) end
end

-- perm::check_sticky: EPERM.
local function perm_check_sticky(dir, target, c, what)
  if dir.mode % 1024 >= 512 and c.uid ~= ROOT4 and c.uid ~= dir.uid
    and c.uid ~= target.uid then
    fail('NotPermitted', what .. ': sticky directory owned by uid ' .. id4(dir.uid))
  end
end

-- perm::check_delete (may_delete): write and search permission on `dir` (EACCES), then the
-- sticky-bit rule (EPERM) when the target inode exists (`target` nil: a dangling entry).
local function perm_check_delete(dir, dir8, target, c, what)
  perm_check_dir_write(dir, dir8, c, what)
  if target then perm_check_sticky(dir, target, c, what) end
end

-- perm::kill_bits of an inode with mode `mode` and group `gid4`: setuid, and setgid when
-- group execute is set or the caller is neither root nor in the group.
local function perm_kill_bits(mode, gid4, c)
  local kill = bit.band(mode, 2048)
  if bit.band(mode, 1024) ~= 0
    and (bit.band(mode, 8) ~= 0 or not (c.uid == ROOT4 or perm_in_group(c, gid4))) then
    kill = kill + 1024
  end
  return kill
end

-- perm::mode_after_write: the mode of `a` after a write or truncate by `c` (kill_bits are
-- removed from a regular file unless the caller is root).
local function perm_mode_after_write(a, c)
  if c.uid == ROOT4 or a.typ ~= T_REG then return a.mode end
  return a.mode - perm_kill_bits(a.mode, a.gid, c)
end

-- perm::check_setattr: checks a setattr (mask bits MODE 1, UID 2, GID 4, ATIME 8, MTIME 16,
-- ATIME_NOW 32, MTIME_NOW 64, SIZE 128; values mode (number), uid4, gid4) and returns the
-- mode the inode gets. EACCES (truncate, touch), EPERM (chown, chgrp, chmod, times).
local function perm_check_setattr(a, ino8, c, mask, vmode, vuid, vgid)
  local function has(b) return bit.band(mask, b) ~= 0 end
  local root = c.uid == ROOT4
  local owner = root or c.uid == a.uid
  local function denied(what)
    fail('NotPermitted', what .. ' of inode ' .. dec(ino8) .. ' (owner ' .. id4(a.uid)
      .. ') by uid ' .. id4(c.uid))
  end
  if has(128) then perm_check_access(a, ino8, c, 2, 'truncate') end
  if has(2) and not root and not (c.uid == a.uid and vuid == a.uid) then denied('chown') end
  local new_gid = a.gid
  if has(4) then new_gid = vgid end
  if has(4) and not root
    and not (c.uid == a.uid and (vgid == a.gid or perm_in_group(c, vgid))) then
    denied('chgrp')
  end
  local mode = a.mode
  if has(1) then
    if not owner then denied('chmod') end
    mode = bit.band(vmode, 4095)
    if not root and not perm_in_group(c, new_gid) and bit.band(mode, 1024) ~= 0 then
      mode = mode - 1024
    end
  end
  local now_a, now_m = has(32), has(64)
  if has(8) or has(16) or now_a ~= now_m then
    if not owner then denied('setting the times') end
  elseif now_a and now_m and not owner and not perm_permits(a, c, 2) then
    fail('PermissionDenied', 'touching the times of inode ' .. dec(ino8) .. ': uid '
      .. id4(c.uid) .. ' is not the owner and cannot write')
  end
  if not has(1) and a.typ ~= T_DIR then
    -- chown(2) clears setuid (and setgid as kill_bits decides) for root too; a truncate as
    -- a write does.
    if has(2) or has(4) then mode = mode - perm_kill_bits(mode, a.gid, c) end
    if has(128) then mode = perm_mode_after_write({ typ = a.typ, mode = mode, gid = a.gid }, c) end
  end
  return mode
end

-- perm::check_xattr_write: setxattr / removexattr of `name` on `a` by `c`. `user.` names
-- only on regular files and directories (EPERM, for root too); then root passes;
-- `trusted.` and `security.` names need root; `user.` names not on a sticky directory of
-- another owner (EPERM); then write permission (EACCES).
local function perm_check_xattr_write(a, ino8, c, name)
  local what = 'changing extended attributes'
  local user = string.sub(name, 1, 5) == 'user.'
  if user and a.typ ~= T_REG and a.typ ~= T_DIR then
    fail('NotPermitted', what .. ' of inode ' .. dec(ino8) .. ' (type ' .. a.typ
      .. '): user. names are for regular files and directories only')
  end
  if c.uid == ROOT4 then return end
  if string.sub(name, 1, 8) == 'trusted.' or string.sub(name, 1, 9) == 'security.' then
    fail('NotPermitted', what .. ' of inode ' .. dec(ino8) .. ': '
      .. string.match(name, '^[^.]*') .. ' names need root')
  end
  if user and a.typ == T_DIR and bit.band(a.mode, 512) ~= 0 and c.uid ~= a.uid then
    fail('NotPermitted', what .. ' of sticky directory ' .. dec(ino8) .. ' owned by uid '
      .. id4(a.uid))
  end
  perm_check_access(a, ino8, c, 2, what)
end
