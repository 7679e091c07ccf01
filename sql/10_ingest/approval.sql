-- etldoc: stage_fixed -> approval
-- An approval without a readable PZRQ was rejected before (Decision 4).
INSERT INTO weipian.approval (county_code, source_id, feature_index, pzwh, pzrq, pzlx, yxqz, xmmc, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, s.pzwh, s.pzrq, s.pzlx, s.yxqz, s.xmmc, s.geom
FROM stage_fixed s
WHERE s.usable;
