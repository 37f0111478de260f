-- meta-sql schema v6 (SQLite): a directory's statistics (meta_core::stats: the number of
-- inodes charged to it, the sum of their lengths and of their 4 KiB-aligned space, bytes)
-- move from the v3 `dirstat` table into three columns of its own `node` row, which a batch
-- charging the directory already updates. NULL (every non-directory, and a directory never
-- charged) reads as 0. {prefix} is the table_prefix.

ALTER TABLE {prefix}node ADD COLUMN st_inodes INTEGER;
ALTER TABLE {prefix}node ADD COLUMN st_length INTEGER;
ALTER TABLE {prefix}node ADD COLUMN st_space  INTEGER;

UPDATE {prefix}node
    SET st_inodes = d.inodes, st_length = d.length, st_space = d.space
    FROM {prefix}dirstat AS d
    WHERE {prefix}node.ino = d.ino;

DROP TABLE {prefix}dirstat;
