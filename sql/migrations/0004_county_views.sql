-- 0004 per-county views for QGIS: the result tables hold every county, each in
-- its own working CRS, so their geometry columns carry no SRID. These views give
-- each county a layer whose geometry column has the typmod QGIS wants
-- (geometry(MultiPolygon, <srid>)) and a unique integer key (id).

CREATE OR REPLACE FUNCTION weipian.refresh_county_views(code text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    srid integer;
    v    text := 'change_class_' || code;
    pv   text := 'change_piece_' || code;
BEGIN
    SELECT c.srid INTO STRICT srid FROM weipian.county c WHERE c.code = refresh_county_views.code;
    EXECUTE format($v$
        CREATE OR REPLACE VIEW weipian.%I AS
        SELECT r.id, r.batch, r.jcbh, r.xzqdm, r.xzqmc, r.class, j.name_zh AS class_zh,
               r.auto_class, r.area_m2, r.legal_m2, r.unchanged_m2, r.agri_m2, r.illegal_m2,
               r.cultivated_m2, r.farmland_m2, r.legal_cultivated_m2, r.illegal_cultivated_m2,
               r.illegal_farmland_m2, r.bnpbj_m2, r.wnpbj_m2, r.wpxj_m2, r.lsyd_cq_m2, r.wbjy_m2,
               r.ssny_wba_m2, r.illegal_outside_ubg_m2, r.illegal_in_eco_m2, r.bhlx, r.hsx,
               r.sfbh, r.pdlx,
               r.geom::geometry(MultiPolygon, %s) AS geom
        FROM weipian.change_result r
        JOIN weipian.land_judgement j ON j.class = r.class
        WHERE r.county_code = %L
    $v$, v, srid, code);
    EXECUTE format('COMMENT ON VIEW weipian.%I IS %L', v, code || ' 监测图斑认定结果（QGIS 图层）');
    EXECUTE format($v$
        CREATE OR REPLACE VIEW weipian.%I AS
        SELECT p.id, p.batch, p.jcbh, p.class, p.subtype, s.name_zh AS subtype_zh, p.xzqdm,
               p.area_m2, p.cultivated_m2, p.farmland_m2,
               p.geom::geometry(MultiPolygon, %s) AS geom
        FROM weipian.change_piece p
        LEFT JOIN weipian.subtype s ON s.subtype = p.subtype
        WHERE p.county_code = %L
    $v$, pv, srid, code);
    EXECUTE format('COMMENT ON VIEW weipian.%I IS %L', pv, code || ' 图斑分块（认定类型 × 乡镇 × 细分类型）');
END
$$;
COMMENT ON FUNCTION weipian.refresh_county_views(text) IS '为一个县创建 QGIS 可直接打开的视图 change_class_<代码>、change_piece_<代码>';
