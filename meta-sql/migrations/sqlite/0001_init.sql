-- meta-sql schema v1 (SQLite). {prefix} is the volume's table_prefix.
-- Integers are INTEGER; file types are codes 1 regular, 2 directory, 3 symlink, 4 fifo,
-- 5 char device, 6 block device, 7 socket; times are seconds + nanoseconds since the epoch.

CREATE TABLE IF NOT EXISTS {prefix}setting (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS {prefix}counter (
    name  TEXT NOT NULL PRIMARY KEY,
    value INTEGER
);

CREATE TABLE IF NOT EXISTS {prefix}node (
    ino        INTEGER NOT NULL PRIMARY KEY,
    type       INTEGER NOT NULL,
    mode       INTEGER NOT NULL,
    uid        INTEGER NOT NULL,
    gid        INTEGER NOT NULL,
    rdev       INTEGER NOT NULL,
    atime_sec  INTEGER NOT NULL,
    atime_nsec INTEGER NOT NULL,
    mtime_sec  INTEGER NOT NULL,
    mtime_nsec INTEGER NOT NULL,
    ctime_sec  INTEGER NOT NULL,
    ctime_nsec INTEGER NOT NULL,
    nlink      INTEGER NOT NULL,
    length     INTEGER NOT NULL,
    parent     INTEGER NOT NULL,
    flags      INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS {prefix}edge (
    parent INTEGER NOT NULL,
    name   BLOB NOT NULL,
    ino    INTEGER NOT NULL,
    type   INTEGER NOT NULL,
    PRIMARY KEY (parent, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS {prefix}chunk (
    ino    INTEGER NOT NULL,
    indx   INTEGER NOT NULL,
    slices BLOB NOT NULL,
    PRIMARY KEY (ino, indx)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS {prefix}symlink (
    ino    INTEGER NOT NULL PRIMARY KEY,
    target BLOB
);

CREATE TABLE IF NOT EXISTS {prefix}xattr (
    ino   INTEGER NOT NULL,
    name  BLOB NOT NULL,
    value BLOB,
    PRIMARY KEY (ino, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS {prefix}delfile (
    ino    INTEGER NOT NULL PRIMARY KEY,
    length INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS {prefix}delslice (
    id   INTEGER NOT NULL PRIMARY KEY,
    size INTEGER NOT NULL
);
