-- etldoc: stage_fixed -> landuse
-- DLBM normalised and grouped by the longest matching prefix of weipian.land_class
-- (Decision 12), once per distinct code (MATERIALIZED keeps the planner from
-- calling land_class_of once per parcel); a KCXS above 1 is a percentage, a
-- missing KCXS is 0.
WITH codes AS MATERIALIZED (
    SELECT d.dlbm_source, n.dlbm,
           coalesce(lc.land_group, 'unused') AS land_group,
           coalesce(lc.is_cultivated, false) AS is_cultivated
    FROM (SELECT DISTINCT coalesce(dlbm, '') AS dlbm_source FROM stage_fixed) d
    CROSS JOIN LATERAL (SELECT weipian.normalize_dlbm(d.dlbm_source) AS dlbm) n
    LEFT JOIN LATERAL (SELECT * FROM weipian.land_class_of(n.dlbm)) lc ON true
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
