-- etldoc: stage_fixed -> farmland
INSERT INTO weipian.farmland (county_code, source_id, feature_index, bsm, dlbm, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, s.bsm, weipian.normalize_dlbm(s.dlbm), s.geom
FROM stage_fixed s
WHERE s.usable;
