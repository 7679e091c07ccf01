-- 0027 no B-tree on weipian.landuse (county_code).
--
-- No statement of weipian reads it: the classification finds a polygon's
-- parcels through the GiST index (filtering on county_code as it goes; the
-- generic plan that ANDed the GiST probe with this B-tree read a county's
-- 300 000 entries per polygon, which is why bitmap scans are off there), a
-- replaced load's rows go by source_id, and in a whole province run it was not
-- scanned once (pg_stat_user_indexes). Building it again after every large
-- load cost 0.1 s per 300 000 parcels, and it took 9 MB. A QGIS layer of the
-- table filtered on one county still finds its features by the GiST index as
-- the map moves; counting a county's parcels reads the table.
-- weipian.farmland keeps its own: the subdivided parts (0020, 0025) select a
-- county's large blocks by it.

DROP INDEX IF EXISTS weipian.landuse_county_code_idx;
