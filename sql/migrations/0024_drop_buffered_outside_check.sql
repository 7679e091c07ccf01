-- 0024 drop the 4-argument weipian.ingest_geometry of 0010 (outside = beyond a
-- buffer of the county), replaced by the 5-argument one of 0023 (outside =
-- farther than the tolerance). Nothing calls it since 0023; left in place it
-- would be a second, different answer to "is this feature outside".

DROP FUNCTION IF EXISTS weipian.ingest_geometry(bytea, integer, integer, geometry);
