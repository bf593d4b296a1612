-- 0003_time_ordered_delivery_ids: delivery ids now begin with their
-- event's id (time-ordered), so rows of one moment sit together in the
-- primary keys that lead with a delivery id. On CockroachDB those keys are
-- made hash-sharded, as the events key is, so that in-order inserts spread
-- over ranges; dropping and adding the constraint in one statement keeps
-- CockroachDB from leaving the old key behind as a secondary index. On
-- PostgreSQL the same statements rebuild the same keys.

ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey, ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id);

ALTER TABLE attempts DROP CONSTRAINT attempts_pkey, ADD CONSTRAINT attempts_pkey PRIMARY KEY (delivery_id, number);

ALTER TABLE scheduled_retries DROP CONSTRAINT scheduled_retries_pkey, ADD CONSTRAINT scheduled_retries_pkey PRIMARY KEY (delivery_id);
