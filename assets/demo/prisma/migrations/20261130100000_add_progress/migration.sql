-- CreateTable
CREATE TABLE "Progress" (
    "taskId" TEXT NOT NULL,
    "data" JSONB NOT NULL,
    "expiresAt" TIMESTAMP(3) NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "Progress_pkey" PRIMARY KEY ("taskId")
);

-- CreateIndex
CREATE INDEX "Progress_expiresAt_idx" ON "Progress"("expiresAt");
