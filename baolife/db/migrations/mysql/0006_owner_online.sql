-- Whether the owner worker has the player online (issue 16: the console's
-- "online, and on which worker" from any worker), the same column as
-- migrations/sqlite/0006_owner_online.sql. Set to 1 by the statement that
-- makes a worker the owner (a claim, a registration: every login), set to
-- 0 by that worker once the player's session ends there
-- (baolife.admin.presence). Read only with the owner's lease: a row of a
-- worker whose lease ran out says offline whatever its flag.
--
-- Safe to run again: MySQL 8 has no ADD COLUMN IF NOT EXISTS, so the
-- ALTER is prepared only when the column is missing (a no-op DO 0 else).
SET @baolife_0006 = (
    SELECT IF(COUNT(*) = 0,
              'ALTER TABLE player_owners ADD COLUMN online TINYINT NOT NULL DEFAULT 0',
              'DO 0')
    FROM information_schema.columns
    WHERE table_schema = DATABASE() AND table_name = 'player_owners' AND column_name = 'online'
);
PREPARE baolife_0006 FROM @baolife_0006;
EXECUTE baolife_0006;
DEALLOCATE PREPARE baolife_0006;
