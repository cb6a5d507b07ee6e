-- Each tenant's calls as the handles of every process measured them, one row
-- per process, tenant and flush window (tenantstats): what `landlord tenants
-- top` reads. Bounded: each flush writes at most a few hundred tenants (the
-- rest under the zero id), and rows older than the retention are deleted as
-- new ones arrive.
CREATE TABLE tenant_stats (
	window_end timestamptz NOT NULL,
	process    text        NOT NULL,
	tenant_id  uuid        NOT NULL,
	window_ms  integer     NOT NULL CHECK (window_ms > 0),
	calls      bigint      NOT NULL CHECK (calls >= 0),
	errors     bigint      NOT NULL CHECK (errors >= 0 AND errors <= calls),
	total_us   bigint      NOT NULL CHECK (total_us >= 0),
	-- time the calls waited for a connection, within total_us
	wait_us    bigint      NOT NULL CHECK (wait_us >= 0),
	-- calls by duration: element i counts calls of [2^i, 2^(i+1)) µs, the
	-- first also shorter ones, the last also longer ones
	buckets    bigint[]    NOT NULL,
	PRIMARY KEY (window_end, process, tenant_id)
);
