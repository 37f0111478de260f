-- meta-sql schema v6 (MySQL/MariaDB): a directory's statistics (meta_core::stats: the number
-- of inodes charged to it, the sum of their lengths and of their 4 KiB-aligned space, bytes)
-- move from the v3 `dirstat` table into three columns of its own `node` row. A batch that
-- charges a directory already updates that row (nlink, mtime, ctime) under its row lock;
-- keeping the statistics there takes that lock once instead of twice. NULL (every
-- non-directory, and a directory never charged) reads as 0. {prefix} is the table_prefix.
-- MySQL commits each DDL statement on its own: a migration stopped after the ALTER TABLE
-- fails again there when rerun (duplicate column); dropping the three columns lets it run.

ALTER TABLE {prefix}node
    ADD COLUMN st_inodes BIGINT NULL,
    ADD COLUMN st_length BIGINT NULL,
    ADD COLUMN st_space  BIGINT NULL;

UPDATE {prefix}node AS n JOIN {prefix}dirstat AS d ON n.ino = d.ino
    SET n.st_inodes = d.inodes, n.st_length = d.length, n.st_space = d.space;

DROP TABLE {prefix}dirstat;
