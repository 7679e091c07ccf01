-- Classify, step 3: each polygon's desk class and final class.
-- Desk class: the first of illegal, legal, agri_adjust, unchanged whose
-- ellipsoidal area in P reaches min_part_m2; if none does, the largest, ties
-- in that order (Decision 6).
-- Final class (Decision 1): the effective field check is the last row for the
-- JCBH among layers of this batch or without batch (later layer, later row
-- wins). SFBH = 否 -> unchanged; a PDLX different from the desk class -> that
-- class; otherwise the desk class.
-- Parameter: weipian.min_part_m2.
-- etldoc: cls_desk, field_check -> cls_judgement

CREATE TEMP TABLE cls_judgement ON COMMIT DROP AS
WITH class_areas AS (
    SELECT p.id, j.class, j.priority, coalesce(sum(weipian.area_m2(d.geom)), 0) AS area_m2
    FROM cls_polygon p
    CROSS JOIN weipian.land_judgement j
    LEFT JOIN cls_desk d ON d.id = p.id AND d.class = j.class
    GROUP BY p.id, j.class, j.priority
),
desk AS (
    SELECT DISTINCT ON (id) id, class AS auto_class
    FROM class_areas
    ORDER BY id,
             area_m2 >= current_setting('weipian.min_part_m2')::double precision DESC,
             CASE WHEN area_m2 >= current_setting('weipian.min_part_m2')::double precision
                  THEN priority ELSE 0 END,
             area_m2 DESC,
             priority
),
field AS (
    SELECT DISTINCT ON (f.jcbh) f.jcbh, f.sfbh, f.pdlx
    FROM weipian.field_check f
    WHERE f.county_code = current_setting('weipian.county_code')
      AND (f.batch IS NULL OR f.batch = current_setting('weipian.batch'))
    ORDER BY f.jcbh, f.layer_index DESC, f.feature_index DESC
)
SELECT p.id, d.auto_class, fc.sfbh, fc.pdlx,
       CASE WHEN fc.sfbh = '否' THEN 'unchanged'
            WHEN fc.pdlx IS NOT NULL AND fc.pdlx <> d.auto_class THEN fc.pdlx
            ELSE d.auto_class
       END AS class
FROM cls_polygon p
JOIN desk d ON d.id = p.id
LEFT JOIN field fc ON fc.jcbh = p.jcbh;

ALTER TABLE cls_judgement ADD PRIMARY KEY (id);
