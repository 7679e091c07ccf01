-- Classify one change polygon P in one pass: overlays → desk pieces → judgement
-- → final pieces → township pieces, each measured. Installed by
-- pipeline/classify.py when this file changes (not run per batch); called by
-- 20_pieces.sql once per polygon, in parallel workers (the function only reads
-- ordinary tables, so it is PARALLEL SAFE).
--
-- Why one function per polygon: every rule of domain.md is local to P, so all
-- of P's pieces come from the few reference polygons near P (index candidates,
-- never a whole-layer union), and the polygons of a batch can be shared out
-- among CPU cores. Ellipsoidal areas are computed once per final piece (a desk
-- piece that stays whole keeps the area it was judged by).
--
-- The CTEs, in order (the rules are those of domain.md, Decisions 1–6):
--   polygon   P, its year Y, its rule (unknown BHLX → 建设用地)
--   overlay   per reference set the union of P's own index candidates:
--               c  construction land (DLTB whose DLBM group is construction)
--               v  approvals with PZRQ <= HSX, not 设施农用地, not an expired 临时用地
--               vy those of v dated in Y (Decision 3)
--               f  设施农用地 approvals with PZRQ <= HSX
--               l  approvals of any type with PZRQ > HSX (Decision 4)
--               e  expired 临时用地 (YXQZ < HSX; without YXQZ it never expires)
--             unknown PZLX are judged as construction permits
--   desk      the desk pieces, a partition of P:
--               BHLX 农用地 → all of P agri_adjust;  P ∩ C → unchanged;
--               BHLX 设施农用地 → (P − C) ∩ F agri_adjust, the rest illegal 未备案设施农用地;
--               BHLX 建设用地/推填土 → (P − C) ∩ V legal (∩ VY 本年批准本年建设, else
--               往年批准本年建设), the rest illegal: ∩ L 未批先建, then ∩ E 临时用地超期,
--               then 未报即用
--   judgement desk class: the first of illegal, legal, agri_adjust, unchanged whose
--             ellipsoidal area reaches min_part_m2, else the largest, ties in that
--             order (Decision 6); final class from the effective field check, the last
--             row for the JCBH among layers of this batch or without batch:
--             SFBH = 否 → unchanged; a PDLX other than the desk class → that class
--   final     the desk pieces where the final class is the desk class; else all of
--             P in the final class, sub-types by Decision 2
--   split     the final pieces cut by township (weipian.township_part, subdivided;
--             nothing to cut when one part covers P); the part outside every
--             township has xzqdm NULL (Decision 5)
--   measured  each piece's ellipsoidal area, 耕地 net of KCXS, 永久基本农田 (union of
--             farmland: small blocks as they are, large ones as their parts in
--             weipian.farmland_part; overlaps once; both as planar shares of the piece scaled by
--             its ellipsoidal / planar ratio), and for illegal pieces the area outside
--             城镇开发边界 / inside 生态保护红线 when the plan layer has them
-- Output: one row per piece, with P's judgement on every row (and one row with
-- NULL piece columns if P had no piece at all).
-- etldoc: change_polygon, change_type, landuse, approval, approval_type, field_check -> classify_polygon
-- etldoc: farmland, township_part, farmland_part, plan_zone_part -> classify_polygon

