-- An operator's export of a store's data is recorded like a look into it.
ALTER TABLE shop.admin_access DROP CONSTRAINT admin_access_action_check;
ALTER TABLE shop.admin_access ADD CONSTRAINT admin_access_action_check
	CHECK (action IN ('browse', 'set_state', 'export'));
