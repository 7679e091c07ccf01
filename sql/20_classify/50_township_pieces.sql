-- Classify, step 5: cut the final pieces by township (one row per polygon ×
-- class × township × sub-type; the part outside every township has xzqdm NULL)
-- and measure each piece: ellipsoidal area, 耕地 net of KCXS, 永久基本农田 (the
-- union of farmland polygons, overlaps once), and for illegal pieces the area
-- outside 城镇开发边界 / inside 生态保护红线 when the plan layer has them.
-- etldoc: cls_final, township, landuse, farmland, plan_zone -> cls_piece

CREATE TEMP TABLE cls_piece ON COMMIT DROP AS
WITH split AS (
    SELECT f.id, f.class, f.subtype, t.xzqdm, weipian.inter(f.geom, t.geom) AS geom
    FROM cls_final f
    JOIN weipian.township t
      ON t.county_code = current_setting('weipian.county_code')
     AND t.geom && f.geom AND ST_Intersects(t.geom, f.geom)
    UNION ALL
    SELECT f.id, f.class, f.subtype, NULL::text, weipian.diff(f.geom, tu.geom)
    FROM cls_final f
    CROSS JOIN LATERAL (
        SELECT ST_Union(t.geom) AS geom
        FROM weipian.township t
        WHERE t.county_code = current_setting('weipian.county_code')
          AND t.geom && f.geom AND ST_Intersects(t.geom, f.geom)
    ) tu
),
pieces AS (
    SELECT id, class, subtype, xzqdm,
           CASE WHEN count(*) = 1 THEN (array_agg(geom))[1] ELSE ST_Multi(ST_Union(geom)) END AS geom
    FROM split
    WHERE geom IS NOT NULL
    GROUP BY id, class, subtype, xzqdm
),
plan AS (
    SELECT bool_or(gklx = '城镇开发边界') AS has_ubg, bool_or(gklx = '生态保护红线') AS has_eco
    FROM weipian.plan_zone
    WHERE county_code = current_setting('weipian.county_code')
)
SELECT pc.id, pc.class, pc.subtype, pc.xzqdm, pc.geom,
       weipian.area_m2(pc.geom) AS area_m2,
       coalesce(cult.m2, 0) AS cultivated_m2,
       coalesce(weipian.area_m2(weipian.inter(pc.geom, fu.geom)), 0) AS farmland_m2,
       CASE WHEN pl.has_ubg AND pc.class = 'illegal'
            THEN coalesce(weipian.area_m2(weipian.diff(pc.geom, ubg.geom)), 0) END AS outside_ubg_m2,
       CASE WHEN pl.has_eco AND pc.class = 'illegal'
            THEN coalesce(weipian.area_m2(weipian.inter(pc.geom, eco.geom)), 0) END AS in_eco_m2
FROM pieces pc
CROSS JOIN plan pl
LEFT JOIN LATERAL (
    SELECT sum(weipian.area_m2(weipian.inter(pc.geom, l.geom)) * (1 - l.kcxs)) AS m2
    FROM weipian.landuse l
    WHERE l.county_code = current_setting('weipian.county_code')
      AND l.is_cultivated
      AND l.geom && pc.geom AND ST_Intersects(l.geom, pc.geom)
) cult ON true
LEFT JOIN LATERAL (
    SELECT ST_Union(fm.geom) AS geom
    FROM weipian.farmland fm
    WHERE fm.county_code = current_setting('weipian.county_code')
      AND fm.geom && pc.geom AND ST_Intersects(fm.geom, pc.geom)
) fu ON true
LEFT JOIN LATERAL (
    SELECT ST_Union(z.geom) AS geom
    FROM weipian.plan_zone z
    WHERE pl.has_ubg AND pc.class = 'illegal'
      AND z.county_code = current_setting('weipian.county_code')
      AND z.gklx = '城镇开发边界'
      AND z.geom && pc.geom AND ST_Intersects(z.geom, pc.geom)
) ubg ON true
LEFT JOIN LATERAL (
    SELECT ST_Union(z.geom) AS geom
    FROM weipian.plan_zone z
    WHERE pl.has_eco AND pc.class = 'illegal'
      AND z.county_code = current_setting('weipian.county_code')
      AND z.gklx = '生态保护红线'
      AND z.geom && pc.geom AND ST_Intersects(z.geom, pc.geom)
) eco ON true;
