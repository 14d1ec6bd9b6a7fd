-- Sightline sample data for the Progress table (async task tracking), loaded once its migration
-- is applied: 500 summary-generation tasks, a fifth of them already expired.
INSERT INTO "Progress" ("taskId", "data", "expiresAt", "createdAt", "updatedAt")
SELECT 'task_' || substr(md5('task:' || i), 1, 20),
       jsonb_build_object('status', (ARRAY['queued', 'transcribing', 'summarizing', 'done', 'failed'])[1 + i % 5],
                          'percent', (i * 37) % 101,
                          'videoId', substr(md5('video:' || (i % 7919 + 1)), 1, 11)),
       timezone('UTC', now()) + make_interval(mins => (i * 7) % 1440 - 288),
       timezone('UTC', now()) - make_interval(mins => (i * 3) % 600),
       timezone('UTC', now()) - make_interval(mins => (i * 3) % 300)
FROM generate_series(1, 500) AS i;

ANALYZE "Progress";
