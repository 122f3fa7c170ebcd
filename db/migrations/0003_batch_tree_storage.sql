-- Batch trees are random hashes (incompressible) and are read in 32-byte slices: store them uncompressed
-- out of line so substring() fetches only the TOAST chunks it needs.
ALTER TABLE "batches" ALTER COLUMN "tree" SET STORAGE EXTERNAL;
