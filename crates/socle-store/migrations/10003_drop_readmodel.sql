-- The first read model held every registered person with all their fields. It is replaced by the
-- per-ecosystem models (only people in scope, only granted fields), so it goes.
DROP TABLE IF EXISTS readmodel.persons;
DROP SCHEMA IF EXISTS readmodel;
