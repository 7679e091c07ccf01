-- Ingest, step 1 for layers without geometry (field checks).
-- etldoc: stage -> stage_fixed
DROP TABLE IF EXISTS stage_fixed;
CREATE TEMP TABLE stage_fixed ON COMMIT DROP AS
SELECT s.*, false AS repaired, NULL::text AS geom_reason, s.reject IS NULL AS usable
FROM stage s;

ALTER TABLE stage_fixed DROP COLUMN wkb;
