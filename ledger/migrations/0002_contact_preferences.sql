-- Contact preferences the customer expressed outside a dunning run: SMS
-- consent from keyword replies (STOP, START) and email addresses the email
-- provider reported as undeliverable or unwanted. Messages to them are
-- skipped, whichever run they belong to.

CREATE TABLE sms_consent (
    phone      text PRIMARY KEY, -- E.164, e.g. +48600100200
    opted_out  bool NOT NULL,
    keyword    text NOT NULL,    -- the reply that set the state, e.g. STOP
    source     text NOT NULL,    -- where the event came from, e.g. twilio-inbound
    updated_at timestamptz NOT NULL -- when the customer sent it; older events never overwrite newer ones
);

CREATE TABLE email_suppressions (
    email      text PRIMARY KEY, -- lower-cased
    reason     text NOT NULL,    -- e.g. bounce, spamreport, unsubscribe
    source     text NOT NULL,    -- e.g. sendgrid-events
    created_at timestamptz NOT NULL
);
