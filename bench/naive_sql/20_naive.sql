-- The naive variant of the classification, for `make bench` only: every
-- reference set is ONE union of the whole layer (construction land, each
-- approval set per HSX date, farmland, cultivated land per KCXS value,
-- townships), and every change polygon is cut against those unions. The rules
-- are those of sql/20_classify; it fills cls_polygon, cls_judgement and
-- cls_piece as 20_pieces.sql does, so 60_publish.sql publishes it unchanged.
-- Parameters (set_config): weipian.county_code, weipian.batch, weipian.min_part_m2.

CREATE TEMP TABLE cls_polygon ON COMMIT DROP AS
SELECT c.id, c.county_code, c.batch, c.jcbh, c.hsx, c.bhlx, c.geom,
       extract(year FROM c.hsx)::integer AS y, coalesce(ct.rule, 'construction') AS rule
FROM weipian.change_polygon c
LEFT JOIN weipian.change_type ct ON ct.bhlx = c.bhlx
WHERE c.county_code = current_setting('weipian.county_code')
  AND c.batch = current_setting('weipian.batch');

CREATE TEMP TABLE nv_whole ON COMMIT DROP AS
SELECT (SELECT ST_Union(geom) FROM weipian.landuse
        WHERE county_code = current_setting('weipian.county_code') AND land_group = 'construction') AS c,
       (SELECT ST_Union(geom) FROM weipian.farmland
        WHERE county_code = current_setting('weipian.county_code')) AS fm,
       (SELECT ST_Union(geom) FROM weipian.township
        WHERE county_code = current_setting('weipian.county_code')) AS tw;

CREATE TEMP TABLE nv_dates ON COMMIT DROP AS
SELECT d.hsx,
       ST_Union(a.geom) FILTER (WHERE a.pzrq <= d.hsx AND a.role <> 'facility'
                                  AND NOT (a.role = 'temporary' AND a.yxqz IS NOT NULL AND a.yxqz < d.hsx)) AS v,
       ST_Union(a.geom) FILTER (WHERE a.pzrq <= d.hsx AND a.role <> 'facility'
                                  AND NOT (a.role = 'temporary' AND a.yxqz IS NOT NULL AND a.yxqz < d.hsx)
                                  AND extract(year FROM a.pzrq) = extract(year FROM d.hsx)) AS vy,
       ST_Union(a.geom) FILTER (WHERE a.role = 'facility' AND a.pzrq <= d.hsx) AS f,
       ST_Union(a.geom) FILTER (WHERE a.pzrq > d.hsx) AS l,
       ST_Union(a.geom) FILTER (WHERE a.role = 'temporary' AND a.yxqz IS NOT NULL AND a.yxqz < d.hsx) AS e
FROM (SELECT DISTINCT hsx FROM cls_polygon) d
CROSS JOIN (
    SELECT x.geom, x.pzrq, x.yxqz, coalesce(t.role, 'construction') AS role
    FROM weipian.approval x LEFT JOIN weipian.approval_type t ON t.pzlx = x.pzlx
    WHERE x.county_code = current_setting('weipian.county_code')
) a
GROUP BY d.hsx;

CREATE TEMP TABLE nv_cultivated ON COMMIT DROP AS
SELECT kcxs, ST_Union(geom) AS geom
FROM weipian.landuse
WHERE county_code = current_setting('weipian.county_code') AND is_cultivated
GROUP BY kcxs;

CREATE TEMP TABLE nv_desk ON COMMIT DROP AS
SELECT p.id, x.class, x.subtype, x.geom
FROM cls_polygon p
CROSS JOIN nv_whole w
JOIN nv_dates o ON o.hsx = p.hsx
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.rule <> 'agricultural' THEN weipian.inter(p.geom, w.c) END AS unchanged,
           CASE WHEN p.rule <> 'agricultural' THEN weipian.diff(p.geom, w.c) END  AS rest
) s1
CROSS JOIN LATERAL (
    SELECT CASE WHEN p.rule = 'facility' THEN weipian.inter(s1.rest, o.f) END     AS agri,
           CASE WHEN p.rule = 'facility' THEN weipian.diff(s1.rest, o.f) END      AS unfiled,
           CASE WHEN p.rule = 'construction' THEN weipian.inter(s1.rest, o.v) END AS legal,
           CASE WHEN p.rule = 'construction' THEN weipian.diff(s1.rest, o.v) END  AS illegal
) s2
CROSS JOIN LATERAL (
    SELECT weipian.inter(s2.illegal, o.l) AS late, weipian.diff(s2.illegal, o.l) AS not_late
) s3
CROSS JOIN LATERAL (VALUES
    ('agri_adjust', NULL,       CASE WHEN p.rule = 'agricultural' THEN p.geom END),
    ('unchanged',   NULL,       s1.unchanged),
    ('agri_adjust', NULL,       s2.agri),
    ('illegal',     'ssny_wba', s2.unfiled),
    ('legal',       'bnpbj',    weipian.inter(s2.legal, o.vy)),
    ('legal',       'wnpbj',    weipian.diff(s2.legal, o.vy)),
    ('illegal',     'wpxj',     s3.late),
    ('illegal',     'lsyd_cq',  weipian.inter(s3.not_late, o.e)),
    ('illegal',     'wbjy',     weipian.diff(s3.not_late, o.e))
) x (class, subtype, geom)
WHERE x.geom IS NOT NULL;

