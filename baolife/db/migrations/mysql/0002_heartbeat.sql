-- One row that the store probe (Store.ping) rewrites: readiness tests a
-- write, since saves and a login's claim need one. Safe to run again.
CREATE TABLE IF NOT EXISTS heartbeat (
    id       INT     NOT NULL PRIMARY KEY,
    beat_at  BIGINT  NOT NULL
) ENGINE=InnoDB;
INSERT IGNORE INTO heartbeat (id, beat_at) VALUES (1, 0);
