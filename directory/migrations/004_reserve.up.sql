-- The pre-provisioned tenants are the reserve: "pool" means connections
-- only. The table, its index and its constraints take the new name; the
-- rows, and the ledger entries and object markers written for them so far,
-- stay as they are.
ALTER TABLE tenant_pool RENAME TO tenant_reserve;
ALTER INDEX tenant_pool_ready RENAME TO tenant_reserve_ready;
ALTER TABLE tenant_reserve RENAME CONSTRAINT tenant_pool_pkey TO tenant_reserve_pkey;
ALTER TABLE tenant_reserve RENAME CONSTRAINT tenant_pool_server_id_fkey TO tenant_reserve_server_id_fkey;
ALTER TABLE tenant_reserve RENAME CONSTRAINT tenant_pool_model_check TO tenant_reserve_model_check;
ALTER TABLE tenant_reserve RENAME CONSTRAINT tenant_pool_schema_name_check TO tenant_reserve_schema_name_check;
ALTER TABLE tenant_reserve RENAME CONSTRAINT tenant_pool_database_name_check TO tenant_reserve_database_name_check;
ALTER TABLE tenant_reserve RENAME CONSTRAINT tenant_pool_state_check TO tenant_reserve_state_check;
