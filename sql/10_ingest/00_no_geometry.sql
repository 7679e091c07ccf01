-- Ingest, for layers without geometry (field checks): each staged row and
-- whether it is used.
-- etldoc: stage -> stage_fixed
CREATE VIEW stage_fixed AS
SELECT s.*, false AS repaired, NULL::text AS geom_reason, false AS outside_county, false AS clipped,
       s.reject IS NULL AS usable
FROM stage s;
