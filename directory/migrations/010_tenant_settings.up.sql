-- A tenant's own bounds on its work (tenant.Settings): PostgreSQL settings
-- that every handle sets in the tenant's transactions, and a cap on its
-- connections. Name to value, in the form tenant.Settings.With takes; an
-- absent name is not set.
ALTER TABLE tenants ADD COLUMN settings jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object');
