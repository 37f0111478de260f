-- meta-sql schema v2 (PostgreSQL): sessions, open files, locks. {prefix} is the table_prefix.
-- A session is one client; `info` is its description as JSON (host, pid, version, start).
-- openfile: session `sid` holds inode `ino` open (a node with nlink 0 and an openfile row is
-- a sustained inode). flock: ltype 1 shared, 2 exclusive. plock: `records` holds one
-- owner's byte-range locks (21 bytes each: start, end inclusive, type, pid; big-endian).

CREATE TABLE IF NOT EXISTS {prefix}session (
    sid         BIGINT NOT NULL PRIMARY KEY,
    expire_sec  BIGINT NOT NULL,
    expire_nsec BIGINT NOT NULL,
    info        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS {prefix}openfile (
    ino BIGINT NOT NULL,
    sid BIGINT NOT NULL,
    PRIMARY KEY (ino, sid)
);
CREATE INDEX IF NOT EXISTS {prefix}openfile_sid ON {prefix}openfile (sid);

CREATE TABLE IF NOT EXISTS {prefix}flock (
    ino   BIGINT NOT NULL,
    sid   BIGINT NOT NULL,
    owner BIGINT NOT NULL,
    ltype BIGINT NOT NULL,
    PRIMARY KEY (ino, sid, owner)
);
CREATE INDEX IF NOT EXISTS {prefix}flock_sid ON {prefix}flock (sid);

CREATE TABLE IF NOT EXISTS {prefix}plock (
    ino     BIGINT NOT NULL,
    sid     BIGINT NOT NULL,
    owner   BIGINT NOT NULL,
    records BYTEA NOT NULL,
    PRIMARY KEY (ino, sid, owner)
);
CREATE INDEX IF NOT EXISTS {prefix}plock_sid ON {prefix}plock (sid);

-- Volumes formatted under schema v1 get the new counters.
INSERT INTO {prefix}counter (name, value) VALUES ('nextSession', 1), ('cleanupLease', 0)
    ON CONFLICT (name) DO NOTHING;
