-- A message is sent as it was first rendered, and a send whose outcome is
-- unknown is looked up at the provider before it is repeated.
--
-- html: the email's HTML part as first rendered (the text part is body);
--   NULL on rows written before it was kept.
-- send_attempts: provider calls started for the message.
-- first_send_at: when the first of them started; a provider lookup searches
--   from then on.
-- unknown_since: set right before each provider call and cleared when the
--   provider answered without accepting it. While a pending row has it, a
--   call may have reached the provider and its answer was never recorded
--   (a crash, a lost or late answer): the next try asks the provider first.
ALTER TABLE messages
    ADD COLUMN html          text        NULL,
    ADD COLUMN send_attempts integer     NOT NULL DEFAULT 0 CHECK (send_attempts >= 0),
    ADD COLUMN first_send_at timestamptz NULL,
    ADD COLUMN unknown_since timestamptz NULL;
