-- Sightline sample data for `cutover demo` and the test suite.
--
-- Deterministic: every value derives from generate_series indexes (md5 of a label and the index
-- for ids and slugs; modular arithmetic for relations). Only timestamps move: they are relative to
-- the load time, so "the last 30 days" always means the last 30 days.
-- Ids look like Prisma's cuid() (25 characters starting with "c"); a row's id is recomputed from
-- its index wherever it is referenced, e.g. user k is 'c' || substr(md5('user:' || k), 1, 24).
-- Runs as one multi-statement script after the migrations (no psql meta-commands).
--
-- Rows: 1,000 users, 12 categories, 40 tags, 20,000 summaries (about 11% favourites), 40,000
-- summary-tag links, 2,000 share links, 50,000 usage events over the last 30 days, 5,000 progress rows.

INSERT INTO "User" ("id", "email", "name", "createdAt", "updatedAt")
SELECT 'c' || substr(md5('user:' || i), 1, 24),
       'user' || lpad(i::text, 4, '0') || '@example.com',
       CASE WHEN i % 10 = 0 THEN NULL
            ELSE (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Margaret','Linus','Ken','Radia'])[1 + i % 10]
                 || ' ' ||
                 (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Hamilton','Torvalds','Thompson','Perlman','Ritchie'])[1 + i % 11]
       END,
       timezone('UTC', now()) - make_interval(days => 30 + (i * 7) % 335, mins => (i * 37) % 1440),
       timezone('UTC', now()) - make_interval(days => (i * 3) % 30, mins => (i * 11) % 1440)
FROM generate_series(1, 1000) AS i;

INSERT INTO "Category" ("id", "name", "slug", "createdAt")
SELECT 'c' || substr(md5('category:' || c.n), 1, 24), c.name, c.slug,
       timezone('UTC', now()) - make_interval(days => 400 - c.n)
FROM (VALUES (1, 'Technology', 'technology'), (2, 'Science', 'science'),
             (3, 'Education', 'education'), (4, 'Business', 'business'),
             (5, 'Health & Fitness', 'health-fitness'), (6, 'History', 'history'),
             (7, 'Music', 'music'), (8, 'Gaming', 'gaming'),
             (9, 'Cooking', 'cooking'), (10, 'Travel', 'travel'),
             (11, 'Personal Finance', 'personal-finance'), (12, 'Productivity', 'productivity'))
     AS c (n, name, slug);

INSERT INTO "Tag" ("id", "name", "createdAt")
SELECT 'c' || substr(md5('tag:' || t.n), 1, 24), t.name,
       timezone('UTC', now()) - make_interval(days => 380 - t.n::int)
FROM unnest(ARRAY[
       'ai', 'machine-learning', 'python', 'rust', 'javascript', 'typescript', 'postgresql',
       'databases', 'devops', 'kubernetes', 'cloud', 'security', 'startups', 'marketing',
       'investing', 'economics', 'physics', 'biology', 'chemistry', 'space', 'climate',
       'nutrition', 'fitness', 'meditation', 'psychology', 'philosophy', 'design', 'ux',
       'photography', 'film', 'guitar', 'piano', 'recipes', 'baking', 'europe', 'asia',
       'interview', 'tutorial', 'lecture', 'podcast'
     ]) WITH ORDINALITY AS t (name, n);

-- Summary i belongs to user (i % 1000) + 1 and summarises video (i % 7919) + 1; 7919 is prime, so
-- (userId, videoId) never repeats for i <= 20,000 while popular videos recur across users.
INSERT INTO "Summary" ("id", "userId", "videoId", "title", "content", "categoryId", "isFavorite",
                       "metadata", "createdAt", "updatedAt")
SELECT 'c' || substr(md5('summary:' || s.i), 1, 24),
       'c' || substr(md5('user:' || (s.i % 1000 + 1)), 1, 24),
       s.video,
       format((ARRAY['How %s works', 'Why %s matters', 'Inside %s', 'Understanding %s',
                     'A beginner''s guide to %s', 'The future of %s', 'Ten lessons about %s',
                     'Deep dive: %s', 'What nobody tells you about %s', '%s, explained'])[1 + s.i % 10],
              (ARRAY['vector databases', 'the Roman economy', 'sourdough starters', 'index-only scans',
                     'interval training', 'index funds', 'black holes', 'jazz harmony', 'remote teams',
                     'Rust lifetimes', 'sleep science', 'city planning', 'zero-downtime migrations'])[1 + s.i % 13]),
       'Key points from video ' || s.video || '. '
         || 'The speaker opens with the problem, walks through ' || (2 + s.i % 6)
         || ' worked examples and closes with practical advice. '
         || 'Takeaways: start small, measure before optimising, and write down what you learn. '
         || 'Chapters: introduction, background, main argument, examples, questions. '
         || 'Reference ' || md5('content:' || s.i) || '.',
       CASE WHEN s.i % 10 = 0 THEN NULL
            ELSE 'c' || substr(md5('category:' || (s.i % 12 + 1)), 1, 24) END,
       s.i % 9 = 0,
       jsonb_build_object(
         'durationSeconds', 120 + (s.i * 37) % 5400,
         'language', (ARRAY['en', 'en', 'en', 'es', 'de', 'fr', 'pt'])[1 + s.i % 7],
         'model', CASE WHEN s.i % 4 = 0 THEN 'gpt-4o' ELSE 'gpt-4o-mini' END,
         'tokens', 800 + (s.i * 53) % 4000),
       s.created,
       s.created + make_interval(mins => (s.i * 13) % 2880)
FROM (
  SELECT i,
         substr(md5('video:' || (i % 7919 + 1)), 1, 11) AS video,
         timezone('UTC', now()) - make_interval(mins => 2880 + ((i::bigint * 7877) % 259200)::int) AS created
  FROM generate_series(1, 20000) AS i
) AS s;

-- Two tags per summary (tag numbers differ by 17 modulo 40, so never the same tag twice).
INSERT INTO "_SummaryToTag" ("A", "B")
SELECT 'c' || substr(md5('summary:' || i), 1, 24),
       'c' || substr(md5('tag:' || ((i * 3 + k * 17) % 40 + 1)), 1, 24)
FROM generate_series(1, 20000) AS i, generate_series(0, 1) AS k;

-- Share links for every tenth summary; half never expire, the others expire 7 to 66 days after
-- creation (so some already have).
INSERT INTO "ShareLink" ("id", "slug", "summaryId", "createdAt", "expiresAt", "viewCount")
SELECT 'c' || substr(md5('share:' || i), 1, 24),
       substr(md5('slug:' || i), 1, 12),
       'c' || substr(md5('summary:' || (i * 10)), 1, 24),
       timezone('UTC', now()) - make_interval(days => (i * 7) % 90, mins => (i * 17) % 1440),
       CASE WHEN i % 2 = 0 THEN NULL
            ELSE timezone('UTC', now()) - make_interval(days => (i * 7) % 90, mins => (i * 17) % 1440)
                 + make_interval(days => 7 + (i * 11) % 60) END,
       (i * 13) % 500
FROM generate_series(1, 2000) AS i;

-- Usage events spread evenly over the last 30 days (2,592,000 s / 50,000 = 51.84 s apart; the
-- multiplier 7919 permutes the slots so ids and times are not in the same order).
INSERT INTO "UsageEvent" ("id", "userId", "type", "metadata", "createdAt")
SELECT 'c' || substr(md5('event:' || i), 1, 24),
       'c' || substr(md5('user:' || ((i * 31) % 1000 + 1)), 1, 24),
       (ARRAY['summary.created', 'summary.viewed', 'summary.viewed', 'summary.viewed',
              'summary.favorited', 'share.created', 'share.viewed', 'auth.login',
              'export.markdown'])[1 + i % 9],
       CASE WHEN i % 5 = 0 THEN NULL
            ELSE jsonb_build_object('client', (ARRAY['web', 'ios', 'android', 'extension'])[1 + i % 4],
                                    'durationMs', 20 + (i * 29) % 900) END,
       timezone('UTC', now()) - make_interval(secs => ((i::bigint * 7919) % 50000) * 51.84)
FROM generate_series(1, 50000) AS i;

-- Progress of users through their own summaries (every fourth summary).
INSERT INTO "Progress" ("id", "userId", "summaryId", "positionSeconds", "completed", "updatedAt")
SELECT 'c' || substr(md5('progress:' || i), 1, 24),
       'c' || substr(md5('user:' || ((i * 4) % 1000 + 1)), 1, 24),
       'c' || substr(md5('summary:' || (i * 4)), 1, 24),
       (i * 53) % 3600,
       i % 5 = 0,
       timezone('UTC', now()) - make_interval(mins => (i * 101) % 43200)
FROM generate_series(1, 5000) AS i;

ANALYZE;
