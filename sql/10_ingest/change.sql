-- etldoc: stage_fixed -> change_polygon
-- XZQDM and JCMJ of the source are kept but never used (Decision 14).
INSERT INTO weipian.change_polygon (county_code, source_id, feature_index, batch, jcbh, xzqdm_source,
                                    qsx, hsx, jcmj, bhlx, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, current_setting('weipian.batch'), s.jcbh, s.xzqdm, s.qsx, s.hsx, s.jcmj,
       s.bhlx, s.geom
FROM stage_fixed s
WHERE s.usable;
