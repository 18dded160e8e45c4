-- Whether the owner worker has the player online (issue 16: the console's
-- "online, and on which worker" from any worker), the same column as
-- migrations/mysql/0006_owner_online.sql. Set to 1 by the statement that
-- makes a worker the owner (a claim, a registration: every login), set to
-- 0 by that worker once the player's session ends there
-- (baolife.admin.presence). Read only with the owner's lease: a row of a
-- worker whose lease ran out says offline whatever its flag.
ALTER TABLE player_owners ADD COLUMN online INTEGER NOT NULL DEFAULT 0;
