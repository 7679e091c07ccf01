-- etldoc: stage_fixed -> farmland
WITH codes AS MATERIALIZED (
    SELECT d.dlbm_source, weipian.normalize_dlbm(d.dlbm_source) AS dlbm
    FROM (SELECT DISTINCT coalesce(dlbm, '') AS dlbm_source FROM stage_fixed) d
)
INSERT INTO weipian.farmland (county_code, source_id, feature_index, bsm, dlbm, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, s.bsm, c.dlbm, s.geom
FROM stage_fixed s
JOIN codes c ON c.dlbm_source = coalesce(s.dlbm, '')
WHERE s.usable;