CREATE TEMP TABLE cls_judgement ON COMMIT DROP AS
WITH class_areas AS (
    SELECT p.id, j.class, j.priority, coalesce(sum(weipian.area_m2(d.geom)), 0) AS area_m2
    FROM cls_polygon p CROSS JOIN weipian.land_judgement j
    LEFT JOIN nv_desk d ON d.id = p.id AND d.class = j.class
    GROUP BY p.id, j.class, j.priority
),
desk AS (
    SELECT DISTINCT ON (id) id, class AS auto_class
    FROM class_areas
    ORDER BY id,
             area_m2 >= current_setting('weipian.min_part_m2')::double precision DESC,
             CASE WHEN area_m2 >= current_setting('weipian.min_part_m2')::double precision THEN priority ELSE 0 END,
             area_m2 DESC, priority
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
            ELSE d.auto_class END AS class,
       weipian.area_m2(p.geom) AS polygon_m2
FROM cls_polygon p JOIN desk d ON d.id = p.id LEFT JOIN field fc ON fc.jcbh = p.jcbh;

CREATE TEMP TABLE nv_final ON COMMIT DROP AS
SELECT d.id, d.class, d.subtype, d.geom
FROM nv_desk d JOIN cls_judgement j ON j.id = d.id
WHERE j.class = j.auto_class
UNION ALL
SELECT p.id, x.class, x.subtype, x.geom
FROM cls_polygon p
JOIN cls_judgement j ON j.id = p.id AND j.class <> j.auto_class
JOIN nv_dates o ON o.hsx = p.hsx
CROSS JOIN LATERAL (
    SELECT j.class = 'illegal' AND p.rule <> 'facility' AS by_approval,
           CASE WHEN j.class = 'illegal' AND p.rule <> 'facility' THEN weipian.diff(p.geom, o.l) END AS not_late
) s
CROSS JOIN LATERAL (VALUES
    ('unchanged',   NULL,       CASE WHEN j.class = 'unchanged' THEN p.geom END),
    ('agri_adjust', NULL,       CASE WHEN j.class = 'agri_adjust' THEN p.geom END),
    ('legal',       'bnpbj',    CASE WHEN j.class = 'legal' THEN weipian.inter(p.geom, o.vy) END),
    ('legal',       'wnpbj',    CASE WHEN j.class = 'legal' THEN weipian.diff(p.geom, o.vy) END),
    ('illegal',     'ssny_wba', CASE WHEN j.class = 'illegal' AND p.rule = 'facility' THEN p.geom END),
    ('illegal',     'wpxj',     CASE WHEN s.by_approval THEN weipian.inter(p.geom, o.l) END),
    ('illegal',     'lsyd_cq',  CASE WHEN s.by_approval THEN weipian.inter(s.not_late, o.e) END),
    ('illegal',     'wbjy',     CASE WHEN s.by_approval THEN weipian.diff(s.not_late, o.e) END)
) x (class, subtype, geom)
WHERE x.geom IS NOT NULL;

CREATE TEMP TABLE cls_piece ON COMMIT DROP AS
WITH split AS (
    SELECT f.id, f.class, f.subtype, t.xzqdm, weipian.inter(f.geom, t.geom) AS geom
    FROM nv_final f
    JOIN weipian.township t ON t.county_code = current_setting('weipian.county_code')
    UNION ALL
    SELECT f.id, f.class, f.subtype, NULL::text, weipian.diff(f.geom, w.tw)
    FROM nv_final f CROSS JOIN nv_whole w
),
pieces AS (
    SELECT id, class, subtype, xzqdm,
           CASE WHEN count(*) = 1 THEN (array_agg(geom))[1] ELSE ST_Multi(ST_Union(geom)) END AS geom
    FROM split WHERE geom IS NOT NULL
    GROUP BY id, class, subtype, xzqdm
)
SELECT pc.id, pc.class, pc.subtype, pc.xzqdm, pc.geom,
       weipian.area_m2(pc.geom) AS area_m2,
       coalesce((SELECT sum(weipian.area_m2(weipian.inter(pc.geom, cu.geom)) * (1 - cu.kcxs)) FROM nv_cultivated cu), 0)
           AS cultivated_m2,
       coalesce(weipian.area_m2(weipian.inter(pc.geom, w.fm)), 0) AS farmland_m2,
       NULL::double precision AS outside_ubg_m2, NULL::double precision AS in_eco_m2
FROM pieces pc CROSS JOIN nv_whole w;
