-- meta-sql schema v1 (MySQL / MariaDB, InnoDB). {prefix} is the volume's table_prefix.
-- Integers are BIGINT; file types are codes 1 regular, 2 directory, 3 symlink, 4 fifo,
-- 5 char device, 6 block device, 7 socket; times are seconds + nanoseconds since the epoch.

CREATE TABLE IF NOT EXISTS {prefix}setting (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value MEDIUMTEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}counter (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}node (
    ino        BIGINT NOT NULL PRIMARY KEY,
    type       BIGINT NOT NULL,
    mode       BIGINT NOT NULL,
    uid        BIGINT NOT NULL,
    gid        BIGINT NOT NULL,
    rdev       BIGINT NOT NULL,
    atime_sec  BIGINT NOT NULL,
    atime_nsec BIGINT NOT NULL,
    mtime_sec  BIGINT NOT NULL,
    mtime_nsec BIGINT NOT NULL,
    ctime_sec  BIGINT NOT NULL,
    ctime_nsec BIGINT NOT NULL,
    nlink      BIGINT NOT NULL,
    length     BIGINT NOT NULL,
    parent     BIGINT NOT NULL,
    flags      BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}edge (
    parent BIGINT NOT NULL,
    name   VARBINARY(255) NOT NULL,
    ino    BIGINT NOT NULL,
    type   BIGINT NOT NULL,
    PRIMARY KEY (parent, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}chunk (
    ino    BIGINT NOT NULL,
    indx   BIGINT NOT NULL,
    slices LONGBLOB NOT NULL,
    PRIMARY KEY (ino, indx)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}symlink (
    ino    BIGINT NOT NULL PRIMARY KEY,
    target BLOB
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}xattr (
    ino   BIGINT NOT NULL,
    name  VARBINARY(255) NOT NULL,
    value MEDIUMBLOB,
    PRIMARY KEY (ino, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}delfile (
    ino    BIGINT NOT NULL PRIMARY KEY,
    length BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS {prefix}delslice (
    id   BIGINT NOT NULL PRIMARY KEY,
    size BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
