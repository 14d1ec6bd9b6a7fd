-- Sightline sample data for `cutover demo` and the test suite: the previous release's tables
-- (the Progress table arrives with a pending migration; see seed_progress.sql).
--
-- Sizes are placeholders filled in by cutover (numbers only): {{users}} users, {{summaries}}
-- summaries, {{events}} usage events over the last 30 days, one share link per ten summaries.
-- The demo loads 10,000 / 200,000 / 500,000; the tests 1,000 / 20,000 / 50,000.
--
-- Deterministic: every value derives from generate_series indexes (md5 of a label and the index
-- for ids and slugs; modular arithmetic for relations). Only timestamps move: they are relative to
-- the load time, so "the last 30 days" always means the last 30 days.
-- Ids look like Prisma's cuid() (25 characters starting with "c"); a row's id is recomputed from
-- its index wherever it is referenced, e.g. user k is 'c' || substr(md5('user:' || k), 1, 24).
-- Runs after the migrations (no psql meta-commands), with the tables' keys, indexes and foreign
-- keys dropped while it loads (cutover builds them afterwards, several times faster than
-- maintaining them row by row). The first part runs alone; the parts after it, each after a
-- "-- @parallel" line, run at the same time on connections of their own. Row ids are computed
-- once per part, into temporary tables, and joined wherever they are referenced.

