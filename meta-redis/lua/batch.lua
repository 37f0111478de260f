-- batch.lua: the entry point that applies a batch of ops in one call.
--
-- keys: the batch's shared keys (limits, usedSpace, totalInodes, sessions, pending files,
--       pending slices, directory statistics, directory quotas, their owner), then the
--       round's sequence token key when argv[3] is not empty, then each op's keys in order.
-- argv: argv[1] = the header, 5 bytes per op (`>BHH`: op code, number of keys, number of
--       arguments); argv[2] = the volume's key tag `{prefix}` (for derived keys); argv[3] =
--       '' for a call alone in its round, else `>HH` (this call's position, number of calls
--       in the round); argv[4] = 's' when keys are strict (strict_keys: no undeclared key),
--       else ''; then each op's arguments in order.
-- Reply: {stop, message, result 1, result 2, ...}: one result per op that ran, in order;
--   stop = 'done' (every op ran), 'retry' (the next op found what the client read changed;
--   nothing of it was written), 'fault' (the next op raised a server error, message =
--   the error; writes it made before are kept, as for any Redis script) or 'skip' (an
--   earlier call of the round did not finish: nothing ran).
-- `once` (the scripts way, whose library code runs anew on every call): keep nothing for
-- the next call (see `stats_load`).
-- Ops apply in order, each atomic on its own; op i sees the effects of ops before it. The
-- attribute and counter caches, the directory statistics changes and the quotas (lib.lua)
-- are written back before the reply; an op's quota changes count only when it succeeds
-- (`quota_end`).
--
-- A round of several calls is sent as one pipeline. The sequence token keeps them in order
-- across a stop: call 0 runs; call p > 0 runs only when the token reads p, i.e. every
-- earlier call ran to its end. A call that ends 'done' with calls after it sets the token
-- to p + 1 (expiring after 60 s, in case the client goes away); the last call, or one that
-- stops, deletes it, so the calls after a stop answer 'skip'.

-- Writes the cached attributes, counter deltas, directory statistics and quotas back.
local function flush_batch()
  local set, del = {}, {}
  for _, k in ipairs(DLIST) do
    local v = AC[k]
    if v then
      set[#set + 1] = k
      set[#set + 1] = v
    else
      del[#del + 1] = k
    end
  end
  for i = 1, #set, 512 do
    redis.call('MSET', unpack(set, i, math.min(i + 511, #set)))
  end
  for i = 1, #del, 512 do
    redis.call('DEL', unpack(del, i, math.min(i + 511, #del)))
  end
  for k, c in pairs(CNT) do
    if c.d ~= 0 then
      -- The counter saturates at the i64 bounds, as a store's `saturating_add` does (513 files
      -- of 2^54 bytes pass i64::MAX): INCRBY refuses a sum out of range and changes nothing
      -- (the value itself was checked to be an integer when read), then the bound is set.
      local r = redis.pcall('INCRBY', k, num(c.d))
      if type(r) == 'table' and r.err then
        redis.call('SET', k, c.d > 0 and '9223372036854775807' or '-9223372036854775808')
      end
    end
  end
  flush_stats()
  flush_quotas()
  stats_save()
  -- (The caches stay as they are until the next call's begin_batch.)
end

-- OPS[code] for each op code, filled in by the registration the Rust side appends.
local OP_BY_CODE = {}

-- `count` values of `t` from index `from`, as a new table.
local function slice(t, from, count)
  if count <= 64 then return { unpack(t, from, from + count - 1) } end
  local out = {}
  for i = 1, count do out[i] = t[from + i - 1] end
  return out
end

local function batch(keys, argv, once)
  -- (The number of shared keys. A local of this function, not of the library's main chunk,
  -- which Lua 5.1 limits to 200 locals: lib.lua, "One table, not more locals".)
  local NSHARED = 9
  local seq, pos, count
  local kp, ap = NSHARED + 1, 5
  if argv[3] ~= '' then
    pos, count = struct.unpack('>HH', argv[3])
    seq, kp = keys[NSHARED + 1], NSHARED + 2
    if pos > 0 and redis.call('GET', seq) ~= tostring(pos) then return { 'skip', '' } end
  end
  begin_batch(keys, argv[2], argv[4], once)
  local hdr = argv[1]
  local out = { 'done', '' }
  for i = 1, #hdr / 5 do
    local code, nk, na = struct.unpack('>BHH', hdr, 5 * i - 4)
    local f = OP_BY_CODE[code]
    if not f then
      out[1], out[2] = 'fault', 'unknown op code ' .. code
      break
    end
    local ok, res = pcall(f, slice(keys, kp, nk), slice(argv, ap, na))
    if QUN > 0 then
      if ok then QUN = 0 else quota_undo() end
    end
    if QST then quota_end(ok) end
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
  if seq then
    if out[1] == 'done' and pos + 1 < count then
      redis.call('SET', seq, tostring(pos + 1), 'PX', '60000')
    elseif pos > 0 then
      redis.call('DEL', seq)
    end
  end
  return out
end
