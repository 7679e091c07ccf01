-- etldoc: stage_fixed -> landuse
-- DLBM normalised and grouped by the longest matching prefix of weipian.land_class
-- (Decision 12), once per distinct code (weipian.dlbm_codes, migration 0022);
-- a KCXS above 1 is a percentage, a missing KCXS is 0 (the same rule as
-- pipeline.values.kcxs_fraction, for the clean parcels ingest copies directly).
WITH codes AS MATERIALIZED (
    SELECT * FROM weipian.dlbm_codes(ARRAY(SELECT DISTINCT coalesce(dlbm, '') FROM stage_fixed))
)
INSERT INTO weipian.landuse (county_code, source_id, feature_index, bsm, dlbm, dlbm_source, dlmc,
                             zldwdm, tbmj, kcxs, kcmj, tbdlmj, land_group, is_cultivated, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, s.bsm, c.dlbm, s.dlbm, s.dlmc, s.zldwdm, s.tbmj,
       CASE WHEN s.kcxs IS NULL THEN 0 WHEN s.kcxs > 1 THEN s.kcxs / 100 ELSE s.kcxs END,
       s.kcmj, s.tbdlmj, c.land_group, c.is_cultivated, s.geom
FROM stage_fixed s
JOIN codes c ON c.dlbm_source = coalesce(s.dlbm, '')
WHERE s.usable;
