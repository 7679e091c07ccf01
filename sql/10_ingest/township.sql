-- etldoc: stage_fixed -> township
INSERT INTO weipian.township (county_code, source_id, feature_index, xzqdm, xzqmc, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, s.xzqdm, s.xzqmc, s.geom
FROM stage_fixed s
WHERE s.usable;
