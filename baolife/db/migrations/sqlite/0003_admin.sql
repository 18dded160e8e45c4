-- The operators' console (issue 16): bans, mutes, the notice, erasures,
-- last logins and the audit log.

-- A ban per player; until NULL: no end. Checked at login and resume.
CREATE TABLE bans (
    player_id  INTEGER PRIMARY KEY,
    reason     TEXT    NOT NULL,
    until      INTEGER,
    by_name    TEXT    NOT NULL,
    at         INTEGER NOT NULL
);

-- Players whose NPC talk an operator turned off.
CREATE TABLE mutes (
    player_id  INTEGER PRIMARY KEY,
    by_name    TEXT    NOT NULL,
    at         INTEGER NOT NULL
);

-- The announcement (at most one row, id 1).
CREATE TABLE notices (
    id         INTEGER PRIMARY KEY,
    text       TEXT    NOT NULL,
    until      INTEGER NOT NULL,
    by_name    TEXT    NOT NULL,
    at         INTEGER NOT NULL
);

-- Erased players: the id alone, so a second erase or a ban says "erased"
-- rather than "unknown". Nothing personal.
CREATE TABLE erased (
    player_id  INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL
);

-- When a worker last loaded each player for a login (Store.claim).
CREATE TABLE logins (
    player_id  INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL
);

-- Every operator action: who (token name and role), what, on whom, from where.
CREATE TABLE admin_audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    who        TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    player_id  INTEGER,
    detail     TEXT    NOT NULL,
    origin     TEXT    NOT NULL
);
CREATE INDEX admin_audit_player ON admin_audit (player_id);
CREATE INDEX accounts_name ON accounts (name);
