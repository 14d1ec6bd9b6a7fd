-- CreateIndex
-- Edited from Prisma's CREATE INDEX: CONCURRENTLY keeps UsageEvent writable during the build.
-- It cannot run inside a transaction, so it is the only statement of its migration.
CREATE INDEX CONCURRENTLY "UsageEvent_userId_eventType_createdAt_idx" ON "UsageEvent"("userId", "eventType", "createdAt");
