-- CreateIndex
CREATE INDEX "Summary_userId_createdAt_idx" ON "Summary"("userId", "createdAt");

-- CreateIndex
CREATE INDEX "Summary_videoId_idx" ON "Summary"("videoId");

-- CreateIndex
CREATE INDEX "Summary_userId_isFavorite_idx" ON "Summary"("userId", "isFavorite");

-- CreateIndex
CREATE INDEX "ShareLink_summaryId_idx" ON "ShareLink"("summaryId");

-- CreateIndex
CREATE INDEX "UsageEvent_userId_createdAt_idx" ON "UsageEvent"("userId", "createdAt");

-- CreateIndex
CREATE INDEX "UsageEvent_createdAt_idx" ON "UsageEvent"("createdAt");

-- CreateIndex
CREATE INDEX "Progress_userId_idx" ON "Progress"("userId");
