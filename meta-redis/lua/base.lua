-- base.lua: constants and number helpers shared by the read functions (reads.lua) and the
-- op library (lib.lua). The Rust side assembles the library from these files (see
-- src/scripts.rs); nothing here touches a key.
--
-- Values use meta_core::kv's codec, big-endian. Lua 5.1 numbers are doubles, so no 64-bit
-- value ever passes through a Lua number unless it is exact: inode numbers, lengths, parent
-- fields and times stay 8/12-byte strings (compared bytewise, never with Lua's
-- locale-dependent string `<`).

local ZERO8 = '\0\0\0\0\0\0\0\0'
local ROOT8 = '\0\0\0\0\0\0\0\1'
local VER = '\1'
local MAX_DEPTH = 100000

-- The parent field of encoded attributes (either form; see lib.lua), nil when `v` is
-- neither.
local function attr_parent(v)
  if string.byte(v, 1) == 2 and #v >= 38 then return string.sub(v, 31, 38) end
  if #v == 73 then return string.sub(v, 65, 72) end
  return nil
end

-- Whether the link count of encoded attributes (either form) is 0; false when `v` is
-- neither form.
local function attr_unlinked(v)
  if string.byte(v, 1) == 2 and #v >= 38 then return string.sub(v, 13, 16) == '\0\0\0\0' end
  return #v == 73 and string.sub(v, 53, 56) == '\0\0\0\0'
end

-- Decimal text of an 8-byte big-endian unsigned integer (exact for every u64).
local function dec(s)
  local hi, lo = struct.unpack('>I4I4', s)
  if hi < 2097152 then
    return string.format('%.0f', hi * 4294967296 + lo)
  end
  local limbs = { math.floor(hi / 65536), hi % 65536, math.floor(lo / 65536), lo % 65536 }
  local digits = {}
  repeat
    local rem, nonzero = 0, false
    for i = 1, 4 do
      local cur = rem * 65536 + limbs[i]
      limbs[i] = math.floor(cur / 10)
      rem = cur % 10
      if limbs[i] ~= 0 then nonzero = true end
    end
    digits[#digits + 1] = tostring(rem)
  until not nonzero
  local out = {}
  for i = #digits, 1, -1 do out[#out + 1] = digits[i] end
  return table.concat(out)
end
