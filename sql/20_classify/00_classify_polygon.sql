-- Classify one change polygon P: desk pieces → judgement → final pieces →
-- township pieces, each measured. Installed by pipeline/classify.py when this
-- file changes (not run per batch); called by 20_pieces.sql once per polygon,
-- in parallel workers.
--
-- Why one function per polygon: every rule of domain.md is local to P, so all
-- of P's pieces come from the few reference polygons near P (index candidates,
-- never a whole-layer union), and the polygons of a batch can be shared out
-- among CPU cores. The function looks those reference polygons up in one
-- statement (one GiST probe per layer; PL/pgSQL keeps its plan for the session)
-- and does the geometry step by step, so that a polygon pays only for the
-- overlays it needs: most are covered by one approval, one township part, or
-- touch no construction land, and need no cut at all. 20_pieces.sql passes what
-- is the same for every polygon or found by joins (its rule, the effective field
-- check, the class order, whether the plan layer has 城镇开发边界 / 生态保护红线).
-- (An SQL function of CTEs started a new executor with all its plan nodes for
-- every polygon, and cut and measured with every candidate even where one
-- covered P.)
--
-- Arguments: p_id, cc, pg, rule, hsx   P's id, county, geometry, rule (construction /
--                                      facility / agricultural; unknown BHLX →
--                                      construction, Decision 4) and HSX
--            fc_sfbh, fc_pdlx          the effective field check (Decision 1), or NULL
--            class_order               the classes by priority (weipian.land_judgement)
--            has_ubg, has_eco          whether the county's plan layer has them
--            p_min_part_m2             the setting min_part_m2
--
-- The steps, in order (the rules are those of domain.md, Decisions 1–6):
--   near      the reference polygons near P:
--               C  construction land (DLTB of the construction group) touching P
--               耕地 parcels touching P, with KCXS (a fraction)
--               approvals whose box overlaps P's, as sets (Decision 4; unknown PZLX
--               are judged as construction permits):
--                 V  PZRQ <= HSX, not 设施农用地, not an expired 临时用地
--                 VY those of V dated in Y, the year of HSX (Decision 3)
--                 F  设施农用地 with PZRQ <= HSX
--                 L  any type with PZRQ > HSX
--                 E  expired 临时用地 (YXQZ < HSX; without YXQZ it never expires)
--               永久基本农田 touching P (small blocks as they are, large ones as
--               their parts in weipian.farmland_part)
--               township parts (weipian.township_part) whose box overlaps P's
--               plan zone parts (weipian.plan_zone_part), only for illegal pieces
--   desk      the desk pieces, a partition of P:
--               BHLX 农用地 → all of P agri_adjust;  P ∩ C → unchanged;
--               BHLX 设施农用地 → (P − C) ∩ F agri_adjust, the rest illegal 未备案设施农用地;
--               BHLX 建设用地/推填土 → (P − C) ∩ V legal (∩ VY 本年批准本年建设, else
--               往年批准本年建设), the rest illegal: ∩ L 未批先建, then ∩ E 临时用地超期,
--               then 未报即用.
--             Each cut x ∩ S / x − S looks at S's candidates near x first: x within
--             one of them → all of x inside (no overlay); none overlapping x → all
--             of x outside; else the union of those near x (one as it is), cut.
--   judgement desk class: the first of illegal, legal, agri_adjust, unchanged whose
--             ellipsoidal area reaches min_part_m2, else the largest, ties in that
--             order (Decision 6); final class from the field check:
--             SFBH = 否 → unchanged; a PDLX other than the desk class → that class
--   final     the desk pieces where the final class is the desk class; else all of
--             P in the final class, sub-types by Decision 2
--   split     the final pieces cut by township: nothing to cut when one township
--             part covers P, or when P lies across parts of one township only that
--             together cover it (what is left of P after taking away each part in
--             turn is covered by the next); else per township the union of its parts
--             touching P, and the part outside every township has xzqdm NULL
--             (Decision 5)
--   measured  each piece's ellipsoidal area (Decision 11: once per piece; a piece
--             that is all of P, or a desk piece kept whole, keeps the area already
--             measured), 耕地 net of KCXS, 永久基本农田 (the union of the blocks
--             touching the piece, overlaps once: one block covering the piece, all
--             of it; blocks whose cuts of the piece do not overlap, the sum of the
--             cuts; else the piece cut by their union), both as planar shares of the
--             piece scaled by its ellipsoidal / planar ratio (the scale of the
--             projection hardly varies across one piece: < 1e-6 relative), and for
--             illegal pieces the area outside 城镇开发边界 / inside 生态保护红线 when the
--             plan layer has them
-- Output: one row per piece, with P's judgement on every row (and one row with
-- NULL piece columns if P had no piece at all).
-- etldoc: landuse, approval, approval_type, farmland, farmland_part -> classify_polygon
-- etldoc: township_part, plan_zone_part -> classify_polygon

