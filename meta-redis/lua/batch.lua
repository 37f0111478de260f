-- batch.lua: the entry point that applies a batch of ops in one call.
--
-- keys: the batch's shared keys (limits, usedSpace, totalInodes, sessions, pending files,
--       pending slices), then each op's keys in order.
-- argv: argv[1] = the header, 5 bytes per op (`>BHH`: op code, number of keys, number of
--       arguments); argv[2] = the volume's key tag `{prefix}` (for derived keys); then each
--       op's arguments in order.
-- Reply: {stop, message, result 1, result 2, ...}: one result per op that ran, in order;
--   stop = 'done' (every op ran), 'retry' (the next op found what the client read changed;
--   nothing of it was written) or 'fault' (the next op raised a server error, message =
--   the error; writes it made before are kept, as for any Redis script).
-- Ops apply in order, each atomic on its own; op i sees the effects of ops before it. The
-- attribute and counter caches (lib.lua) are written back before the reply.

local NSHARED = 6

-- OPS[code] for each op code, filled in by the registration the Rust side appends.
local OP_BY_CODE = {}

-- `count` values of `t` from index `from`, as a new table.
local function slice(t, from, count)
  if count <= 64 then return { unpack(t, from, from + count - 1) } end
  local out = {}
  for i = 1, count do out[i] = t[from + i - 1] end
  return out
end

local function batch(keys, argv)
  begin_batch(keys, argv[2])
  local hdr = argv[1]
  local out = { 'done', '' }
  local kp, ap = NSHARED + 1, 3
  for i = 1, #hdr / 5 do
    local code, nk, na = struct.unpack('>BHH', hdr, 5 * i - 4)
    local f = OP_BY_CODE[code]
    if not f then
      out[1], out[2] = 'fault', 'unknown op code ' .. code
      break
    end
    local ok, res = pcall(f, slice(keys, kp, nk), slice(argv, ap, na))
    kp, ap = kp + nk, ap + na
    if ok then
      out[#out + 1] = res
    elseif type(res) == 'table' and res.meta_err then
      out[#out + 1] = { 'err', res.meta_err, res.msg }
    elseif type(res) == 'table' and res.meta_retry then
      out[1], out[2] = 'retry', res.msg
      break
    else
      if type(res) == 'table' and res.err then res = res.err end
      out[1], out[2] = 'fault', tostring(res)
      break
    end
  end
  flush_batch()
  return out
end
