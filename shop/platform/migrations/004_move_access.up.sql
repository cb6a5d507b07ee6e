-- Operators change a store's plan, which moves it to the plan's isolation
-- model while it keeps selling; recorded like every other operator action.
ALTER TABLE shop.admin_access DROP CONSTRAINT admin_access_action_check;
ALTER TABLE shop.admin_access ADD CONSTRAINT admin_access_action_check
	CHECK (action IN ('browse', 'set_state', 'export', 'delete', 'restore', 'purge', 'change_plan'));
