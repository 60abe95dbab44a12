-- Reminder runs (before any decline) send messages too, and they have no
-- row in runs (which holds one dunning run per invoice). Messages keep their
-- workflow ID without requiring it there.
ALTER TABLE messages DROP CONSTRAINT messages_workflow_id_fkey;