CREATE OR REPLACE FUNCTION weipian.classify_polygon(p_id bigint, p_min_part_m2 double precision)
RETURNS TABLE (
    change_id       bigint,
    auto_class      text,
    final_class     text,
    sfbh            text,
    pdlx            text,
    polygon_m2      double precision,
    class           text,
    subtype         text,
    xzqdm           text,
    geom            geometry,
    area_m2         double precision,
    cultivated_m2   double precision,
    farmland_m2     double precision,
    outside_ubg_m2  double precision,
    in_eco_m2       double precision
)
LANGUAGE sql STABLE STRICT PARALLEL SAFE COST 100000 ROWS 3
AS $fn$
WITH polygon AS (
    SELECT c.id, c.county_code, c.batch, c.jcbh, c.hsx,
           extract(year FROM c.hsx)::integer AS y,
           coalesce(ct.rule, 'construction') AS rule,
           c.geom,
           weipian.area_m2(c.geom) AS area_m2
    FROM weipian.change_polygon c
    LEFT JOIN weipian.change_type ct ON ct.bhlx = c.bhlx
    WHERE c.id = p_id
),
overlay AS (
    SELECT lu.c, ap.v, ap.vy, ap.f, ap.l, ap.e
    FROM polygon p
    LEFT JOIN LATERAL (
        SELECT ST_Union(l.geom) AS c
        FROM weipian.landuse l
        WHERE l.county_code = p.county_code
          AND l.land_group = 'construction'
          AND l.geom && p.geom AND ST_Intersects(l.geom, p.geom)
    ) lu ON true
    LEFT JOIN LATERAL (
        SELECT ST_Union(a.geom) FILTER (WHERE a.v)                                AS v,
               ST_Union(a.geom) FILTER (WHERE a.v AND a.year_pz = p.y)            AS vy,
               ST_Union(a.geom) FILTER (WHERE a.role = 'facility' AND a.pzrq <= p.hsx) AS f,
               ST_Union(a.geom) FILTER (WHERE a.pzrq > p.hsx)                     AS l,
               ST_Union(a.geom) FILTER (WHERE a.expired)                          AS e
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
    ) ap ON true
),
desk AS (
    SELECT x.class, x.subtype, x.geom, weipian.area_m2(x.geom) AS area_m2
    FROM polygon p
    CROSS JOIN overlay o
    CROSS JOIN LATERAL (
        SELECT CASE WHEN p.rule <> 'agricultural' THEN weipian.inter(p.geom, o.c) END AS unchanged,
               CASE WHEN p.rule <> 'agricultural' THEN weipian.diff(p.geom, o.c) END  AS rest
    ) s1
    CROSS JOIN LATERAL (
        SELECT CASE WHEN p.rule = 'facility' THEN weipian.inter(s1.rest, o.f) END     AS agri,
               CASE WHEN p.rule = 'facility' THEN weipian.diff(s1.rest, o.f) END      AS unfiled,
               CASE WHEN p.rule = 'construction' THEN weipian.inter(s1.rest, o.v) END AS legal,
               CASE WHEN p.rule = 'construction' THEN weipian.diff(s1.rest, o.v) END  AS illegal
    ) s2
    CROSS JOIN LATERAL (
        SELECT weipian.inter(s2.illegal, o.l) AS late,
               weipian.diff(s2.illegal, o.l)  AS not_late
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
    WHERE x.geom IS NOT NULL
),
desk_class AS (
    SELECT j.class AS auto_class
    FROM (
        SELECT lj.class, lj.priority, coalesce(sum(d.area_m2), 0) AS area_m2
        FROM weipian.land_judgement lj
        LEFT JOIN desk d ON d.class = lj.class
        GROUP BY lj.class, lj.priority
    ) j
    ORDER BY j.area_m2 >= p_min_part_m2 DESC,
             CASE WHEN j.area_m2 >= p_min_part_m2 THEN j.priority ELSE 0 END,
             j.area_m2 DESC,
             j.priority
    LIMIT 1
),
field AS (
    SELECT f.sfbh, f.pdlx
    FROM polygon p
    JOIN weipian.field_check f
      ON f.county_code = p.county_code AND f.jcbh = p.jcbh
     AND (f.batch IS NULL OR f.batch = p.batch)
    ORDER BY f.layer_index DESC, f.feature_index DESC
    LIMIT 1
),
judgement AS (
    SELECT d.auto_class, fc.sfbh, fc.pdlx,
           CASE WHEN fc.sfbh = '否' THEN 'unchanged'
                WHEN fc.pdlx IS NOT NULL AND fc.pdlx <> d.auto_class THEN fc.pdlx
                ELSE d.auto_class
           END AS class
    FROM desk_class d
    LEFT JOIN field fc ON true
),
final AS (
    SELECT row_number() OVER () AS k, u.*
    FROM (
        SELECT d.class, d.subtype, d.geom, d.area_m2
        FROM desk d, judgement j
        WHERE j.class = j.auto_class
        UNION ALL
        SELECT x.class, x.subtype, x.geom,
               CASE WHEN x.whole THEN p.area_m2 END
        FROM polygon p
        CROSS JOIN overlay o
        JOIN judgement j ON j.class <> j.auto_class
        CROSS JOIN LATERAL (
            SELECT j.class = 'illegal' AND p.rule <> 'facility' AS by_approval,
                   CASE WHEN j.class = 'illegal' AND p.rule <> 'facility'
                        THEN weipian.diff(p.geom, o.l) END AS not_late
        ) s
        CROSS JOIN LATERAL (VALUES
            ('unchanged',   NULL,       CASE WHEN j.class = 'unchanged' THEN p.geom END, true),
            ('agri_adjust', NULL,       CASE WHEN j.class = 'agri_adjust' THEN p.geom END, true),
            ('legal',       'bnpbj',    CASE WHEN j.class = 'legal' THEN weipian.inter(p.geom, o.vy) END, false),
            ('legal',       'wnpbj',    CASE WHEN j.class = 'legal' THEN weipian.diff(p.geom, o.vy) END, false),
            ('illegal',     'ssny_wba', CASE WHEN j.class = 'illegal' AND p.rule = 'facility' THEN p.geom END, true),
            ('illegal',     'wpxj',     CASE WHEN s.by_approval THEN weipian.inter(p.geom, o.l) END, false),
            ('illegal',     'lsyd_cq',  CASE WHEN s.by_approval THEN weipian.inter(s.not_late, o.e) END, false),
            ('illegal',     'wbjy',     CASE WHEN s.by_approval THEN weipian.diff(s.not_late, o.e) END, false)
        ) x (class, subtype, geom, whole)
        WHERE x.geom IS NOT NULL
    ) u
),
home AS (
    -- the township part holding all of P, if one does (most polygons): then no
    -- piece needs cutting and every piece keeps its area
    SELECT tp.xzqdm
    FROM polygon p
    JOIN weipian.township_part tp
      ON tp.county_code = p.county_code
     AND tp.geom && p.geom AND ST_CoveredBy(p.geom, tp.geom)
    LIMIT 1
),
township AS (
    -- otherwise, per township, the union of its parts near P
    SELECT tp.xzqdm,
           CASE WHEN count(*) = 1 THEN (array_agg(tp.geom))[1] ELSE ST_Union(tp.geom) END AS geom
    FROM polygon p
    JOIN weipian.township_part tp
      ON tp.county_code = p.county_code
     AND tp.geom && p.geom AND ST_Intersects(tp.geom, p.geom)
    WHERE NOT EXISTS (SELECT 1 FROM home)
    GROUP BY tp.xzqdm
),
touching AS (
    SELECT f.k, t.xzqdm, t.geom, ST_CoveredBy(f.geom, t.geom) AS covered
    FROM final f
    JOIN township t ON t.geom && f.geom AND ST_Intersects(t.geom, f.geom)
),
split AS (
    SELECT f.class, f.subtype, h.xzqdm, f.geom, f.area_m2 AS known_m2
    FROM final f
    CROSS JOIN home h
    UNION ALL
    SELECT f.class, f.subtype, tc.xzqdm,
           CASE WHEN tc.covered THEN f.geom ELSE weipian.inter(f.geom, tc.geom) END,
           CASE WHEN tc.covered THEN f.area_m2 END
    FROM final f
    JOIN touching tc ON tc.k = f.k
    UNION ALL
    SELECT f.class, f.subtype, NULL::text,
           weipian.diff(f.geom, (SELECT ST_Union(tc.geom) FROM touching tc WHERE tc.k = f.k)),
           CASE WHEN NOT EXISTS (SELECT 1 FROM touching tc WHERE tc.k = f.k) THEN f.area_m2 END
    FROM final f
    WHERE NOT EXISTS (SELECT 1 FROM home)
      AND NOT EXISTS (SELECT 1 FROM touching tc WHERE tc.k = f.k AND tc.covered)
),
pieces AS (
    SELECT class, subtype, xzqdm,
           CASE WHEN count(*) = 1 THEN (array_agg(geom))[1] ELSE ST_Multi(ST_Union(geom)) END AS geom,
           CASE WHEN count(*) = 1 THEN (array_agg(known_m2))[1] END AS known_m2
    FROM split
    WHERE geom IS NOT NULL
    GROUP BY class, subtype, xzqdm
),
plan AS (
    SELECT bool_or(z.gklx = '城镇开发边界') AS has_ubg, bool_or(z.gklx = '生态保护红线') AS has_eco
    FROM polygon p
    JOIN weipian.plan_zone z ON z.county_code = p.county_code
),
measured AS (
    -- 耕地 and 永久基本农田 are shares of a piece: measured in the plane and scaled
    -- by the piece's own ellipsoidal / planar ratio (the scale of the projection
    -- hardly varies across one piece: < 1e-6 relative), so the ellipsoidal area
    -- is computed once per piece, not once per parcel it touches
    SELECT pc.class, pc.subtype, pc.xzqdm, pc.geom, a.area_m2,
           coalesce(a.ratio * cult.m2, 0) AS cultivated_m2,
           coalesce(a.ratio * ST_Area(weipian.inter(pc.geom, (
               SELECT ST_Union(fm.geom)
               FROM (SELECT f.geom FROM weipian.farmland f
                     WHERE f.county_code = p.county_code AND ST_NPoints(f.geom) <= 128
                       AND f.geom && pc.geom AND ST_Intersects(f.geom, pc.geom)
                     UNION ALL
                     SELECT f.geom FROM weipian.farmland_part f
                     WHERE f.county_code = p.county_code
                       AND f.geom && pc.geom AND ST_Intersects(f.geom, pc.geom)) fm))), 0) AS farmland_m2,
           CASE WHEN pl.has_ubg AND pc.class = 'illegal'
                THEN coalesce(weipian.area_m2(weipian.diff(pc.geom, ubg.geom)), 0) END AS outside_ubg_m2,
           CASE WHEN pl.has_eco AND pc.class = 'illegal'
                THEN coalesce(weipian.area_m2(weipian.inter(pc.geom, eco.geom)), 0) END AS in_eco_m2
    FROM pieces pc
    CROSS JOIN polygon p
    CROSS JOIN plan pl
    CROSS JOIN LATERAL (SELECT coalesce(pc.known_m2, weipian.area_m2(pc.geom)) AS area_m2) a0
    CROSS JOIN LATERAL (SELECT a0.area_m2, a0.area_m2 / nullif(ST_Area(pc.geom), 0) AS ratio) a
    LEFT JOIN LATERAL (
        SELECT sum(CASE WHEN ST_CoveredBy(pc.geom, l.geom) THEN ST_Area(pc.geom)
                        ELSE ST_Area(weipian.inter(pc.geom, l.geom)) END * (1 - l.kcxs)) AS m2
        FROM weipian.landuse l
        WHERE l.county_code = p.county_code
          AND l.is_cultivated
          AND l.geom && pc.geom AND ST_Intersects(l.geom, pc.geom)
    ) cult ON true
    LEFT JOIN LATERAL (
        SELECT ST_Union(z.geom) AS geom
        FROM weipian.plan_zone_part z
        WHERE pl.has_ubg AND pc.class = 'illegal'
          AND z.county_code = p.county_code
          AND z.gklx = '城镇开发边界'
          AND z.geom && pc.geom AND ST_Intersects(z.geom, pc.geom)
    ) ubg ON true
    LEFT JOIN LATERAL (
        SELECT ST_Union(z.geom) AS geom
        FROM weipian.plan_zone_part z
        WHERE pl.has_eco AND pc.class = 'illegal'
          AND z.county_code = p.county_code
          AND z.gklx = '生态保护红线'
          AND z.geom && pc.geom AND ST_Intersects(z.geom, pc.geom)
    ) eco ON true
)
SELECT p.id, j.auto_class, j.class, j.sfbh, j.pdlx, p.area_m2,
       m.class, m.subtype, m.xzqdm, m.geom, m.area_m2, m.cultivated_m2, m.farmland_m2,
       m.outside_ubg_m2, m.in_eco_m2
FROM polygon p
CROSS JOIN judgement j
LEFT JOIN measured m ON true
$fn$;

COMMENT ON FUNCTION weipian.classify_polygon(bigint, double precision) IS
    '一个监测图斑的内业判定、最终认定与分块（按乡镇切分并量算面积、耕地、永久基本农田）';
