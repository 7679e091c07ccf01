-- Ingest: what to do with each geometry PostGIS has to look at, for the features
-- weipian.first .. weipian.last of stage.
--
-- A feature already found clean while it was read (stage.clean: a valid 2D
-- polygon or multipolygon in the working CRS, checked with GEOS by
-- pipeline/ingest.py) is skipped. For the others, domain.md Decision 11 is
-- weipian.ingest_geometry / working_geometry (migration 0010): transform to the
-- working CRS, drop Z/M, keep a valid polygon as it is, else make valid (GEOS
-- "linework", as ST_MakeValid) and keep the polygonal part. A feature whose WKB
-- PostGIS cannot parse was mended (unclosed ring closed) or set aside by
-- pipeline/ingest.py first (stage.wkb_repaired / wkb_error).
--
-- county_area is the union of the township layer (loaded first; NULL for the
-- township layer itself, or when no township is loaded: nothing is outside); a
-- feature farther from it than [settings] outside_tolerance_m is outside
-- (migration 0023). The function call sits in a
-- subquery kept apart by OFFSET 0, so it runs once per row; a clean geometry is
-- not stored again.
-- etldoc: stage, county_area -> stage_check
INSERT INTO stage_check (feature_index, clean, repaired, reason, outside)
SELECT x.feature_index, (x.r).clean, (x.r).repaired, (x.r).reason, (x.r).outside
FROM (
    SELECT s.feature_index,
           weipian.ingest_geometry(s.wkb, current_setting('weipian.src_srid')::integer,
                                   current_setting('weipian.work_srid')::integer,
                                   (SELECT a.area FROM county_area a),
                                   current_setting('weipian.outside_m')::double precision) AS r
    FROM stage s
    WHERE s.feature_index BETWEEN current_setting('weipian.first')::integer
                              AND current_setting('weipian.last')::integer
      AND NOT s.clean
    OFFSET 0
) x;
