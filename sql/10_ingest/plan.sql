-- etldoc: stage_fixed -> plan_zone
INSERT INTO weipian.plan_zone (county_code, source_id, feature_index, gklx, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, s.gklx, s.geom
FROM stage_fixed s
WHERE s.usable;
