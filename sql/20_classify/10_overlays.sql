-- Classify, step 1: the batch's change polygons and, per polygon, the union of
-- its own index candidates in each reference set of domain.md (never a
-- whole-layer union):
--   c  construction land (DLTB whose DLBM group is construction)
--   v  approvals with PZRQ <= HSX, not 设施农用地, not an expired 临时用地
--   vy those of v dated in Y, the year of HSX (Decision 3)
--   f  设施农用地 approvals with PZRQ <= HSX
--   l  approvals of any type with PZRQ > HSX (Decision 4)
--   e  expired 临时用地 (YXQZ < HSX; without YXQZ it never expires)
-- Unknown PZLX are judged as construction permits, unknown BHLX as 建设用地.
-- Parameters (set_config): weipian.county_code, weipian.batch.
-- etldoc: change_polygon, change_type -> cls_polygon
-- etldoc: landuse, approval, approval_type -> cls_overlay

CREATE TEMP TABLE cls_polygon ON COMMIT DROP AS
SELECT c.id, c.county_code, c.batch, c.jcbh, c.hsx,
       extract(year FROM c.hsx)::integer AS y,
       c.bhlx, coalesce(ct.rule, 'construction') AS rule,
       c.geom
FROM weipian.change_polygon c
LEFT JOIN weipian.change_type ct ON ct.bhlx = c.bhlx
WHERE c.county_code = current_setting('weipian.county_code')
  AND c.batch = current_setting('weipian.batch');

ALTER TABLE cls_polygon ADD PRIMARY KEY (id);

CREATE TEMP TABLE cls_overlay ON COMMIT DROP AS
SELECT p.id, lu.c, ap.v, ap.vy, ap.f, ap.l, ap.e
FROM cls_polygon p
LEFT JOIN LATERAL (
    SELECT ST_Union(l.geom) AS c
    FROM weipian.landuse l
    WHERE l.county_code = p.county_code
      AND l.land_group = 'construction'
      AND l.geom && p.geom AND ST_Intersects(l.geom, p.geom)
) lu ON true
LEFT JOIN LATERAL (
    SELECT ST_Union(a.geom) FILTER (WHERE a.v)                          AS v,
           ST_Union(a.geom) FILTER (WHERE a.v AND a.year_pz = p.y)      AS vy,
           ST_Union(a.geom) FILTER (WHERE a.role = 'facility' AND a.pzrq <= p.hsx) AS f,
           ST_Union(a.geom) FILTER (WHERE a.pzrq > p.hsx)               AS l,
           ST_Union(a.geom) FILTER (WHERE a.expired)                    AS e
    FROM (
        SELECT x.geom, x.pzrq, t.role,
               extract(year FROM x.pzrq)::integer AS year_pz,
               x.pzrq <= p.hsx
                 AND t.role <> 'facility'
                 AND NOT (t.role = 'temporary' AND x.yxqz IS NOT NULL AND x.yxqz < p.hsx) AS v,
               t.role = 'temporary' AND x.yxqz IS NOT NULL AND x.yxqz < p.hsx AS expired
        FROM weipian.approval x
        CROSS JOIN LATERAL (
            SELECT coalesce((SELECT at.role FROM weipian.approval_type at WHERE at.pzlx = x.pzlx),
                            'construction') AS role
        ) t
        WHERE x.county_code = p.county_code
          AND x.geom && p.geom AND ST_Intersects(x.geom, p.geom)
    ) a
) ap ON true;

ALTER TABLE cls_overlay ADD PRIMARY KEY (id);
