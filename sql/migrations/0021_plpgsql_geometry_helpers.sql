-- 0021 the geometry helpers of 0002 (area_m2, polygonal, inter, diff) in PL/pgSQL.
--
-- Same results; only how PostgreSQL runs them changes. As SQL functions they
-- cannot be inlined (a parameter is used twice, or there is a FROM clause), so
-- each call inside weipian.classify_polygon started a small executor, and each
-- ST_Transform call site looked its CRS up in spatial_ref_sys and built its PROJ
-- transformation again. A PL/pgSQL simple expression keeps its evaluation state
-- for the transaction, so the CRS lookup and PROJ setup happen once.

CREATE OR REPLACE FUNCTION weipian.area_m2(g geometry) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN coalesce(ST_Area(ST_Transform(g, 4490)::geography), 0);
END
$$;

CREATE OR REPLACE FUNCTION weipian.polygonal(g geometry) RETURNS geometry
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m geometry := ST_Multi(ST_CollectionExtract(g, 3));
BEGIN
    IF m IS NULL OR ST_IsEmpty(m) THEN
        RETURN NULL;
    END IF;
    RETURN m;
END
$$;

CREATE OR REPLACE FUNCTION weipian.inter(a geometry, b geometry) RETURNS geometry
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF a IS NULL OR b IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN weipian.polygonal(ST_Intersection(a, b));
END
$$;

CREATE OR REPLACE FUNCTION weipian.diff(a geometry, b geometry) RETURNS geometry
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF a IS NULL THEN
        RETURN NULL;
    ELSIF b IS NULL THEN
        RETURN a;
    END IF;
    RETURN weipian.polygonal(ST_Difference(a, b));
END
$$;
