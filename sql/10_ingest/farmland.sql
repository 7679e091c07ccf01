-- etldoc: stage_fixed -> farmland
WITH codes AS MATERIALIZED (
    SELECT * FROM weipian.dlbm_codes(ARRAY(SELECT DISTINCT coalesce(dlbm, '') FROM stage_fixed))
)
INSERT INTO weipian.farmland (county_code, source_id, feature_index, bsm, dlbm, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, s.bsm, c.dlbm, s.geom
FROM stage_fixed s
JOIN codes c ON c.dlbm_source = coalesce(s.dlbm, '')
WHERE s.usable;
