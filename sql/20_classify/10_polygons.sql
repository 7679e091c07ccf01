-- Classify, step 1: the batch's change polygons.
-- Parameters (set_config): weipian.county_code, weipian.batch.
-- etldoc: change_polygon -> cls_polygon

CREATE TEMP TABLE cls_polygon ON COMMIT DROP AS
SELECT c.id, c.county_code, c.batch, c.jcbh, c.hsx, c.bhlx, c.geom
FROM weipian.change_polygon c
WHERE c.county_code = current_setting('weipian.county_code')
  AND c.batch = current_setting('weipian.batch');

ALTER TABLE cls_polygon ADD PRIMARY KEY (id);
