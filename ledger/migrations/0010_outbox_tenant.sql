-- Billing events go to the endpoint the tenant configuration names
-- (DUNNING_TENANTS_FILE), looked up when the event is sent, never to a URL
-- that came with a request: a caller could otherwise make the workers POST
-- into our own network. So each event records its tenant, and the url
-- column is no longer written or read; it keeps, for the record, what the
-- events enqueued before this migration named.
ALTER TABLE outbox ADD COLUMN tenant text NOT NULL DEFAULT '';
ALTER TABLE outbox ALTER COLUMN url SET DEFAULT '';

-- Events already in the outbox take their run's tenant (every event body
-- also names it); one without either is skipped by the dispatcher.
UPDATE outbox o SET tenant = r.tenant FROM runs r WHERE r.workflow_id = o.workflow_id;
UPDATE outbox SET tenant = body->>'tenant'
WHERE tenant = '' AND jsonb_typeof(body->'tenant') = 'string';

-- The version of the event's data schema, sent in the envelope
-- {"type", "version", "timestamp", "data"}: a type whose data changes
-- shape gets a new version rather than surprising receivers.
ALTER TABLE outbox ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1);

-- skipped: the tenant has no event endpoint. Not a failure; the event can
-- be redelivered once one is configured.
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'skipped'));

-- Ops list a tenant's events, newest first, by status (dunning events list).
CREATE INDEX outbox_tenant_idx ON outbox (tenant, status, id);
