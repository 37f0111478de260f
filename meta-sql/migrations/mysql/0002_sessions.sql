-- meta-sql schema v2 (MySQL / MariaDB, InnoDB): sessions, open files, locks. {prefix} is the
-- table_prefix. A session is one client; `info` is its description as JSON (host, pid,
-- version, start). openfile: session `sid` holds inode `ino` open (a node with nlink 0 and
-- an openfile row is a sustained inode). flock: ltype 1 shared, 2 exclusive. plock:
-- `records` holds one owner's byte-range locks (21 bytes each: start, end inclusive, type,
-- pid; big-endian).

CREATE TABLE IF NOT EXISTS {prefix}session (
    sid         BIGINT NOT NULL PRIMARY KEY,
    expire_sec  BIGINT NOT NULL,
    expire_nsec BIGINT NOT NULL,
    info        MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}openfile (
    ino BIGINT NOT NULL,
    sid BIGINT NOT NULL,
    PRIMARY KEY (ino, sid),
    KEY {prefix}openfile_sid (sid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}flock (
    ino   BIGINT NOT NULL,
    sid   BIGINT NOT NULL,
    owner BIGINT NOT NULL,
    ltype BIGINT NOT NULL,
    PRIMARY KEY (ino, sid, owner),
    KEY {prefix}flock_sid (sid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}plock (
    ino     BIGINT NOT NULL,
    sid     BIGINT NOT NULL,
    owner   BIGINT NOT NULL,
    records BLOB NOT NULL,
    PRIMARY KEY (ino, sid, owner),
    KEY {prefix}plock_sid (sid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Volumes formatted under schema v1 get the new counters.
INSERT IGNORE INTO {prefix}counter (name, value) VALUES ('nextSession', 1), ('cleanupLease', 0);
