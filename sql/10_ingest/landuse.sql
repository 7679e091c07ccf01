-- etldoc: stage_fixed -> landuse
-- DLBM normalised and grouped by the longest matching prefix of weipian.land_class
-- (Decision 12); a KCXS above 1 is a percentage, a missing KCXS is 0.
INSERT INTO weipian.landuse (county_code, source_id, feature_index, bsm, dlbm, dlbm_source, dlmc,
                             zldwdm, tbmj, kcxs, kcmj, tbdlmj, land_group, is_cultivated, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, s.bsm, n.dlbm, s.dlbm, s.dlmc, s.zldwdm, s.tbmj,
       CASE WHEN s.kcxs IS NULL THEN 0 WHEN s.kcxs > 1 THEN s.kcxs / 100 ELSE s.kcxs END,
       s.kcmj, s.tbdlmj,
       coalesce(lc.land_group, 'unused'), coalesce(lc.is_cultivated, false), s.geom
FROM stage_fixed s
CROSS JOIN LATERAL (SELECT weipian.normalize_dlbm(s.dlbm) AS dlbm) n
LEFT JOIN LATERAL (SELECT * FROM weipian.land_class_of(n.dlbm)) lc ON true
WHERE s.usable;
