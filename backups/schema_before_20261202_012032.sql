--
-- PostgreSQL database dump
--

\restrict 4mA2uLud4GxQnYne6ZiWdu2ZhzbJR8XJeynpzEccfziIfLSAjhTrHNPffg1BxVW

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: Category; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."Category" (
    id text NOT NULL,
    name text NOT NULL,
    "createdAt" timestamp(3) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL
);


--
-- Name: ShareLink; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."ShareLink" (
    id text NOT NULL,
    slug text NOT NULL,
    "summaryId" text NOT NULL,
    "userId" text NOT NULL,
    "createdAt" timestamp(3) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL
);


--
-- Name: Summary; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."Summary" (
    id text NOT NULL,
    "userId" text NOT NULL,
    "videoId" text NOT NULL,
    "videoTitle" text NOT NULL,
    "channelName" text NOT NULL,
    content text NOT NULL,
    "keyMoments" jsonb,
    flashcards jsonb,
    "quizQuestions" jsonb,
    glossary jsonb,
    tools jsonb,
    resources jsonb,
    "uploadDate" timestamp(3) without time zone,
    "isFavorite" boolean DEFAULT false NOT NULL,
    "createdAt" timestamp(3) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updatedAt" timestamp(3) without time zone NOT NULL
);


--
-- Name: Tag; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."Tag" (
    id text NOT NULL,
    name text NOT NULL,
    type text NOT NULL,
    "createdAt" timestamp(3) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL
);


--
-- Name: UsageEvent; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."UsageEvent" (
    id text NOT NULL,
    "userId" text NOT NULL,
    "eventType" text NOT NULL,
    metadata jsonb,
    "createdAt" timestamp(3) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL
);


--
-- Name: User; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."User" (
    id text NOT NULL,
    email text NOT NULL,
    name text,
    "createdAt" timestamp(3) without time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updatedAt" timestamp(3) without time zone NOT NULL,
    plan text DEFAULT 'FREE'::text NOT NULL,
    "summariesLimit" integer DEFAULT 5 NOT NULL
);


--
-- Name: _CategoryToSummary; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."_CategoryToSummary" (
    "A" text NOT NULL,
    "B" text NOT NULL
);


--
-- Name: _SummaryToTag; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."_SummaryToTag" (
    "A" text NOT NULL,
    "B" text NOT NULL
);


--
-- Name: _prisma_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public._prisma_migrations (
    id character varying(36) NOT NULL,
    checksum character varying(64) NOT NULL,
    finished_at timestamp with time zone,
    migration_name character varying(255) NOT NULL,
    logs text,
    rolled_back_at timestamp with time zone,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    applied_steps_count integer DEFAULT 0 NOT NULL
);


--
-- Name: Category Category_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."Category"
    ADD CONSTRAINT "Category_pkey" PRIMARY KEY (id);


--
-- Name: ShareLink ShareLink_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."ShareLink"
    ADD CONSTRAINT "ShareLink_pkey" PRIMARY KEY (id);


--
-- Name: Summary Summary_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."Summary"
    ADD CONSTRAINT "Summary_pkey" PRIMARY KEY (id);


--
-- Name: Tag Tag_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."Tag"
    ADD CONSTRAINT "Tag_pkey" PRIMARY KEY (id);


--
-- Name: UsageEvent UsageEvent_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."UsageEvent"
    ADD CONSTRAINT "UsageEvent_pkey" PRIMARY KEY (id);


--
-- Name: User User_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."User"
    ADD CONSTRAINT "User_pkey" PRIMARY KEY (id);


--
-- Name: _prisma_migrations _prisma_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public._prisma_migrations
    ADD CONSTRAINT _prisma_migrations_pkey PRIMARY KEY (id);


--
-- Name: Category_name_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "Category_name_key" ON public."Category" USING btree (name);


--
-- Name: ShareLink_slug_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "ShareLink_slug_key" ON public."ShareLink" USING btree (slug);


--
-- Name: Summary_userId_videoId_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "Summary_userId_videoId_key" ON public."Summary" USING btree ("userId", "videoId");


--
-- Name: Tag_name_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "Tag_name_key" ON public."Tag" USING btree (name);


--
-- Name: Tag_type_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "Tag_type_idx" ON public."Tag" USING btree (type);


--
-- Name: UsageEvent_eventType_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "UsageEvent_eventType_idx" ON public."UsageEvent" USING btree ("eventType");


--
-- Name: UsageEvent_userId_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "UsageEvent_userId_idx" ON public."UsageEvent" USING btree ("userId");


--
-- Name: User_email_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "User_email_key" ON public."User" USING btree (email);


--
-- Name: _CategoryToSummary_AB_unique; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "_CategoryToSummary_AB_unique" ON public."_CategoryToSummary" USING btree ("A", "B");


--
-- Name: _CategoryToSummary_B_index; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "_CategoryToSummary_B_index" ON public."_CategoryToSummary" USING btree ("B");


--
-- Name: _SummaryToTag_AB_unique; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX "_SummaryToTag_AB_unique" ON public."_SummaryToTag" USING btree ("A", "B");


--
-- Name: _SummaryToTag_B_index; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX "_SummaryToTag_B_index" ON public."_SummaryToTag" USING btree ("B");


--
-- Name: ShareLink ShareLink_summaryId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."ShareLink"
    ADD CONSTRAINT "ShareLink_summaryId_fkey" FOREIGN KEY ("summaryId") REFERENCES public."Summary"(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: ShareLink ShareLink_userId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."ShareLink"
    ADD CONSTRAINT "ShareLink_userId_fkey" FOREIGN KEY ("userId") REFERENCES public."User"(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: Summary Summary_userId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."Summary"
    ADD CONSTRAINT "Summary_userId_fkey" FOREIGN KEY ("userId") REFERENCES public."User"(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: UsageEvent UsageEvent_userId_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."UsageEvent"
    ADD CONSTRAINT "UsageEvent_userId_fkey" FOREIGN KEY ("userId") REFERENCES public."User"(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: _CategoryToSummary _CategoryToSummary_A_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."_CategoryToSummary"
    ADD CONSTRAINT "_CategoryToSummary_A_fkey" FOREIGN KEY ("A") REFERENCES public."Category"(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: _CategoryToSummary _CategoryToSummary_B_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."_CategoryToSummary"
    ADD CONSTRAINT "_CategoryToSummary_B_fkey" FOREIGN KEY ("B") REFERENCES public."Summary"(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: _SummaryToTag _SummaryToTag_A_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."_SummaryToTag"
    ADD CONSTRAINT "_SummaryToTag_A_fkey" FOREIGN KEY ("A") REFERENCES public."Summary"(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- Name: _SummaryToTag _SummaryToTag_B_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."_SummaryToTag"
    ADD CONSTRAINT "_SummaryToTag_B_fkey" FOREIGN KEY ("B") REFERENCES public."Tag"(id) ON UPDATE CASCADE ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--

\unrestrict 4mA2uLud4GxQnYne6ZiWdu2ZhzbJR8XJeynpzEccfziIfLSAjhTrHNPffg1BxVW