INSERT INTO "User" ("id", "email", "name", "plan", "summariesLimit", "createdAt", "updatedAt")
SELECT 'c' || substr(md5('user:' || u.k), 1, 24),
       'user' || lpad(u.k::text, 5, '0') || '@example.com',
       CASE WHEN u.k % 10 = 0 THEN NULL
            ELSE (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Margaret','Linus','Ken','Radia'])[1 + u.k % 10]
                 || ' ' ||
                 (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Hamilton','Torvalds','Thompson','Perlman','Ritchie'])[1 + u.k % 11]
       END,
       CASE WHEN u.k % 20 = 0 THEN 'TEAM' WHEN u.k % 4 = 0 THEN 'PRO' ELSE 'FREE' END,
       CASE WHEN u.k % 20 = 0 THEN 1000 WHEN u.k % 4 = 0 THEN 100 ELSE 5 END,
       timezone('UTC', now()) - make_interval(days => 30 + (u.k * 7) % 335, mins => (u.k * 37) % 1440),
       timezone('UTC', now()) - make_interval(days => (u.k * 3) % 30, mins => (u.k * 11) % 1440)
FROM generate_series(1, {{users}}) AS u (k);

INSERT INTO "Category" ("id", "name", "createdAt")
SELECT 'c' || substr(md5('category:' || c.n), 1, 24), c.name,
       timezone('UTC', now()) - make_interval(days => 400 - c.n)
FROM (VALUES (1, 'Technology'), (2, 'Science'), (3, 'Education'), (4, 'Business'),
             (5, 'Health & Fitness'), (6, 'History'), (7, 'Music'), (8, 'Gaming'),
             (9, 'Cooking'), (10, 'Travel'), (11, 'Personal Finance'), (12, 'Productivity'))
     AS c (n, name);

-- Tags are the entities a video mentions; their type is what kind of entity.
INSERT INTO "Tag" ("id", "name", "type", "createdAt")
SELECT 'c' || substr(md5('tag:' || t.n), 1, 24), t.name,
       (ARRAY['TECHNOLOGY', 'CONCEPT', 'PERSON', 'COMPANY', 'TOPIC'])[1 + t.n::int % 5],
       timezone('UTC', now()) - make_interval(days => 380 - t.n::int)
FROM unnest(ARRAY[
       'ai', 'machine-learning', 'python', 'rust', 'javascript', 'typescript', 'postgresql',
       'databases', 'devops', 'kubernetes', 'cloud', 'security', 'startups', 'marketing',
       'investing', 'economics', 'physics', 'biology', 'chemistry', 'space', 'climate',
       'nutrition', 'fitness', 'meditation', 'psychology', 'philosophy', 'design', 'ux',
       'photography', 'film', 'guitar', 'piano', 'recipes', 'baking', 'europe', 'asia',
       'interview', 'tutorial', 'lecture', 'podcast'
     ]) WITH ORDINALITY AS t (name, n);

-- @parallel
CREATE TEMP TABLE seed_user AS
SELECT k, 'c' || substr(md5('user:' || k), 1, 24) AS id FROM generate_series(1, {{users}}) AS k;
CREATE TEMP TABLE seed_summary AS
SELECT i, 'c' || substr(md5('summary:' || i), 1, 24) AS id FROM generate_series(1, {{summaries}}) AS i;
CREATE TEMP TABLE seed_tag AS
SELECT n, 'c' || substr(md5('tag:' || n), 1, 24) AS id FROM generate_series(1, 40) AS n;
-- What a summary's rich content says depends on its video: built once per video (7919).
CREATE TEMP TABLE seed_video AS
SELECT v,
       substr(md5('video:' || v), 1, 11) AS video,
       format((ARRAY['How %s works', 'Why %s matters', 'Inside %s', 'Understanding %s',
                     'A beginner''s guide to %s', 'The future of %s', 'Ten lessons about %s',
                     'Deep dive: %s', 'What nobody tells you about %s', '%s, explained'])[1 + v % 10],
              topic) AS title,
       (ARRAY['Fireship', 'Veritasium', 'Kurzgesagt', 'ThePrimeagen', 'Hussein Nasser',
              '3Blue1Brown', 'Computerphile', 'Ali Abdaal'])[1 + v % 8] AS channel,
       jsonb_build_array(
         jsonb_build_object('t', '00:' || lpad((v % 60)::text, 2, '0'), 'title', 'Introduction'),
         jsonb_build_object('t', '11:' || lpad((v * 13 % 60)::text, 2, '0'), 'title', 'Examples')) AS key_moments,
       jsonb_build_array(jsonb_build_object('q', 'What is ' || topic || '?', 'a', 'See 04:00')) AS flashcards,
       jsonb_build_array(jsonb_build_object('q', 'Which example came first?', 'answer', v % 3)) AS quiz,
       jsonb_build_array(jsonb_build_object('term', topic)) AS glossary,
       CASE WHEN v % 2 = 0 THEN '[]'::jsonb ELSE jsonb_build_array('PostgreSQL', 'Prisma') END AS tools,
       jsonb_build_array('https://youtu.be/' || substr(md5('video:' || v), 1, 11)) AS resources
FROM (SELECT v, (ARRAY['vector databases', 'the Roman economy', 'sourdough starters', 'index-only scans',
                       'interval training', 'index funds', 'black holes', 'jazz harmony', 'remote teams',
                       'Rust lifetimes', 'sleep science', 'city planning', 'zero-downtime migrations'])[1 + v % 13] AS topic
        FROM generate_series(1, 7919) AS v) AS videos;


-- Summary i belongs to user (i % users) + 1 and summarises video (i % 7919) + 1; 7919 is prime
-- and a user has fewer than 7919 summaries, so (userId, videoId) never repeats, while popular
-- videos recur across users. Newer features' JSON fields are NULL on some older summaries.
INSERT INTO "Summary" ("id", "userId", "videoId", "videoTitle", "channelName", "content",
                       "keyMoments", "flashcards", "quizQuestions", "glossary", "tools",
                       "resources", "uploadDate", "isFavorite", "createdAt", "updatedAt")
SELECT s.id, u.id, v.video, v.title, v.channel,
       'The speaker opens with the problem, walks through ' || (2 + s.i % 6)
         || ' worked examples and closes with practical advice (summary ' || s.i || ').',
       v.key_moments,
       CASE WHEN s.i % 3 = 0 THEN NULL ELSE v.flashcards END,
       CASE WHEN s.i % 4 = 0 THEN NULL ELSE v.quiz END,
       v.glossary, v.tools, v.resources,
       s.created - (v.v % 900) * interval '1 day',
       s.i % 9 = 0,
       s.created,
       s.created + ((s.i * 13) % 2880) * interval '1 minute'
FROM (SELECT i, id,
             timezone('UTC', now()) - (2880 + (i::bigint * 7877) % 259200) * interval '1 minute' AS created
        FROM seed_summary) AS s
JOIN seed_user AS u ON u.k = s.i % {{users}} + 1
JOIN seed_video AS v ON v.v = s.i % 7919 + 1;

-- Two tags per summary (tag numbers differ by 17 modulo 40, so never the same tag twice).
INSERT INTO "_SummaryToTag" ("A", "B")
SELECT s.id, t.id
FROM seed_summary AS s
CROSS JOIN generate_series(0, 1) AS k
JOIN seed_tag AS t ON t.n = (s.i * 3 + k * 17) % 40 + 1;

-- Statistics for the planner; the JSON columns are left to autovacuum (their statistics are the
-- slow part of analyzing Summary, and no critical query filters on them).
ANALYZE "Summary" ("id", "userId", "videoId", "uploadDate", "isFavorite", "createdAt");
ANALYZE "_SummaryToTag";
DROP TABLE seed_user, seed_summary, seed_tag, seed_video;

-- @parallel
CREATE TEMP TABLE seed_user AS
SELECT k, 'c' || substr(md5('user:' || k), 1, 24) AS id FROM generate_series(1, {{users}}) AS k;

-- Usage events spread evenly over the last 30 days (the multiplier 7919 permutes the slots so
-- ids and times are not in the same order).
INSERT INTO "UsageEvent" ("id", "userId", "eventType", "metadata", "createdAt")
SELECT 'c' || substr(md5('event:' || e.i), 1, 24),
       u.id,
       (ARRAY['SUMMARY_CREATED', 'SUMMARY_VIEWED', 'SUMMARY_VIEWED', 'SUMMARY_VIEWED',
              'SUMMARY_FAVORITED', 'SHARE_CREATED', 'SHARE_VIEWED', 'LOGIN',
              'EXPORT'])[1 + e.i % 9],
       CASE WHEN e.i % 5 = 0 THEN NULL
            ELSE (ARRAY['{"client": "web"}', '{"client": "ios"}', '{"client": "android"}',
                        '{"client": "extension"}']::jsonb[])[1 + e.i % 4] END,
       timezone('UTC', now()) - ((e.i::bigint * 7919) % {{events}}) * (2592000.0 / {{events}}) * interval '1 second'
FROM generate_series(1, {{events}}) AS e (i)
JOIN seed_user AS u ON u.k = (e.i * 31) % {{users}} + 1;

CREATE TEMP TABLE seed_summary AS
SELECT i, 'c' || substr(md5('summary:' || i), 1, 24) AS id FROM generate_series(1, {{summaries}}) AS i;

-- One category for nine summaries in ten (Prisma's implicit many-to-many: A is Category, B is
-- Summary, by model name).
INSERT INTO "_CategoryToSummary" ("A", "B")
SELECT c.id, s.id
FROM seed_summary AS s
JOIN (SELECT n, 'c' || substr(md5('category:' || n), 1, 24) AS id FROM generate_series(1, 12) AS n) AS c
  ON c.n = s.i % 12 + 1
WHERE s.i % 10 <> 0;

-- Share links for every tenth summary, made by the summary's owner.
INSERT INTO "ShareLink" ("id", "slug", "summaryId", "userId", "createdAt")
SELECT 'c' || substr(md5('share:' || s.i), 1, 24),
       substr(md5('slug:' || s.i), 1, 12),
       s.id, u.id,
       timezone('UTC', now()) - make_interval(days => (s.i * 7 / 10) % 90, mins => (s.i * 17 / 10) % 1440)
FROM seed_summary AS s
JOIN seed_user AS u ON u.k = s.i % {{users}} + 1
WHERE s.i % 10 = 0;

ANALYZE "UsageEvent";
ANALYZE "_CategoryToSummary";
ANALYZE "ShareLink";
ANALYZE "User";
ANALYZE "Category";
ANALYZE "Tag";
DROP TABLE seed_user, seed_summary;
