-- CreateIndex
-- Edited from Prisma's CREATE INDEX: CONCURRENTLY keeps Summary writable during the build.
-- It cannot run inside a transaction, so it is the only statement of its migration.
CREATE INDEX CONCURRENTLY "Summary_videoId_idx" ON "Summary"("videoId");
