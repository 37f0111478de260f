-- meta-sql schema v6 (PostgreSQL): a directory's statistics (meta_core::stats: the number of
-- inodes charged to it, the sum of their lengths and of their 4 KiB-aligned space, bytes)
-- move from the v3 `dirstat` table into three columns of its own `node` row. A batch that
-- charges a directory already updates that row (nlink, mtime, ctime) under its row lock;
-- keeping the statistics there takes that lock once instead of twice, and concurrent
-- batches charging the same directories spend half as long one after the other. NULL (every
-- non-directory, and a directory never charged) reads as 0. {prefix} is the table_prefix.

ALTER TABLE {prefix}node
    ADD COLUMN IF NOT EXISTS st_inodes BIGINT,
    ADD COLUMN IF NOT EXISTS st_length BIGINT,
    ADD COLUMN IF NOT EXISTS st_space  BIGINT;

UPDATE {prefix}node AS n
    SET st_inodes = d.inodes, st_length = d.length, st_space = d.space
    FROM {prefix}dirstat AS d
    WHERE n.ino = d.ino;

DROP TABLE {prefix}dirstat;
