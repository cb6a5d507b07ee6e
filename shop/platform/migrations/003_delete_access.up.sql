-- Operators delete, restore and purge stores; each is recorded like a look
-- into one, and the record outlives the store (landlord.Config.PurgeKeep).
ALTER TABLE shop.admin_access DROP CONSTRAINT admin_access_action_check;
ALTER TABLE shop.admin_access ADD CONSTRAINT admin_access_action_check
	CHECK (action IN ('browse', 'set_state', 'export', 'delete', 'restore', 'purge'));
