-- 0026 the ids of the bulk layers are handed out a thousand at a time.
--
-- Every parcel copied into weipian.landuse or weipian.farmland takes its id
-- from the table's identity sequence; one at a time (CACHE 1) that locks the
-- sequence's page for each row, 5 % of the server's time in a 300 000-parcel
-- load. With CACHE 1000 a session takes a thousand ids at once and hands them
-- out from memory. The ids stay unique and increasing within a load; a
-- session that ends leaves the rest of its thousand unused (gaps, which
-- nothing reads).

ALTER TABLE weipian.landuse ALTER COLUMN id SET CACHE 1000;
ALTER TABLE weipian.farmland ALTER COLUMN id SET CACHE 1000;
