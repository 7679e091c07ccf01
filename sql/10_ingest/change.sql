-- etldoc: stage_fixed -> change_polygon
-- XZQDM and JCMJ of the source are kept but never used (Decision 14).
-- In the order of PostGIS's geometry sort (a Hilbert curve): the classification
-- takes the polygons in table order, and neighbours one after the other find
-- the same parcels and index pages in cache (a batch of 3 000 classified in
-- 0.95 of the time of the file's order; README, Performance).
INSERT INTO weipian.change_polygon (county_code, source_id, feature_index, batch, jcbh, xzqdm_source,
                                    qsx, hsx, jcmj, bhlx, geom)
SELECT current_setting('weipian.county_code'), current_setting('weipian.source_id')::bigint,
       s.feature_index, current_setting('weipian.batch'), s.jcbh, s.xzqdm, s.qsx, s.hsx, s.jcmj,
       s.bhlx, s.geom
FROM stage_fixed s
WHERE s.usable
ORDER BY s.geom;