-- earlier versions had other arguments: drop those (this one is replaced in place)
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'weipian'::regnamespace AND p.proname = 'classify_polygon'
               AND p.oid IS DISTINCT FROM to_regprocedure('weipian.classify_polygon(bigint, text, geometry, text, '
                                                          'date, text, text, text[], boolean, boolean, double precision)') LOOP
        EXECUTE 'DROP FUNCTION ' || f::text;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION weipian.classify_polygon(
    p_id bigint, cc text, pg geometry, rule text, hsx date,
    fc_sfbh text, fc_pdlx text, class_order text[], has_ubg boolean, has_eco boolean,
    p_min_part_m2 double precision)
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
LANGUAGE plpgsql STABLE PARALLEL SAFE COST 100000 ROWS 3
AS $fn$
#variable_conflict use_column
DECLARE
    -- near P
    fm_g      geometry[];
    tz_code   text[];
    tz_geom   geometry[];
    pz_done   boolean := false;
    pz_ubg    geometry[];
    pz_eco    geometry[];
    lu_c      geometry[];
    cu_g      geometry[];
    cu_k      double precision[];
    ap_v      geometry[];
    ap_vy     geometry[];
    ap_f      geometry[];
    ap_l      geometry[];
    ap_e      geometry[];
    p_area    double precision;   -- ellipsoidal area of P
    -- desk pieces (class, sub-type, geometry, ellipsoidal area)
    d_class   text[] := '{}';
    d_sub     text[] := '{}';
    d_geom    geometry[] := '{}';
    d_area    double precision[] := '{}';
    -- final pieces (area NULL: not measured yet)
    f_class   text[];
    f_sub     text[];
    f_geom    geometry[];
    f_area    double precision[];
    -- township pieces
    s_class   text[] := '{}';
    s_sub     text[] := '{}';
    s_xzq     text[] := '{}';
    s_geom    geometry[] := '{}';
    s_area    double precision[] := '{}';
    -- a cut x ∩ S / x − S
    x         geometry;
    x_p       boolean;            -- x is P itself
    cand      geometry[];
    sel       geometry[];
    cuts      geometry[];
    covered   boolean;
    u         geometry;
    inside    geometry;
    outside   geometry;
    legal     geometry;
    legal_p   boolean;
    illegal   geometry;
    illegal_p boolean;
    rest      geometry;
    rest_p    boolean;
    -- judgement
    a_sum     double precision;
    best      text;
    best_reach boolean;
    best_sum  double precision;
    jclass    text;
    g_vy      geometry;
    g_l       geometry;
    g_e       geometry;
    -- townships
    home      text;
    p_code    text[];
    p_geom    geometry[];
    t_code    text[];
    t_geom    geometry[];
    touching  geometry[];
    -- measures
    pc        geometry;
    whole     boolean;
    a         double precision;
    ratio     double precision;
    m2        double precision;
    n         integer;
    i         integer;
    j         integer;
    k         integer;
BEGIN
    -- ------------------------------------------------------------------ near
    -- "touching P" is tested as ST_DWithin(g, P, 0): the same answer as ST_Intersects
    -- (distance 0), in PostGIS's own code, about twice as fast for polygons of
    -- tens of vertices as the full intersection matrix GEOS computes. It brings
    -- its own index condition (g && P); written out as well, the GiST scan would
    -- test each entry twice. The plan is made once per session (plan_cache_mode
    -- in pipeline/classify.py).
    SELECT lu.c, lu.cult, lu.kcxs, ap.v, ap.vy, ap.f, ap.l, ap.e, fm.g, tp.xzqdm, tp.g
    INTO lu_c, cu_g, cu_k, ap_v, ap_vy, ap_f, ap_l, ap_e, fm_g, tz_code, tz_geom
    FROM (SELECT array_agg(l.geom) FILTER (WHERE l.land_group = 'construction') AS c,
                 array_agg(l.geom) FILTER (WHERE l.is_cultivated) AS cult,
                 array_agg(l.kcxs) FILTER (WHERE l.is_cultivated) AS kcxs
          FROM weipian.landuse l
          WHERE l.county_code = cc AND (l.land_group = 'construction' OR l.is_cultivated)
            AND ST_DWithin(l.geom, pg, 0)) lu,
         (SELECT array_agg(a.geom) FILTER (WHERE a.v) AS v,
                 array_agg(a.geom) FILTER (WHERE a.v AND extract(year FROM a.pzrq) = extract(year FROM hsx)) AS vy,
                 array_agg(a.geom) FILTER (WHERE a.role = 'facility' AND a.pzrq <= hsx) AS f,
                 array_agg(a.geom) FILTER (WHERE a.pzrq > hsx) AS l,
                 array_agg(a.geom) FILTER (WHERE a.expired) AS e
          FROM (SELECT x.geom, x.pzrq, r.role,
                       x.pzrq <= hsx AND r.role <> 'facility'
                         AND NOT (r.role = 'temporary' AND x.yxqz IS NOT NULL AND x.yxqz < hsx) AS v,
                       r.role = 'temporary' AND x.yxqz IS NOT NULL AND x.yxqz < hsx AS expired
                FROM weipian.approval x
                LEFT JOIN weipian.approval_type t ON t.pzlx = x.pzlx
                CROSS JOIN LATERAL (SELECT coalesce(t.role, 'construction') AS role) r
                WHERE x.county_code = cc AND x.geom && pg) a) ap,
         (SELECT array_agg(f.geom) AS g
          FROM (SELECT f.geom FROM weipian.farmland f
                WHERE f.county_code = cc AND ST_NPoints(f.geom) <= 128 AND ST_DWithin(f.geom, pg, 0)
                UNION ALL
                SELECT f.geom FROM weipian.farmland_part f
                WHERE f.county_code = cc AND ST_DWithin(f.geom, pg, 0)) f) fm,
         (SELECT array_agg(t.xzqdm) AS xzqdm, array_agg(t.geom) AS g
          FROM weipian.township_part t
          WHERE t.county_code = cc AND t.geom && pg) tp;
    p_area := weipian.area_m2(pg);

    -- ------------------------------------------------------------------ desk
    IF rule = 'agricultural' THEN
        d_class := ARRAY['agri_adjust']; d_sub := ARRAY[NULL::text]; d_geom := ARRAY[pg]; d_area := ARRAY[p_area];
    ELSE
        -- the cut (inside, outside) = (x ∩ S, x − S) is written out below for each
        -- set S (PL/pgSQL has no local functions); x_p tracks whether x is P itself,
        -- whose area is known
        -- P ∩ C → unchanged
        x := pg; x_p := true; cand := lu_c;
        sel := '{}'; covered := false;
        FOR i IN 1 .. coalesce(cardinality(cand), 0) LOOP
            IF x && cand[i] THEN
                IF ST_Covers(cand[i], x) THEN covered := true; EXIT; END IF;
                sel := sel || cand[i];
            END IF;
        END LOOP;
        IF covered THEN inside := x; outside := NULL;
        ELSIF cardinality(sel) = 0 THEN inside := NULL; outside := x;
        ELSE
            u := CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END;
            inside := weipian.inter(x, u);
            outside := CASE WHEN inside IS NULL THEN x ELSE weipian.diff(x, u) END;
        END IF;
        IF inside IS NOT NULL THEN
            d_class := d_class || 'unchanged'::text; d_sub := d_sub || NULL::text; d_geom := d_geom || inside;
            d_area := d_area || CASE WHEN outside IS NULL THEN p_area ELSE weipian.area_m2(inside) END;
        END IF;
        rest := outside; rest_p := inside IS NULL;

        IF rest IS NOT NULL AND rule = 'facility' THEN
            -- (P − C) ∩ F → agri_adjust, the rest 未备案设施农用地
            x := rest; x_p := rest_p; cand := ap_f;
            sel := '{}'; covered := false;
            FOR i IN 1 .. coalesce(cardinality(cand), 0) LOOP
                IF x && cand[i] THEN
                    IF ST_Covers(cand[i], x) THEN covered := true; EXIT; END IF;
                    sel := sel || cand[i];
                END IF;
            END LOOP;
            IF covered THEN inside := x; outside := NULL;
            ELSIF cardinality(sel) = 0 THEN inside := NULL; outside := x;
            ELSE
                u := CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END;
                inside := weipian.inter(x, u);
                outside := CASE WHEN inside IS NULL THEN x ELSE weipian.diff(x, u) END;
            END IF;
            IF inside IS NOT NULL THEN
                d_class := d_class || 'agri_adjust'::text; d_sub := d_sub || NULL::text; d_geom := d_geom || inside;
                d_area := d_area || CASE WHEN outside IS NULL AND x_p THEN p_area ELSE weipian.area_m2(inside) END;
            END IF;
            IF outside IS NOT NULL THEN
                d_class := d_class || 'illegal'::text; d_sub := d_sub || 'ssny_wba'::text; d_geom := d_geom || outside;
                d_area := d_area || CASE WHEN inside IS NULL AND x_p THEN p_area ELSE weipian.area_m2(outside) END;
            END IF;

        ELSIF rest IS NOT NULL THEN
            -- (P − C) ∩ V → legal, the rest illegal
            x := rest; x_p := rest_p; cand := ap_v;
            sel := '{}'; covered := false;
            FOR i IN 1 .. coalesce(cardinality(cand), 0) LOOP
                IF x && cand[i] THEN
                    IF ST_Covers(cand[i], x) THEN covered := true; EXIT; END IF;
                    sel := sel || cand[i];
                END IF;
            END LOOP;
            IF covered THEN inside := x; outside := NULL;
            ELSIF cardinality(sel) = 0 THEN inside := NULL; outside := x;
            ELSE
                u := CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END;
                inside := weipian.inter(x, u);
                outside := CASE WHEN inside IS NULL THEN x ELSE weipian.diff(x, u) END;
            END IF;
            legal := inside; legal_p := x_p AND outside IS NULL;
            illegal := outside; illegal_p := x_p AND inside IS NULL;

            IF legal IS NOT NULL THEN
                -- ∩ VY → 本年批准本年建设, the rest 往年批准本年建设
                x := legal; x_p := legal_p; cand := ap_vy;
                sel := '{}'; covered := false;
                FOR i IN 1 .. coalesce(cardinality(cand), 0) LOOP
                    IF x && cand[i] THEN
                        IF ST_Covers(cand[i], x) THEN covered := true; EXIT; END IF;
                        sel := sel || cand[i];
                    END IF;
                END LOOP;
                IF covered THEN inside := x; outside := NULL;
                ELSIF cardinality(sel) = 0 THEN inside := NULL; outside := x;
                ELSE
                    u := CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END;
                    inside := weipian.inter(x, u);
                    outside := CASE WHEN inside IS NULL THEN x ELSE weipian.diff(x, u) END;
                END IF;
                IF inside IS NOT NULL THEN
                    d_class := d_class || 'legal'::text; d_sub := d_sub || 'bnpbj'::text; d_geom := d_geom || inside;
                    d_area := d_area || CASE WHEN outside IS NULL AND x_p THEN p_area ELSE weipian.area_m2(inside) END;
                END IF;
                IF outside IS NOT NULL THEN
                    d_class := d_class || 'legal'::text; d_sub := d_sub || 'wnpbj'::text; d_geom := d_geom || outside;
                    d_area := d_area || CASE WHEN inside IS NULL AND x_p THEN p_area ELSE weipian.area_m2(outside) END;
                END IF;
            END IF;

            IF illegal IS NOT NULL THEN
                -- ∩ L → 未批先建
                x := illegal; x_p := illegal_p; cand := ap_l;
                sel := '{}'; covered := false;
                FOR i IN 1 .. coalesce(cardinality(cand), 0) LOOP
                    IF x && cand[i] THEN
                        IF ST_Covers(cand[i], x) THEN covered := true; EXIT; END IF;
                        sel := sel || cand[i];
                    END IF;
                END LOOP;
                IF covered THEN inside := x; outside := NULL;
                ELSIF cardinality(sel) = 0 THEN inside := NULL; outside := x;
                ELSE
                    u := CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END;
                    inside := weipian.inter(x, u);
                    outside := CASE WHEN inside IS NULL THEN x ELSE weipian.diff(x, u) END;
                END IF;
                IF inside IS NOT NULL THEN
                    d_class := d_class || 'illegal'::text; d_sub := d_sub || 'wpxj'::text; d_geom := d_geom || inside;
                    d_area := d_area || CASE WHEN outside IS NULL AND x_p THEN p_area ELSE weipian.area_m2(inside) END;
                END IF;
                rest := outside; rest_p := x_p AND inside IS NULL;

                IF rest IS NOT NULL THEN
                    -- then ∩ E → 临时用地超期, the rest 未报即用
                    x := rest; x_p := rest_p; cand := ap_e;
                    sel := '{}'; covered := false;
                    FOR i IN 1 .. coalesce(cardinality(cand), 0) LOOP
                        IF x && cand[i] THEN
                            IF ST_Covers(cand[i], x) THEN covered := true; EXIT; END IF;
                            sel := sel || cand[i];
                        END IF;
                    END LOOP;
                    IF covered THEN inside := x; outside := NULL;
                    ELSIF cardinality(sel) = 0 THEN inside := NULL; outside := x;
                    ELSE
                        u := CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END;
                        inside := weipian.inter(x, u);
                        outside := CASE WHEN inside IS NULL THEN x ELSE weipian.diff(x, u) END;
                    END IF;
                    IF inside IS NOT NULL THEN
                        d_class := d_class || 'illegal'::text; d_sub := d_sub || 'lsyd_cq'::text; d_geom := d_geom || inside;
                        d_area := d_area || CASE WHEN outside IS NULL AND x_p THEN p_area ELSE weipian.area_m2(inside) END;
                    END IF;
                    IF outside IS NOT NULL THEN
                        d_class := d_class || 'illegal'::text; d_sub := d_sub || 'wbjy'::text; d_geom := d_geom || outside;
                        d_area := d_area || CASE WHEN inside IS NULL AND x_p THEN p_area ELSE weipian.area_m2(outside) END;
                    END IF;
                END IF;
            END IF;
        END IF;
    END IF;

    -- ------------------------------------------------------------------ judgement
    -- classes in priority order: the first reaching min_part_m2 wins; if none
    -- does, the largest (the earlier on a tie)
    FOR k IN 1 .. cardinality(class_order) LOOP
        a_sum := 0;
        FOR i IN 1 .. cardinality(d_class) LOOP
            IF d_class[i] = class_order[k] THEN a_sum := a_sum + d_area[i]; END IF;
        END LOOP;
        IF best IS NULL
           OR (a_sum >= p_min_part_m2 AND NOT best_reach)
           OR (NOT best_reach AND a_sum > best_sum) THEN
            best := class_order[k]; best_reach := a_sum >= p_min_part_m2; best_sum := a_sum;
        END IF;
    END LOOP;
    jclass := CASE WHEN fc_sfbh = '否' THEN 'unchanged'
                   WHEN fc_pdlx IS NOT NULL AND fc_pdlx <> best THEN fc_pdlx
                   ELSE best END;
    change_id := p_id; auto_class := best; final_class := jclass;
    sfbh := fc_sfbh; pdlx := fc_pdlx; polygon_m2 := p_area;

    -- ------------------------------------------------------------------ final pieces
    -- the desk pieces stay when the final class is the desk class, except after
    -- SFBH = 否: all of P unchanged, whatever the desk pieces (domain.md)
    IF jclass = best AND fc_sfbh IS DISTINCT FROM '否' THEN
        f_class := d_class; f_sub := d_sub; f_geom := d_geom; f_area := d_area;
    ELSIF jclass = 'unchanged' OR jclass = 'agri_adjust' OR (jclass = 'illegal' AND rule = 'facility') THEN
        f_class := ARRAY[jclass]; f_sub := ARRAY[CASE WHEN jclass = 'illegal' THEN 'ssny_wba' END];
        f_geom := ARRAY[pg]; f_area := ARRAY[p_area];
    ELSE
        -- all of P legal or illegal, sub-types by Decision 2 (areas measured below)
        f_class := '{}'; f_sub := '{}'; f_geom := '{}'; f_area := '{}';
        IF jclass = 'legal' THEN
            g_vy := CASE WHEN cardinality(ap_vy) = 1 THEN ap_vy[1] WHEN cardinality(ap_vy) > 1 THEN ST_Union(ap_vy) END;
            inside := weipian.inter(pg, g_vy);
            outside := weipian.diff(pg, g_vy);
            IF inside IS NOT NULL THEN
                f_class := f_class || 'legal'::text; f_sub := f_sub || 'bnpbj'::text; f_geom := f_geom || inside; f_area := f_area || NULL::double precision;
            END IF;
            IF outside IS NOT NULL THEN
                f_class := f_class || 'legal'::text; f_sub := f_sub || 'wnpbj'::text; f_geom := f_geom || outside; f_area := f_area || NULL::double precision;
            END IF;
        ELSE
            g_l := CASE WHEN cardinality(ap_l) = 1 THEN ap_l[1] WHEN cardinality(ap_l) > 1 THEN ST_Union(ap_l) END;
            g_e := CASE WHEN cardinality(ap_e) = 1 THEN ap_e[1] WHEN cardinality(ap_e) > 1 THEN ST_Union(ap_e) END;
            inside := weipian.inter(pg, g_l);
            rest := weipian.diff(pg, g_l);
            IF inside IS NOT NULL THEN
                f_class := f_class || 'illegal'::text; f_sub := f_sub || 'wpxj'::text; f_geom := f_geom || inside; f_area := f_area || NULL::double precision;
            END IF;
            inside := weipian.inter(rest, g_e);
            outside := weipian.diff(rest, g_e);
            IF inside IS NOT NULL THEN
                f_class := f_class || 'illegal'::text; f_sub := f_sub || 'lsyd_cq'::text; f_geom := f_geom || inside; f_area := f_area || NULL::double precision;
            END IF;
            IF outside IS NOT NULL THEN
                f_class := f_class || 'illegal'::text; f_sub := f_sub || 'wbjy'::text; f_geom := f_geom || outside; f_area := f_area || NULL::double precision;
            END IF;
        END IF;
    END IF;
    n := cardinality(f_class);

    -- ------------------------------------------------------------------ split by township
    -- the township part holding all of P, if one does (most polygons): then no
    -- piece needs cutting and every piece keeps its area
    FOR i IN 1 .. coalesce(cardinality(tz_code), 0) LOOP
        IF ST_Covers(tz_geom[i], pg) THEN
            home := tz_code[i];
            EXIT;
        END IF;
    END LOOP;
    IF home IS NULL THEN
        -- else the parts touching P, and their townships
        p_code := '{}'; p_geom := '{}'; t_code := '{}';
        FOR i IN 1 .. coalesce(cardinality(tz_code), 0) LOOP
            IF ST_Intersects(tz_geom[i], pg) THEN
                p_code := p_code || tz_code[i]; p_geom := p_geom || tz_geom[i];
                IF tz_code[i] <> ALL (t_code) THEN t_code := t_code || tz_code[i]; END IF;
            END IF;
        END LOOP;
        -- parts of one township only that together cover P (P across a cut of
        -- ST_Subdivide): that township holds all of P. Covered: what is left of P
        -- after taking away each part in turn (none of them covers P) is covered
        -- by the last one.
        IF cardinality(t_code) = 1 AND cardinality(p_geom) > 1 THEN
            rest := pg;
            FOR i IN 1 .. cardinality(p_geom) - 1 LOOP
                rest := weipian.diff(rest, p_geom[i]);
                IF rest IS NULL OR ST_Covers(p_geom[i + 1], rest) THEN
                    home := t_code[1];
                    EXIT;
                END IF;
            END LOOP;
        END IF;
    END IF;
    IF home IS NOT NULL THEN
        s_class := f_class; s_sub := f_sub; s_geom := f_geom; s_area := f_area;
        s_xzq := array_fill(home, ARRAY[n]);
    ELSIF n > 0 THEN
        -- per township, the union of its parts touching P
        t_geom := '{}';
        FOR k IN 1 .. cardinality(t_code) LOOP
            sel := '{}';
            FOR i IN 1 .. cardinality(p_code) LOOP
                IF p_code[i] = t_code[k] THEN sel := sel || p_geom[i]; END IF;
            END LOOP;
            t_geom := t_geom || CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END;
        END LOOP;
        -- each final piece: whole in a township that covers it, else cut by each
        -- township it touches, and what lies outside every township (xzqdm NULL)
        FOR k IN 1 .. n LOOP
            whole := f_geom[k] = pg;    -- all of P: it touches every township here
            covered := false; touching := '{}';
            FOR i IN 1 .. cardinality(t_code) LOOP
                IF whole OR (t_geom[i] && f_geom[k] AND ST_Intersects(t_geom[i], f_geom[k])) THEN
                    touching := touching || t_geom[i];
                    IF ST_Covers(t_geom[i], f_geom[k]) THEN
                        covered := true;
                        s_class := s_class || f_class[k]; s_sub := s_sub || f_sub[k]; s_xzq := s_xzq || t_code[i];
                        s_geom := s_geom || f_geom[k]; s_area := s_area || f_area[k];
                    ELSE
                        inside := weipian.inter(f_geom[k], t_geom[i]);
                        IF inside IS NOT NULL THEN
                            s_class := s_class || f_class[k]; s_sub := s_sub || f_sub[k]; s_xzq := s_xzq || t_code[i];
                            s_geom := s_geom || inside; s_area := s_area || NULL::double precision;
                        END IF;
                    END IF;
                END IF;
            END LOOP;
            IF NOT covered THEN
                outside := f_geom[k]; a := f_area[k];
                IF cardinality(touching) = 1 THEN
                    outside := weipian.diff(f_geom[k], touching[1]); a := NULL;
                ELSIF cardinality(touching) > 1 THEN
                    -- nothing outside when the townships together cover the piece (tested
                    -- as above: none covers it alone); else cut off their union
                    a := NULL; rest := f_geom[k];
                    FOR i IN 1 .. cardinality(touching) - 1 LOOP
                        rest := weipian.diff(rest, touching[i]);
                        IF rest IS NULL OR ST_Covers(touching[i + 1], rest) THEN
                            outside := NULL;
                            EXIT;
                        END IF;
                    END LOOP;
                    IF outside IS NOT NULL THEN
                        outside := weipian.diff(f_geom[k], ST_Union(touching));
                    END IF;
                END IF;
                IF outside IS NOT NULL THEN
                    s_class := s_class || f_class[k]; s_sub := s_sub || f_sub[k]; s_xzq := s_xzq || NULL::text;
                    s_geom := s_geom || outside; s_area := s_area || a;
                END IF;
            END IF;
        END LOOP;
    END IF;

    n := cardinality(s_class);
    IF n = 0 THEN
        RETURN NEXT;
        RETURN;
    END IF;

    -- ------------------------------------------------------------------ measured
    FOR k IN 1 .. n LOOP
        pc := s_geom[k];
        whole := pc = pg;    -- all of P: every candidate touches it
        a := coalesce(s_area[k], weipian.area_m2(pc));
        ratio := a / nullif(ST_Area(pc), 0);
        -- 耕地 net of KCXS
        m2 := 0;
        FOR i IN 1 .. coalesce(cardinality(cu_g), 0) LOOP
            IF whole OR (cu_g[i] && pc AND ST_DWithin(cu_g[i], pc, 0)) THEN
                m2 := m2 + coalesce(ST_Area(ST_Intersection(pc, cu_g[i])), 0) * (1 - cu_k[i]);
            END IF;
        END LOOP;
        cultivated_m2 := coalesce(ratio * m2, 0);
        -- 永久基本农田: the area of the union of the blocks touching the piece. One
        -- block covering it: all of it; else the piece cut by each block, and when
        -- no two of those cuts overlap (blocks that only share edges) their sum,
        -- else the piece cut by the union of the blocks
        sel := '{}'; covered := false;
        FOR i IN 1 .. coalesce(cardinality(fm_g), 0) LOOP
            IF whole OR (fm_g[i] && pc AND ST_DWithin(fm_g[i], pc, 0)) THEN
                IF ST_Covers(fm_g[i], pc) THEN covered := true; EXIT; END IF;
                sel := sel || fm_g[i];
            END IF;
        END LOOP;
        IF covered THEN
            m2 := ST_Area(pc);
        ELSIF cardinality(sel) = 0 THEN
            m2 := 0;
        ELSIF cardinality(sel) = 1 THEN
            m2 := coalesce(ST_Area(ST_Intersection(pc, sel[1])), 0);
        ELSE
            cuts := '{}'; m2 := 0;
            FOR i IN 1 .. cardinality(sel) LOOP
                x := weipian.inter(pc, sel[i]);
                IF x IS NOT NULL THEN
                    FOR j IN 1 .. cardinality(cuts) LOOP
                        IF x && cuts[j] AND ST_Relate(x, cuts[j], '2********') THEN
                            m2 := NULL;    -- blocks overlapping here: count them once
                        END IF;
                    END LOOP;
                    EXIT WHEN m2 IS NULL;
                    cuts := cuts || x; m2 := m2 + ST_Area(x);
                END IF;
            END LOOP;
            IF m2 IS NULL THEN
                m2 := coalesce(ST_Area(ST_Intersection(pc, ST_Union(sel))), 0);
            END IF;
        END IF;
        farmland_m2 := coalesce(ratio * m2, 0);
        -- illegal pieces: the area outside 城镇开发边界 and inside 生态保护红线
        outside_ubg_m2 := NULL; in_eco_m2 := NULL;
        IF s_class[k] = 'illegal' AND (has_ubg OR has_eco) AND NOT pz_done THEN
            SELECT array_agg(z.geom) FILTER (WHERE z.gklx = '城镇开发边界'),
                   array_agg(z.geom) FILTER (WHERE z.gklx = '生态保护红线')
            INTO pz_ubg, pz_eco
            FROM weipian.plan_zone_part z
            WHERE z.county_code = cc AND z.geom && pg;
            pz_done := true;
        END IF;
        IF s_class[k] = 'illegal' AND has_ubg THEN
            sel := '{}'; covered := false;
            FOR i IN 1 .. coalesce(cardinality(pz_ubg), 0) LOOP
                IF pz_ubg[i] && pc AND ST_DWithin(pz_ubg[i], pc, 0) THEN
                    IF ST_Covers(pz_ubg[i], pc) THEN covered := true; EXIT; END IF;
                    sel := sel || pz_ubg[i];
                END IF;
            END LOOP;
            outside_ubg_m2 := CASE WHEN covered THEN 0
                                   WHEN cardinality(sel) = 0 THEN a
                                   ELSE coalesce(weipian.area_m2(weipian.diff(pc, CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END)), 0)
                              END;
        END IF;
        IF s_class[k] = 'illegal' AND has_eco THEN
            sel := '{}'; covered := false;
            FOR i IN 1 .. coalesce(cardinality(pz_eco), 0) LOOP
                IF pz_eco[i] && pc AND ST_DWithin(pz_eco[i], pc, 0) THEN
                    IF ST_Covers(pz_eco[i], pc) THEN covered := true; EXIT; END IF;
                    sel := sel || pz_eco[i];
                END IF;
            END LOOP;
            in_eco_m2 := CASE WHEN covered THEN a
                              WHEN cardinality(sel) = 0 THEN 0
                              ELSE coalesce(weipian.area_m2(weipian.inter(pc, CASE WHEN cardinality(sel) = 1 THEN sel[1] ELSE ST_Union(sel) END)), 0)
                         END;
        END IF;
        class := s_class[k]; subtype := s_sub[k]; xzqdm := s_xzq[k]; geom := pc; area_m2 := a;
        RETURN NEXT;
    END LOOP;
END
$fn$;

COMMENT ON FUNCTION weipian.classify_polygon(bigint, text, geometry, text, date, text, text, text[],
                                             boolean, boolean, double precision) IS
    '一个监测图斑的内业判定、最终认定与分块（按乡镇切分并量算面积、耕地、永久基本农田）';
